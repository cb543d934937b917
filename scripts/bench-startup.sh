#!/usr/bin/env bash
# Start-up: the time of one process on one small module, orctool against objtool, as kbuild pays
# it once per object (issue 17: median per process at most 1.0x objtool's).
#
# usage: scripts/bench-startup.sh [--kernel 6.12|6.1|7.2] [--module PATH] [--orctool PATH]
#                                 [--runs N] [--rounds N]
#   --module P   the module, relative to the corpus (default arch/x86/kernel/cpuid.ko, 16 KB)
#   --runs N     hyperfine runs per command and round (default 300); --rounds N (default 3):
#                the commands alternate round by round, so that a change in the machine's load
#                falls on both
# Prints, per round and over all rounds, the median time per process of `objtool --dump=orc M`
# and `orctool dump M` (both with their output checked identical first), their ratio, and the
# page faults and CPU time of one process (perf stat, when perf can count them).
set -euo pipefail
export LC_ALL=C

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scripts/lib/corpus.sh
. "$here/lib/corpus.sh"
# shellcheck source=scripts/lib/orctool.sh
. "$here/lib/orctool.sh"

die() { echo "bench-startup: error: $*" >&2; exit 2; }

kernel=6.12 module=arch/x86/kernel/cpuid.ko orctool="" runs=300 rounds=3
while [[ $# -gt 0 ]]; do
    case $1 in
        --kernel|--module|--orctool|--runs|--rounds) [[ $# -ge 2 ]] || die "$1 needs a value" ;;&
        --kernel) kernel=$2; shift ;;
        --module) module=$2; shift ;;
        --orctool) orctool=$2; shift ;;
        --runs) runs=$2; shift ;;
        --rounds) rounds=$2; shift ;;
        -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument '$1'" ;;
    esac
    shift
done
for v in runs rounds; do [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "--$v wants a positive number, got '${!v}'"; done
command -v hyperfine >/dev/null || die "hyperfine is missing (apt-get install hyperfine)"
corpus_check_kernel "$kernel" || exit 2
corpus_require "$kernel" || exit 2
orctool=$(orctool_bin "$orctool") || exit 2
objtool=$(corpus_objtool "$kernel")
file=$(corpus_modules "$kernel")/$module
[[ -f $file ]] || die "no module $file"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/bench-startup.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# Time a copy, as an installed binary is: a file just written by the linker can sit in the page
# cache in small pages (Linux 6.18, ext4: 86 page faults per start instead of 73, 10-20% slower),
# which says nothing about the binary. objtool's was written by dpkg.
cp "$orctool" "$tmp/orctool"
orctool=$tmp/orctool
"$objtool" --dump=orc "$file" > "$tmp/objtool.out"
"$orctool" dump "$file" > "$tmp/orctool.out"
cmp -s "$tmp/objtool.out" "$tmp/orctool.out" || die "the two dumps of $module differ"

echo "Start-up on $kernel $module ($(stat -c %s "$file") bytes, $(wc -l < "$tmp/objtool.out") ORC lines): hyperfine -N, $rounds rounds of $runs runs, $(nproc) CPUs, load at start $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| round | objtool median (ms) | orctool median (ms) | orctool ÷ objtool |"
echo "|---|---:|---:|---:|"
for ((r = 1; r <= rounds; r++)); do
    # Alternate which command goes first.
    if ((r % 2)); then order=(objtool orctool); else order=(orctool objtool); fi
    args=(-N --warmup 20 --runs "$runs" --style none --export-json "$tmp/round$r.json")
    for name in "${order[@]}"; do
        if [[ $name == objtool ]]; then args+=(-n objtool "$objtool --dump=orc $file")
        else args+=(-n orctool "$orctool dump $file"); fi
    done
    hyperfine "${args[@]}" >/dev/null 2>"$tmp/hyperfine.err" || { cat "$tmp/hyperfine.err" >&2; die "hyperfine failed"; }
done
python3 - "$tmp" "$rounds" <<'EOF'
import json, statistics, sys
tmp, rounds = sys.argv[1], int(sys.argv[2])
every = {"objtool": [], "orctool": []}
for r in range(1, rounds + 1):
    times = {res["command"]: res["times"] for res in json.load(open(f"{tmp}/round{r}.json"))["results"]}
    med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    for k, v in times.items():
        every[k] += v
    print(f"| {r} | {med['objtool']:.3f} | {med['orctool']:.3f} | {med['orctool'] / med['objtool']:.2f} |")
med = {k: statistics.median(v) * 1e3 for k, v in every.items()}
print(f"| all | {med['objtool']:.3f} | {med['orctool']:.3f} | **{med['orctool'] / med['objtool']:.2f}** |")
EOF
echo "(load at end $(cut -d' ' -f1-3 /proc/loadavg))"

if command -v perf >/dev/null && perf stat -e page-faults true >/dev/null 2>&1; then
    echo
    echo "| one process (perf stat, 200 runs) | CPU (ms) | page faults |"
    echo "|---|---:|---:|"
    for name in objtool orctool; do
        if [[ $name == objtool ]]; then cmd=("$objtool" --dump=orc "$file"); else cmd=("$orctool" dump "$file"); fi
        perf stat -x, -r 200 -e task-clock,page-faults "${cmd[@]}" 2>&1 >/dev/null |
            awk -F, -v n="$name" '/task-clock/ { t = $1 } /page-faults/ { p = $1 } END { printf "| %s | %.3f | %d |\n", n, t, p }'
    done
fi
