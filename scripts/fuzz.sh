#!/usr/bin/env bash
# Coverage-guided fuzzing of orctool's readers and analyses (libFuzzer; docs/fuzzing.md).
#
#   bash scripts/fuzz.sh SECONDS [--jobs N] [--only T1,T2] [--keep-going] [--smoke] [--build-only]
#
# Builds the targets of fuzz/ (their own workspace) with libFuzzer's coverage instrumentation,
# makes the seed corpora when they are missing (scripts/fuzz-seeds.sh), then runs every target
# for SECONDS each, N at a time (default 1), on the corpus kept in ~/.cache/orctool/fuzz/corpus
# (it grows from run to run: a campaign resumes). A crash, a panic, a timeout or running out of
# memory fails the run; the input is kept under ~/.cache/orctool/fuzz/artifacts/TARGET and
# named (--smoke: from the seeds alone, the grown corpus neither read nor written, so that a
# short run's time does not depend on how long earlier campaigns ran; --keep-going: libFuzzer's fork mode goes on after a finding, for campaigns; the run
# still fails if there was one). One line per target at the end: executions, coverage (cov: edges, ft: features), corpus
# size, seconds; totals are appended to ~/.cache/orctool/fuzz/stats.tsv.
#
# Needs no nightly toolchain and no cargo-fuzz: plain cargo with the sanitizer-coverage passes
# (stable rustc), libFuzzer from the libfuzzer-sys crate (built with the C++ compiler). Debug
# assertions and overflow checks are on: an overflow on input is a finding.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

seconds=${1:?usage: fuzz.sh SECONDS [--jobs N] [--only T1,T2] [--build-only]}
shift
jobs=1
only=""
build_only=0
keep_going=0
smoke=0
while [ $# -gt 0 ]; do
    case "$1" in
        --jobs) jobs=$2; shift 2 ;;
        --only) only=$2; shift 2 ;;
        --build-only) build_only=1; shift ;;
        --keep-going) keep_going=1; shift ;;
        --smoke) smoke=1; shift ;;
        *) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
    esac
done

cache=${ORCTOOL_FUZZ_DIR:-$HOME/.cache/orctool/fuzz}
mkdir -p "$cache"
start=$(date +%s)

# Its own target directory: the instrumented build shares nothing with the normal one.
export CARGO_TARGET_DIR=${ORCTOOL_FUZZ_TARGET_DIR:-$repo/fuzz/target}
triple=$(rustc -vV | sed -n 's/^host: //p')
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
# --target: the flags reach the targets and their dependencies, not build scripts.
(cd fuzz && cargo build --release --target "$triple" --bins)
bin=$CARGO_TARGET_DIR/$triple/release
echo "fuzz.sh: built in $(( $(date +%s) - start )) s"

targets=$(sed -n 's/^name = "\(.*\)"$/\1/p' fuzz/Cargo.toml | grep -v '^orctool-fuzz$')
if [ -n "$only" ]; then
    targets=$(echo "$targets" | grep -x -F -f <(tr , '\n' <<<"$only"))
fi
[ "$build_only" = 1 ] && exit 0

bash scripts/fuzz-seeds.sh "$cache/corpus"

run_one() {
    local t=$1 corpus=$cache/corpus/$1 art=$cache/artifacts/$1 log=$cache/logs/$1.log
    if [ "$smoke" = 1 ]; then
        corpus=$(mktemp -d)
        trap 'rm -rf "$corpus"' RETURN
    fi
    mkdir -p "$corpus" "$art" "$cache/logs"
    local t0 rc=0 max_len=262144
    # Cores hold whole stacks and data segments: the seeds are up to 1 MB.
    [ "$t" = core_file ] && max_len=1048576
    t0=$(date +%s)
    # -timeout: one input may take 10 s (a whole kernel module through check is ~50 ms);
    # -rss_limit_mb: the inputs are small, 2 GB is a leak.
    local more=()
    [ "$keep_going" = 1 ] && more=(-fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1)
    # The smoke is part of the test command: a fixed seed and a fixed number of runs (not a
    # time), so that it finds the same inputs on every machine and run: it fails when the code
    # or the seeds change, never by chance.
    [ "$smoke" = 1 ] && more+=(-seed=1 -runs=2000)
    local before
    before=$(ls "$art" | wc -l)
    "$bin/$t" "$corpus" "$cache/seeds/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -max_len=$max_len -artifact_prefix="$art/" -print_final_stats=1 "${more[@]}" >"$log" 2>&1 || rc=$?
    # Fork mode exits 0 after findings: the artifacts tell.
    [ "$rc" -eq 0 ] && [ "$(ls "$art" | wc -l)" -gt "$before" ] && rc=1
    local took=$(( $(date +%s) - t0 ))
    local runs cov ft corp
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    # Fork mode prints no final stats: its last status line counts the executions.
    [ -n "$runs" ] || runs=$(grep -E '^#[0-9]+' "$log" | tail -1 | sed -E 's/^#([0-9]+).*/\1/')
    read -r cov ft corp < <(grep -E '^#[0-9]+' "$log" | tail -1 | sed -E 's/.*cov: ([0-9]+) ft: ([0-9]+) corp: ([0-9]+).*/\1 \2 \3/;t;s/.*/0 0 0/')
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$(date -u +%FT%TZ)" "$t" "$took" "${runs:-0}" "${cov:-0}" "${ft:-0}" "${corp:-0}" "$rc" >>"$cache/stats.tsv"
    if [ "$rc" -ne 0 ]; then
        echo "FAIL $t: exit $rc after $took s; $(ls -t "$art" | head -1 | sed "s|^|$art/|"); log $log"
        grep -m1 -E "panicked at|ERROR: libFuzzer" "$log" || true
        return 1
    fi
    echo "ok   $t: ${runs:-0} runs in $took s, cov ${cov:-0}, ft ${ft:-0}, corpus ${corp:-0}"
}
export -f run_one
export bin cache seconds keep_going smoke

status=0
echo "$targets" | xargs -P "$jobs" -I{} bash -c 'run_one {}' || status=1
echo "fuzz.sh: $(echo "$targets" | wc -l) targets, ${seconds} s each, $jobs at a time, $(( $(date +%s) - start )) s in all"
exit $status
