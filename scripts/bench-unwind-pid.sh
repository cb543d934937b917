#!/usr/bin/env bash
# `orctool unwind --pid` against `eu-stack -p` (elfutils) on a live process with 8 threads,
# each parked 32 frames deep (the threads test program in stop mode), measured by hyperfine in
# one run so that the ratio holds on a noisy machine:
#   - symbols only: `orctool unwind --pid P --no-lines` (tables cached) vs `eu-stack -p P`;
#   - with source lines: `orctool unwind --pid P` vs `eu-stack -s -p P`;
# and the first, uncached run's time (a fresh cache directory: every table generated).
#   scripts/bench-unwind-pid.sh [RUNS]      (default 30)
set -euo pipefail
cd "$(dirname "$0")/.."

case ${1:-} in -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;; esac
runs=${1:-30}
[[ $runs =~ ^[1-9][0-9]*$ ]] || { echo "bench-unwind-pid: RUNS wants a positive number, got '$runs'" >&2; exit 2; }

# The benchmark's own tools (the tests do not use them, so .ci/run does not install them):
# installed here with apt-get when missing and possible.
need_tool() {
    local tool=$1 package=$2
    command -v "$tool" >/dev/null && return 0
    echo "bench-unwind-pid: $tool is missing; trying: apt-get install -y $package" >&2
    if [[ $(id -u) -eq 0 ]]; then apt-get install -y -qq "$package" >&2 || true
    elif command -v sudo >/dev/null; then sudo -n apt-get install -y -qq "$package" >&2 || true; fi
    command -v "$tool" >/dev/null || { echo "bench-unwind-pid: $tool is not installed (apt-get install $package)" >&2; exit 2; }
}
need_tool hyperfine hyperfine
need_tool eu-stack elfutils
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
cargo build -q --release -p orctool
orctool=$CARGO_TARGET_DIR/release/orctool
exe=$(cargo run -q -p orc-testkit --example build-programs -- threads | awk '$1 == "threads" { print $2 }')

work=$(mktemp -d)
pid=
cleanup() {
    [[ -n $pid ]] && kill "$pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

"$exe" stop 8 32 >"$work/out" &
pid=$!
for _ in $(seq 1 600); do
    grep -q '^ready$' "$work/out" 2>/dev/null && break
    sleep 0.05
done
grep -q '^ready$' "$work/out" || { echo "bench-unwind-pid: the program did not reach stop mode" >&2; exit 1; }
sleep 0.2

# First run, nothing cached: every table a walk needs is generated and stored.
start=$(date +%s%N)
"$orctool" unwind --pid "$pid" --cache-dir "$work/cache" >"$work/first.txt"
uncached_ms=$(( ($(date +%s%N) - start) / 1000000 ))
frames=$(grep -c '^#' "$work/first.txt")
threads=$(grep -c '^Thread ' "$work/first.txt")
echo "uncached first run: ${uncached_ms} ms ($threads threads, $frames frames)"

hyperfine -N -w 3 -r "$runs" --export-json "$work/h.json" \
    -n "orctool --no-lines" "$orctool unwind --pid $pid --cache-dir $work/cache --no-lines" \
    -n "eu-stack" "eu-stack -p $pid" \
    -n "orctool (lines)" "$orctool unwind --pid $pid --cache-dir $work/cache" \
    -n "eu-stack -s" "eu-stack -s -p $pid" >/dev/null

python3 - "$work/h.json" <<'EOF'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
def row(name):
    x = r[name]
    return "%-20s median %7.1f ms  min %7.1f ms" % (name, x["median"] * 1e3, x["min"] * 1e3)
for n in r:
    print(row(n))
for ours, peer in (("orctool --no-lines", "eu-stack"), ("orctool (lines)", "eu-stack -s")):
    print("%s / %s: %.2f (median), %.2f (min)" % (ours, peer, r[ours]["median"] / r[peer]["median"], r[ours]["min"] / r[peer]["min"]))
EOF
