#!/usr/bin/env bash
# orctool perf-script against perf script on the same perf.data files, in the same run:
# records three profiles once (cached in ~/.cache/orctool/perf: the C test programs, gzip,
# python3; perf record --call-graph dwarf, cpu-clock at 10 kHz), then times both tools
# ROUNDS times, interleaved (the machine is shared: CPU time, user+sys, is the figure; wall
# time is printed too), and compares their frames with scripts/perf-script-compare.py.
#   scripts/bench-perf-script.sh [ROUNDS]      (default 3; needs perf: Debian's linux-perf)
set -euo pipefail
ROUNDS=${1:-3}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=${ORCTOOL_PERF_DIR:-$HOME/.cache/orctool/perf}
ORCTOOL=${ORCTOOL:-$ROOT/target/release/orctool}
mkdir -p "$DIR"
command -v perf >/dev/null || { echo "SKIP: perf is not installed (apt-get install linux-perf)"; exit 0; }
[ -x "$ORCTOOL" ] || (cd "$ROOT" && cargo build --release -p orctool)
start=$(date +%s)

record() { # NAME CMD...
    local name=$1; shift
    [ -s "$DIR/$name.data" ] && return
    echo "recording $name..."
    perf record -q -e cpu-clock -F 10000 --call-graph dwarf -o "$DIR/$name.data.tmp" -- "$@" >/dev/null 2>"$DIR/$name.record.log"
    mv "$DIR/$name.data.tmp" "$DIR/$name.data"
}

# The C test programs, built as the tests build them (gcc -O2 -fomit-frame-pointer -g, PIE).
PROGS="$DIR/programs"
mkdir -p "$PROGS"
for c in "$ROOT"/crates/testkit/programs/*.c; do
    n=$(basename "$c" .c)
    [ -x "$PROGS/$n" ] || gcc -O2 -fomit-frame-pointer -g -pthread -fPIE -pie -I"$ROOT/crates/testkit/programs" -o "$PROGS/$n" "$c"
done
cat > "$PROGS/run-all.sh" <<RUN
#!/bin/sh
for i in \$(seq 20); do
  "$PROGS/recursion" 200 >/dev/null; "$PROGS/switch" 10000000 >/dev/null; "$PROGS/tailcall" 2000000 >/dev/null
  "$PROGS/alloca_drap" 4000 >/dev/null; "$PROGS/noreturn" 30000 >/dev/null; "$PROGS/setjmp" 5000 >/dev/null
  "$PROGS/threads" 4 64 >/dev/null; "$PROGS/signal_leaf" 3 >/dev/null
done
RUN
chmod +x "$PROGS/run-all.sh"
record programs "$PROGS/run-all.sh"
[ -s "$DIR/gzip.in" ] || head -c 30000000 /dev/urandom | base64 > "$DIR/gzip.in"
record gzip gzip -9 -c "$DIR/gzip.in"
cat > "$DIR/work.py" <<'PY'
import json, re, zlib
def fib(n): return n if n < 2 else fib(n - 1) + fib(n - 2)
data = [{"k": i, "v": str(i) * 5} for i in range(20000)]
for r in range(30):
    s = json.dumps(data); json.loads(s); zlib.compress(s.encode()); re.findall(r"\d+", s); fib(22)
PY
record python3 /usr/bin/python3 "$DIR/work.py"

cpu() { /usr/bin/time -f "%U %S %e" "$@" 2>&1 >/dev/null | tail -1; }
printf '%-10s %8s %6s  %-22s %-22s %s\n' profile samples round "perf script cpu (wall)" "orctool cpu (wall)" "cpu ratio"
for name in programs gzip python3; do
    f="$DIR/$name.data"
    "$ORCTOOL" perf-script -i "$f" >"$DIR/$name.orctool.txt"   # tables made and cached once
    perf script -i "$f" >"$DIR/$name.perf.txt" 2>/dev/null
    samples=$(grep -c '^[^[:space:]]' "$DIR/$name.perf.txt")
    for r in $(seq "$ROUNDS"); do
        read -r pu ps pw < <(cpu perf script -i "$f")
        read -r ou os ow < <(cpu "$ORCTOOL" perf-script -i "$f")
        python3 - "$name" "$samples" "$r" "$pu" "$ps" "$pw" "$ou" "$os" "$ow" <<'PY'
import sys
n, s, r, pu, ps, pw, ou, os_, ow = sys.argv[1:]
p, o = float(pu) + float(ps), float(ou) + float(os_)
print(f"{n:10} {s:>8} {r:>6}  {p:6.2f} s ({float(pw):5.2f} s)      {o:6.2f} s ({float(ow):5.2f} s)     {p / max(o, 0.01):5.1f}x")
PY
    done
done
for name in programs gzip python3; do
    echo "== $name: frames, perf script vs orctool perf-script"
    python3 "$ROOT/scripts/perf-script-compare.py" "$DIR/$name.perf.txt" "$DIR/$name.orctool.txt" || true
done
# Ground truth for the code every profile starts in (ld.so's start-up, libc's locale and
# open paths): verify-exec single-steps `env` and compares an ORC unwind at every instruction
# with the shadow stack of calls it executed. Every disagreement, by function and reason:
echo "== ground truth: orctool verify-exec --json -- /usr/bin/env LANG=C.UTF-8 true"
[ -s "$DIR/verify-exec-env.json" ] || "$ORCTOOL" verify-exec --json -- /usr/bin/env LANG=C.UTF-8 true >"$DIR/verify-exec-env.json"
python3 - "$DIR/verify-exec-env.json" <<'PY'
import collections, json, re, sys
d = json.load(open(sys.argv[1]))
print(f"steps checked {d['checked']}, ORC agrees with the shadow stack at {d['agree']}, disagrees at {d['disagree']}")
by = collections.Counter()
for x in d["disagreements"]:
    why = re.sub(r"0x[0-9a-f]+", "ADDR", x["mismatch"].get("why", x["mismatch"]["kind"]))
    by[(x["module"].rsplit("/", 1)[-1], x["function"].split("+")[0], why)] += x["count"]
for (module, fn, why), n in by.most_common(12):
    print(f"  {n:7}  {module} {fn}: {why}")
PY
echo "bench-perf-script: $(( $(date +%s) - start )) s"
