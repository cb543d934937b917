#!/usr/bin/env bash
# Compare `orctool dump M` with the real `objtool --dump=orc M`, byte for byte, over a module corpus.
#
# usage: scripts/compat-dump.sh [--kernel 6.12|6.1|7.2|all] [--sample N] [--orctool PATH] [--jobs N]
#                               [--only REGEX] [--show N] [--out DIR] [--timeout SECONDS]
#   --kernel K     corpus to use (default 6.12; fetch it first with scripts/fetch-corpus.sh K)
#   --sample N     only N modules, a fixed spread over the sorted list (the same N modules every run)
#   --orctool P    binary to test (default: `cargo build --release -p orctool`, then
#                  ${CARGO_TARGET_DIR:-<repo>/target}/release/orctool)
#   --jobs N       modules compared in parallel (default: number of CPUs)
#   --only REGEX   only modules whose path (e.g. drivers/block/null_blk/null_blk.ko) matches REGEX (grep -E)
#   --show N       how many differing and failed modules to show (default 5)
#   --out DIR      keep every diff and failure log in DIR/<K>/ (default: a temporary directory,
#                  deleted when everything is identical, kept and named otherwise)
#   --timeout S    per tool and module (default 300)
#
# Prints per kernel: "N identical, M different, K failed, X without ORC" (X: modules without
# .orc_unwind for which both tools printed nothing and exited 0; not counted in N), then the first
# differences (diff -u objtool orctool) and failures. Failed = a tool exited non-zero, crashed or
# timed out. Exit status: 0 all identical, 1 something differed or failed, 2 usage/setup error.
set -euo pipefail
export LC_ALL=C

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scripts/lib/corpus.sh
. "$here/lib/corpus.sh"
# shellcheck source=scripts/lib/orctool.sh
. "$here/lib/orctool.sh"

die() { echo "compat-dump: error: $*" >&2; exit 2; }
usage() { sed -n '4,5p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

kernel=6.12 sample=0 orctool="" jobs=$(nproc 2>/dev/null || echo 2) only="" show=5 out="" tmo=300
while [[ $# -gt 0 ]]; do
    [[ $1 != --*=* ]] || { set -- "${1%%=*}" "${1#*=}" "${@:2}"; }
    case $1 in
        --kernel|--sample|--orctool|--jobs|-j|--only|--show|--out|--timeout)
            [[ $# -ge 2 ]] || die "$1 needs a value" ;;&
        --kernel)  kernel=$2; shift ;;
        --sample)  sample=$2; shift ;;
        --orctool) orctool=$2; shift ;;
        --jobs|-j) jobs=$2; shift ;;
        --only)    only=$2; shift ;;
        --show)    show=$2; shift ;;
        --out)     out=$2; shift ;;
        --timeout) tmo=$2; shift ;;
        -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
        *) echo "compat-dump: unknown argument '$1'" >&2; usage ;;
    esac
    shift
done
for v in sample jobs show tmo; do [[ ${!v} =~ ^[0-9]+$ ]] || die "--${v/tmo/timeout} wants a number, got '${!v}'"; done
[[ $jobs -gt 0 ]] || die "--jobs must be at least 1"
case $kernel in all) kernels=$CORPUS_KERNELS ;; *) corpus_check_kernel "$kernel" || exit 2; kernels=$kernel ;; esac
for k in $kernels; do corpus_require "$k" || exit 2; done

# ------------------------------------------------------------------ the binary under test
orctool=$(orctool_bin "$orctool") || exit 2

