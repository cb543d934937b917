#!/usr/bin/env bash
# Finding the orctool binary for the corpus scripts. Source it, then:
#   orctool_bin [PATH]   prints the absolute path of PATH (a path or a command in $PATH); without PATH,
#                        runs `cargo build --release -p orctool` in the repository (progress on stderr)
#                        and prints ${CARGO_TARGET_DIR:-<repo>/target}/release/orctool.
# Returns 2 with a message on stderr when the binary cannot be found or built.

orctool_bin() {
    local bin=${1-} here root tdir
    if [[ -z $bin ]]; then
        here=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
        root=$(git -C "$here" rev-parse --show-toplevel 2>/dev/null || printf '%s\n' "$here")
        echo "building orctool: (cd $root && cargo build --release -p orctool)" >&2
        if ! (cd "$root" && cargo build --release -p orctool) >&2; then
            echo "error: cargo build --release -p orctool failed (or pass --orctool PATH)" >&2
            return 2
        fi
        tdir=${CARGO_TARGET_DIR:-target}
        [[ $tdir == /* ]] || tdir=$root/$tdir
        bin=$tdir/release/orctool
    elif [[ $bin != */* ]]; then
        bin=$(command -v "$bin") || { echo "error: orctool '$1' not found in PATH" >&2; return 2; }
    fi
    if [[ ! -f $bin || ! -x $bin ]]; then
        echo "error: orctool binary '$bin' does not exist or is not executable" >&2
        return 2
    fi
    printf '%s/%s\n' "$(cd "$(dirname "$bin")" && pwd)" "$(basename "$bin")"
}
