#!/usr/bin/env bash
# objtool and orctool on the same vmlinux.o, as kbuild runs them on it, in one run: wall, user and
# system time and peak memory of each (/usr/bin/time), interleaved rounds.
#
# usage: scripts/bench-vmlinux-o.sh [--rounds N] [--orctool PATH] [--objtool PATH] [VMLINUX_O]
#   VMLINUX_O  default: the input scripts/kernel-build.sh captured for the small 6.12 config; with
#              --config debian, the one it captured for Debian's config (the gold vmlinux.o)
#   --objtool  default: the objtool that build built (obj/tools/objtool/objtool)
# The flags are the ones kbuild passed for that input (the capture's calls.tsv), or the ones in a file
# `flags` next to it (kernel-build.sh's partial stage writes one), else the small config's.
# Both tools work on copies; each round checks that orctool's output is objtool's object
# (orctool compare-objects). Prints a markdown table; the load average goes in its header, since
# wall times on a loaded machine say little (compare user+sys then).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${ORCTOOL_CACHE:-$HOME/.cache/orctool}
rounds=3 config=small orctool="${CARGO_TARGET_DIR:-$here/../target}/release/orctool" objtool= input=
while [[ $# -gt 0 ]]; do
    case $1 in
        --rounds) rounds=$2; shift ;;
        --orctool) orctool=$2; shift ;;
        --objtool) objtool=$2; shift ;;
        --config) config=$2; shift ;;
        -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
        -*) echo "bench-vmlinux-o: unknown option $1" >&2; exit 2 ;;
        *) input=$1 ;;
    esac
    shift
done
[[ $config == small || $config == debian ]] || { echo "bench-vmlinux-o: --config wants small or debian" >&2; exit 2; }
bdir=$(ls -d "$cache"/kernel/*/"$config" 2>/dev/null | tail -1 || true)
input=${input:-$bdir/objtool/capture/in/vmlinux.o}
objtool=${objtool:-$bdir/obj/tools/objtool/objtool}
[[ -f $input ]] || { echo "bench-vmlinux-o: no vmlinux.o at '$input' (run scripts/kernel-build.sh, or name one)" >&2; exit 2; }
[[ -x $objtool ]] || { echo "bench-vmlinux-o: no objtool at '$objtool' (--objtool PATH)" >&2; exit 2; }
[[ -x $orctool ]] || { echo "bench-vmlinux-o: no orctool at '$orctool' (cargo build --release -p orctool)" >&2; exit 2; }
flags=(--hacks=jump_label --hacks=noinstr --hacks=skylake --ibt --orc --retpoline --rethunk --sls
       --static-call --uaccess --prefix=16 --noinstr --unret --link)
# A kernel-build.sh capture (RUN/capture/in/vmlinux.o) records kbuild's flags in RUN/capture/calls.tsv.
calls=$(dirname "$(dirname "$input")")/calls.tsv
if [[ $input == */capture/in/vmlinux.o && -f $calls ]] && grep -q $'^vmlinux.o\t' "$calls"; then
    read -r -a flags <<< "$(awk -F'\t' '$1 == "vmlinux.o" { print $5; exit }' "$calls")"
elif [[ -f $(dirname "$input")/flags ]]; then
    read -r -a flags < "$(dirname "$input")/flags"
fi
echo "flags: ${flags[*]}" >&2
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
echo "| tool | round | wall s | user s | sys s | peak MB |  (load $(cut -d' ' -f1-3 /proc/loadavg), $(du -m "$input" | cut -f1) MB input)"
echo "|---|---|---:|---:|---:|---:|"
one() { # label command...
    local label=$1; shift
    cp "$input" "$tmp/t.o"
    /usr/bin/time -f "%e %U %S %M" -o "$tmp/time" "$@" "$tmp/t.o" 2>/dev/null >/dev/null || true
    read -r e u s m < "$tmp/time"
    echo "| $label | $r | $e | $u | $s | $((m / 1024)) |"
}
for r in $(seq "$rounds"); do
    one objtool "$objtool" "${flags[@]}"; cp "$tmp/t.o" "$tmp/objtool.o"
    one "orctool -j1" "$orctool" check -j1 "${flags[@]}"
    one "orctool -j2" "$orctool" check -j2 "${flags[@]}"
    "$orctool" compare-objects "$tmp/objtool.o" "$tmp/t.o" >/dev/null || { echo "bench-vmlinux-o: round $r: orctool's object differs from objtool's" >&2; exit 1; }
done