# ------------------------------------------------------------------ one module, run in parallel
# Environment: CD_OBJTOOL CD_ORCTOOL CD_MODDIR CD_NOORC CD_OUT CD_TIMEOUT; arguments: module paths.
# Prints one line per module: "<identical|different|failed|noorc> <path>".
# shellcheck disable=SC2016
worker='
set -u
describe() {
    case $1 in
        0) echo "exit 0" ;;
        124) echo "timed out after ${CD_TIMEOUT}s" ;;
        12[5-7]) echo "could not run (exit $1)" ;;
        *) if [ "$1" -gt 128 ]; then echo "killed by signal $(($1 - 128)) ($(kill -l $(($1 - 128)) 2>/dev/null))"; else echo "exit $1"; fi ;;
    esac
}
t=$CD_OUT/.tmp.$$
# bash reports tools killed by a signal on its own stderr: keep that out of the report.
exec 2>> "$CD_OUT/workers.stderr"
for rel in "$@"; do
    m=$CD_MODDIR/$rel slug=${rel//\//__}
    timeout "$CD_TIMEOUT" "$CD_OBJTOOL" --dump=orc "$m" > "$t.a" 2> "$t.ae"; ra=$?
    timeout "$CD_TIMEOUT" "$CD_ORCTOOL" dump "$m" > "$t.b" 2> "$t.be"; rb=$?
    if [ $ra -ne 0 ] || [ $rb -ne 0 ]; then
        {
            echo "objtool --dump=orc: $(describe $ra), $(wc -l < "$t.a") lines on stdout"
            head -n 5 "$t.ae" | sed "s/^/    /"
            echo "orctool dump: $(describe $rb), $(wc -l < "$t.b") lines on stdout"
            head -n 5 "$t.be" | sed "s/^/    /"
        } > "$CD_OUT/failed/$slug.txt"
        echo "failed $rel"
    elif cmp -s "$t.a" "$t.b"; then
        if [ ! -s "$t.a" ] && grep -qxF -- "$rel" "$CD_NOORC"; then echo "noorc $rel"; else echo "identical $rel"; fi
    else
        {
            echo "objtool: $(wc -l < "$t.a") lines, $(wc -c < "$t.a") bytes; orctool: $(wc -l < "$t.b") lines, $(wc -c < "$t.b") bytes; $(cmp "$t.a" "$t.b" 2>&1 | sed "s|$t.a|objtool|; s|$t.b|orctool|; s/^.*differ: /first difference: /")"
            diff -u --speed-large-files --label "objtool --dump=orc $rel" --label "orctool dump $rel" "$t.a" "$t.b" | head -n 400
        } > "$CD_OUT/diffs/$slug.diff"
        echo "different $rel"
    fi
done
rm -f "$t.a" "$t.ae" "$t.b" "$t.be"
'

count() { awk -v w="$1" '$1 == w' "$kout/results.txt" | wc -l; }

status=0
for k in $kernels; do
    moddir=$(corpus_modules "$k")
    objtool=$(corpus_objtool "$k")

    if [[ -n $out ]]; then kout=$out/$k; rm -rf "$kout"; mkdir -p "$kout"; keep=1
    else kout=$(mktemp -d "${TMPDIR:-/tmp}/compat-dump-$k.XXXXXX"); keep=0; fi
    mkdir -p "$kout/diffs" "$kout/failed"

    # The module list: sorted, filtered, then every (total/N)-th for a sample.
    if [[ -n $only ]]; then
        grep -E -- "$only" "$(corpus_list "$k")" > "$kout/selected.list" || true
    else
        cp "$(corpus_list "$k")" "$kout/selected.list"
    fi
    total=$(wc -l < "$kout/selected.list")
    [[ $total -gt 0 ]] || die "$k: no module matches --only '$only'"
    if [[ $sample -gt 0 && $sample -lt $total ]]; then
        awk -v n="$sample" -v t="$total" 'BEGIN { for (j = 0; j < n; j++) sel[int(j * t / n)] = 1 } sel[NR - 1]' \
            "$kout/selected.list" > "$kout/selected.tmp"
        mv "$kout/selected.tmp" "$kout/selected.list"
    fi
    n=$(wc -l < "$kout/selected.list")

    echo "compat-dump: $k: comparing $n modules with $jobs jobs: $objtool vs $orctool" >&2
    start=$(date +%s.%N)
    CD_OBJTOOL=$objtool CD_ORCTOOL=$orctool CD_MODDIR=$moddir CD_NOORC=$(corpus_no_orc_list "$k") \
    CD_OUT=$kout CD_TIMEOUT=$tmo \
        xargs -d '\n' -n 16 -P "$jobs" bash -c "$worker" worker < "$kout/selected.list" > "$kout/results.unsorted" ||
        die "$k: the comparison workers failed (see above)"
    sort -k2 "$kout/results.unsorted" > "$kout/results.txt"; rm -f "$kout/results.unsorted"
    secs=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')

    n_id=$(count identical) n_diff=$(count different) n_fail=$(count failed) n_noorc=$(count noorc)
    [[ $((n_id + n_diff + n_fail + n_noorc)) -eq $n ]] || die "$k: got $((n_id + n_diff + n_fail + n_noorc)) results for $n modules"

    all=$(corpus_get "$k" CORPUS_MODULE_COUNT) what="$n modules"
    if [[ $n -ne $all ]]; then
        what="$n of $all modules"
        [[ -z $only ]] || what+=" matching '$only'"
        [[ $sample -eq 0 ]] || what+=" (--sample $sample)"
    fi
    echo "== kernel $k ($(corpus_get "$k" CORPUS_VERSION)): $what, ${secs}s"
    echo "$n_id identical, $n_diff different, $n_fail failed, $n_noorc without ORC (no .orc_unwind; both tools printed nothing)"

    if [[ $n_diff -gt 0 ]]; then
        echo
        echo "first differences ($((n_diff < show ? n_diff : show)) of $n_diff; diff -u objtool orctool):"
        awk '$1 == "different" { print $2 }' "$kout/results.txt" | head -n "$show" | while read -r rel; do
            f=$kout/diffs/${rel//\//__}.diff
            echo "== $rel: $(head -n 1 "$f")"
            sed -n '2,25p' "$f"
        done
    fi
    if [[ $n_fail -gt 0 ]]; then
        echo
        echo "first failures ($((n_fail < show ? n_fail : show)) of $n_fail):"
        awk '$1 == "failed" { print $2 }' "$kout/results.txt" | head -n "$show" | while read -r rel; do
            echo "== $rel"
            sed 's/^/  /' "$kout/failed/${rel//\//__}.txt"
        done
    fi
    if [[ $n_diff -gt 0 || $n_fail -gt 0 ]]; then
        status=1
        echo
        echo "all results: $kout/results.txt; diffs: $kout/diffs/; failures: $kout/failed/"
    elif [[ $keep -eq 0 ]]; then
        rm -rf "$kout"
    fi
done
exit $status
