#!/usr/bin/env bash
# SFrame sizes on the C test programs: what GNU as --gsframe and ld emit (Debian unstable's
# binutils, scripts/fetch-sid-binutils.sh) against what `orctool check --sframe` writes for
# the same program built by the same toolchain without --gsframe, and both against
# .eh_frame + .eh_frame_hdr. One line per program, then the totals.
#
#   scripts/sframe-sizes.sh
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
orctool=${ORCTOOL:-}
if [[ -z $orctool ]]; then
    cargo build --release -q -p orctool --manifest-path "$here/Cargo.toml"
    orctool="${CARGO_TARGET_DIR:-$here/target}/release/orctool"
fi
bin=${SID_BIN:-$(bash "$here/scripts/fetch-sid-binutils.sh")}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
size_of() { python3 "$here/scripts/lib/section_bytes.py" "$@"; } # FILE NAME...
printf '%-12s %10s %10s %10s %8s %8s\n' program eh_frame+hdr gas_sframe orctool orc/gas orc/eh
tg=0 to=0 te=0
for src in "$here"/crates/testkit/programs/*.c; do
    name=$(basename "$src" .c)
    flags=(-O2 -fomit-frame-pointer -g -pthread -B "$bin/" -I "$here/crates/testkit/programs")
    gcc "${flags[@]}" -Wa,--gsframe -o "$work/$name.gas" "$src"
    gcc "${flags[@]}" -o "$work/$name" "$src"
    "$orctool" check --sframe "$work/$name" -o "$work/$name.orc" 2>/dev/null
    g=$(size_of "$work/$name.gas" .sframe)
    o=$(size_of "$work/$name.orc" .sframe)
    e=$(size_of "$work/$name" .eh_frame .eh_frame_hdr)
    tg=$((tg + g)) to=$((to + o)) te=$((te + e))
    awk -v n="$name" -v e="$e" -v g="$g" -v o="$o" 'BEGIN { printf "%-12s %10d %10d %10d %8.2f %8.2f\n", n, e, g, o, (g ? o / g : 0), (e ? o / e : 0) }'
done
awk -v e="$te" -v g="$tg" -v o="$to" 'BEGIN { printf "%-12s %10d %10d %10d %8.2f %8.2f\n", "total", e, g, o, (g ? o / g : 0), (e ? o / e : 0) }'
