#!/usr/bin/env bash
# Time dumping a whole module corpus: objtool vs orctool.
#
# usage: scripts/bench-dump.sh [--kernel 6.12|6.1] [--orctool PATH] [--runs N] [--warmup N]
#                              [--sample N] [--ignore-failure]
#   --kernel K        corpus (default 6.12; fetch it first with scripts/fetch-corpus.sh K)
#   --orctool P       binary to time (default: cargo build --release -p orctool, as compat-dump.sh)
#   --runs N          timed runs per command (default 3); --warmup N untimed runs first (default 1)
#   --sample N        only N modules, the same fixed spread compat-dump.sh --sample takes
#   --ignore-failure  keep timing when a command exits non-zero (hyperfine -i)
#
# Three commands, each over every module, stdout discarded:
#   objtool --dump=orc M   one process per module (objtool takes one file at a time)
#   orctool dump M         one process per module
#   orctool dump DIR       one process for the whole directory
# Timing: hyperfine (apt-get install hyperfine, done here when missing and possible), else
# /usr/bin/time (also with ORCTOOL_BENCH_TIMER=time). First an untimed pass checks exit codes and
# counts output lines. Progress goes to stderr; stdout gets a markdown table (wall mean ± stddev,
# user, sys, ratios). Writes no files outside a temporary directory.
set -euo pipefail
export LC_ALL=C

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scripts/lib/corpus.sh
. "$here/lib/corpus.sh"
# shellcheck source=scripts/lib/orctool.sh
. "$here/lib/orctool.sh"

die() { echo "bench-dump: error: $*" >&2; exit 2; }
note() { echo "bench-dump: $*" >&2; }

kernel=6.12 orctool="" runs=3 warmup=1 sample=0 ignore=0
while [[ $# -gt 0 ]]; do
    [[ $1 != --*=* ]] || { set -- "${1%%=*}" "${1#*=}" "${@:2}"; }
    case $1 in
        --kernel|--orctool|--runs|--warmup|--sample) [[ $# -ge 2 ]] || die "$1 needs a value" ;;&
        --kernel)  kernel=$2; shift ;;
        --orctool) orctool=$2; shift ;;
        --runs)    runs=$2; shift ;;
        --warmup)  warmup=$2; shift ;;
        --sample)  sample=$2; shift ;;
        --ignore-failure) ignore=1 ;;
        -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
        *) echo "bench-dump: unknown argument '$1'" >&2; sed -n '4,5p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
    esac
    shift
done
for v in runs warmup sample; do [[ ${!v} =~ ^[0-9]+$ ]] || die "--$v wants a number, got '${!v}'"; done
[[ $runs -ge 1 ]] || die "--runs must be at least 1"
corpus_check_kernel "$kernel" || exit 2
corpus_require "$kernel" || exit 2
orctool=$(orctool_bin "$orctool") || exit 2
objtool=$(corpus_objtool "$kernel")
moddir=$(corpus_modules "$kernel")

