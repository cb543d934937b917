#!/bin/sh
# cargo's rustc wrapper (.cargo/config.toml): cargo runs `this RUSTC ARGS...` for every crate.
# The orctool binary gets `-C target-feature=+crt-static -C relocation-model=static` (a static,
# non-PIE executable: no dynamic loader, no relocations at start-up); every other crate, test
# and build script is compiled exactly as cargo asked.
rustc=$1
shift
name= bin=
prev=
for arg in "$@"; do
    case $prev in
        --crate-name) name=$arg ;;
        --crate-type) [ "$arg" = bin ] && bin=1 ;;
    esac
    prev=$arg
done
if [ "$name" = orctool ] && [ -n "$bin" ]; then
    exec "$rustc" "$@" -C target-feature=+crt-static -C relocation-model=static
fi
exec "$rustc" "$@"
