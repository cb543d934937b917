#!/usr/bin/env bash
# `orctool unwind --pid` against gdb's backtrace on the C test programs (crates/testkit/programs),
# each started in stop mode (every thread parked at the bottom of a deep chain).
#
# For every thread, the function names of orctool's frames are compared with gdb's, frame for
# frame, as far as gdb's backtrace goes. gdb shows two kinds of frames that are not on the
# stack and that no stack unwinder can see: functions inlined into their caller (from DWARF
# inline records) and functions that tail-called the next one (gdb rebuilds them from DWARF
# call-site records). Those are left out of the comparison and counted in the table.
#
#   scripts/compare-gdb.sh [PROGRAM...]      (default: every program)
# Prints one row per program and exits 1 on any mismatch (the mismatching threads are shown).
set -euo pipefail
cd "$(dirname "$0")/.."

command -v gdb >/dev/null || { echo "compare-gdb: gdb is not installed" >&2; exit 2; }
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
cargo build -q --release -p orctool
orctool=$CARGO_TARGET_DIR/release/orctool

work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

# Every thread's frames as gdb sees them: "tid name:TYPE name:TYPE ...".
cat >"$work/frames.py" <<'EOF'
import gdb
kinds = {gdb.NORMAL_FRAME: "N", gdb.INLINE_FRAME: "I", gdb.TAILCALL_FRAME: "T", gdb.SIGTRAMP_FRAME: "S"}
for t in sorted(gdb.selected_inferior().threads(), key=lambda t: t.ptid[1]):
    t.switch()
    f = gdb.newest_frame()
    out = []
    while f is not None:
        name = f.name() or "??"
        out.append("%s:%s" % (name, kinds.get(f.type(), "N")))
        try:
            f = f.older()
        except gdb.error:
            break
    print("FRAMES", t.ptid[1], " ".join(out))
EOF

cat >"$work/compare.py" <<'EOF'
import json, sys
orc = json.load(open(sys.argv[1]))
gdb = {}
for line in open(sys.argv[2]):
    if line.startswith("FRAMES "):
        parts = line.split()
        gdb[int(parts[1])] = [p.rsplit(":", 1) for p in parts[2:]]
threads = compared = inline = tail = 0
bad = []
for t in orc["threads"]:
    tid = t["tid"]
    ours = [f["function"] or "??" for f in t["frames"]]
    theirs = gdb.get(tid)
    threads += 1
    if theirs is None:
        bad.append("thread %d: gdb did not list it" % tid)
        continue
    inline += sum(1 for _, k in theirs if k == "I")
    tail += sum(1 for _, k in theirs if k == "T")
    real = [(n, k) for n, k in theirs if k in ("N", "S")]
    for i, (name, kind) in enumerate(real):
        if i >= len(ours):
            bad.append("thread %d: orctool stops after %d frames, gdb has %d (%s)" % (tid, len(ours), len(real), t["end"]))
            break
        same = ours[i] == name or (kind == "S" and ours[i] in ("__restore_rt", name))
        if not same:
            bad.append("thread %d frame #%d: orctool %s, gdb %s\n    orctool: %s\n    gdb:     %s"
                       % (tid, i, ours[i], name, " ".join(ours), " ".join(n for n, _ in real)))
            break
        compared += 1
print("%d %d %d %d %d" % (threads, compared, inline, tail, len(bad)))
for b in bad:
    print(b, file=sys.stderr)
EOF

mapfile -t builds < <(cargo run -q -p orc-testkit --example build-programs -- "$@")
printf '%-18s %7s %9s %8s %9s  %s\n' program threads compared inlined tailcall result
failed=0
for line in "${builds[@]}"; do
    name=${line%% *}
    exe=${line#* }
    out=$work/$name.out
    "$exe" stop >"$out" 2>/dev/null &
    pid=$!
    pids+=("$pid")
    for _ in $(seq 1 600); do
        grep -q '^ready$' "$out" 2>/dev/null && break
        sleep 0.05
    done
    if ! grep -q '^ready$' "$out"; then
        printf '%-18s %s\n' "$name" "did not reach stop mode"
        failed=1
        continue
    fi
    sleep 0.2 # the other threads park right after "ready"
    "$orctool" unwind --pid "$pid" --json --cache-dir "$work/cache" >"$work/$name.json"
    gdb -p "$pid" -batch -nx -x "$work/frames.py" >"$work/$name.gdb" 2>/dev/null </dev/null || true
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    read -r threads compared inline tail nbad < <(python3 "$work/compare.py" "$work/$name.json" "$work/$name.gdb" 2>"$work/$name.bad")
    if [[ $nbad == 0 ]]; then result=same; else result="DIFFERENT ($nbad threads)"; failed=1; fi
    printf '%-18s %7s %9s %8s %9s  %s\n' "$name" "$threads" "$compared" "$inline" "$tail" "$result"
    [[ $nbad == 0 ]] || sed 's/^/    /' "$work/$name.bad"
done
exit $failed