tmp=$(mktemp -d "${TMPDIR:-/tmp}/bench-dump.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# ------------------------------------------------------------------ the module set
list=$tmp/modules.list
total=$(wc -l < "$(corpus_list "$kernel")")
if [[ $sample -gt 0 && $sample -lt $total ]]; then
    awk -v n="$sample" -v t="$total" 'BEGIN { for (j = 0; j < n; j++) sel[int(j * t / n)] = 1 } sel[NR - 1]' \
        "$(corpus_list "$kernel")" > "$list"
    # `orctool dump DIR` needs a directory holding just these modules: hard links (copies if need be).
    dir=$tmp/modules
    mkdir "$dir"
    (cd "$moddir" && { xargs -d '\n' cp --parents -l -t "$dir" < "$list" 2>/dev/null ||
                       xargs -d '\n' cp --parents -t "$dir" < "$list"; })
else
    cp "$(corpus_list "$kernel")" "$list"
    dir=$moddir
fi
n=$(wc -l < "$list")
bytes=$(cd "$moddir" && xargs -d '\n' stat -c %s < "$list" | awk '{ s += $1 } END { print s }')

# The three commands, run from inside the module directory.
cmd_obj="xargs -d '\\n' -n 1 $(printf '%q' "$objtool") --dump=orc < $(printf '%q' "$list")"
cmd_orc1="xargs -d '\\n' -n 1 $(printf '%q' "$orctool") dump < $(printf '%q' "$list")"
cmd_orcd="$(printf '%q' "$orctool") dump $(printf '%q' "$dir")"
names=("objtool --dump=orc (1 process per module)" "orctool dump (1 process per module)" "orctool dump DIR (1 process)")
cmds=("$cmd_obj" "$cmd_orc1" "$cmd_orcd")

cd "$moddir"

# ------------------------------------------------------------------ untimed check pass
note "$kernel: $n modules ($((bytes / 1000000)) MB) in $dir"
note "load average at start: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs"
declare -a lines
for i in 0 1 2; do
    set +e
    bash -c "${cmds[i]}" 2>"$tmp/check.$i.err" | wc -l > "$tmp/check.$i.lines"
    rc=${PIPESTATUS[0]}
    lines[i]=$(< "$tmp/check.$i.lines")
    set -e
    note "check: ${names[i]}: exit $rc, ${lines[i]} lines"
    if [[ $rc -ne 0 ]]; then
        sed -n '1,5s/^/    /p' "$tmp/check.$i.err" >&2
        [[ $ignore -eq 1 ]] || die "'${cmds[i]}' exited $rc (see above; --ignore-failure times it anyway)"
    fi
done
[[ ${lines[0]} -eq ${lines[1]} ]] || note "warning: objtool printed ${lines[0]} lines, orctool per module ${lines[1]}"

# ------------------------------------------------------------------ timing
# Produces $tmp/times.csv: command,mean,stddev,median,user,system,min,max (seconds), as hyperfine.
use_hyperfine=1
[[ ${ORCTOOL_BENCH_TIMER:-} != time ]] || use_hyperfine=0
if [[ $use_hyperfine -eq 1 ]] && ! command -v hyperfine >/dev/null; then
    note "hyperfine is missing; trying: apt-get install -y hyperfine"
    if [[ $(id -u) -eq 0 ]]; then apt-get install -y -qq hyperfine >&2 || true
    elif command -v sudo >/dev/null; then sudo -n apt-get install -y -qq hyperfine >&2 || true; fi
fi
if [[ $use_hyperfine -eq 1 ]] && command -v hyperfine >/dev/null; then
    timer="hyperfine $(hyperfine --version | awk '{ print $2 }')"
    hargs=(--runs "$runs" --warmup "$warmup" --export-csv "$tmp/times.csv" --style basic)
    [[ $ignore -eq 0 ]] || hargs+=(-i)
    for i in 0 1 2; do hargs+=(-n "${names[i]}" "${cmds[i]}"); done
    hyperfine "${hargs[@]}" >&2
else
    timer="/usr/bin/time"
    [[ -x /usr/bin/time ]] || die "neither hyperfine nor /usr/bin/time is available"
    echo "command,mean,stddev,median,user,system,min,max" > "$tmp/times.csv"
    for i in 0 1 2; do
        for ((r = 0; r < warmup; r++)); do bash -c "${cmds[i]}" >/dev/null 2>&1 || true; done
        : > "$tmp/t.$i"
        for ((r = 0; r < runs; r++)); do
            note "${names[i]}: run $((r + 1))/$runs"
            /usr/bin/time -a -o "$tmp/t.$i" -f '%e %U %S' bash -c "${cmds[i]}" >/dev/null 2>"$tmp/err" ||
                [[ $ignore -eq 1 ]] || die "'${cmds[i]}' failed: $(tail -n 3 "$tmp/err")"
        done
        grep -E '^[0-9.]+ [0-9.]+ [0-9.]+$' "$tmp/t.$i" | sort -n | awk -v name="${names[i]}" '
            { w[NR] = $1; s += $1; ss += $1 * $1; u += $2; y += $3 }
            END { m = s / NR; v = NR > 1 ? (ss - NR * m * m) / (NR - 1) : 0; if (v < 0) v = 0
                  med = NR % 2 ? w[(NR + 1) / 2] : (w[NR / 2] + w[NR / 2 + 1]) / 2
                  printf "\"%s\",%f,%f,%f,%f,%f,%f,%f\n", name, m, sqrt(v), med, u / NR, y / NR, w[1], w[NR] }' >> "$tmp/times.csv"
    done
fi

# ------------------------------------------------------------------ the table
cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
echo
what="$n modules"
[[ $n -eq $total ]] || what="$n of $total modules (--sample $sample)"
echo "Dumping the $kernel corpus ($(corpus_get "$kernel" CORPUS_VERSION), $what, $((bytes / 1000000)) MB, ${lines[0]} ORC lines): $timer, $runs runs after $warmup warm-up; $(nproc) CPUs (${cpu:-unknown CPU}), load $(cut -d' ' -f1 /proc/loadavg)."
echo
# hyperfine quotes the command column; the names hold no commas.
tail -n +2 "$tmp/times.csv" | sed 's/^"\([^"]*\)",/\1,/' | awk -F, -v n="$n" '
    { name[NR] = $1; mean[NR] = $2; sd[NR] = $3; user[NR] = $5; sys[NR] = $6 }
    END {
        print "| command | processes | wall, mean ± σ (s) | user (s) | sys (s) | per module (ms) | objtool ÷ this |"
        print "|---|---:|---:|---:|---:|---:|---:|"
        for (i = 1; i <= NR; i++)
            printf "| %s | %d | %.2f ± %.2f | %.2f | %.2f | %.2f | %.2f× |\n", name[i], i == 3 ? 1 : n,
                mean[i], sd[i], user[i], sys[i], 1000 * mean[i] / n, mean[1] / mean[i]
        printf "\norctool, one process per module ÷ one process for the directory: %.1f×\n", mean[2] / mean[3]
    }'
