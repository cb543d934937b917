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

# Every thread's frames as gdb sees them, through gdb's Python API (one tab-separated record per
# line; the format is described in the script, shared with the Rust tests).
frames_py=crates/testkit/gdb/frames.py

cat >"$work/compare.py" <<'EOF'
import json, sys
orc = json.load(open(sys.argv[1]))
# The records of crates/testkit/gdb/frames.py; gdb's own messages are skipped.
gdb = {}
current = None
ended = False
for line in open(sys.argv[2]):
    fields = line.rstrip("\n").split("\t")
    if fields[0] == "thread" and len(fields) == 2:
        current = gdb.setdefault(int(fields[1]), [])
    elif fields[0] == "frame" and len(fields) == 3 and current is not None:
        current.append((fields[2], fields[1]))
    elif fields == ["end"]:
        ended = True
if not ended:
    print("0 0 0 0 1")
    print("gdb did not list every thread (see its output: %s)" % sys.argv[2], file=sys.stderr)
    sys.exit(0)
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
    inline += sum(1 for _, k in theirs if k == "inline")
    tail += sum(1 for _, k in theirs if k == "tailcall")
    real = [(n, k) for n, k in theirs if k in ("normal", "signal")]
    for i, (name, kind) in enumerate(real):
        if i >= len(ours):
            bad.append("thread %d: orctool stops after %d frames, gdb has %d (%s)" % (tid, len(ours), len(real), t["end"]))
            break
        same = ours[i] == name or (kind == "signal" and ours[i] in ("__restore_rt", name))
        if not same:
            bad.append("thread %d frame #%d: orctool %s, gdb %s\n    orctool: %s\n    gdb:     %s"
                       % (tid, i, ours[i], name, " ".join(ours), " ".join(n for n, _ in real)))
            break
        compared += 1
print("%d %d %d %d %d" % (threads, compared, inline, tail, len(bad)))
for b in bad:
    print(b, file=sys.stderr)
EOF

# wait_parked PID OUT: waits (up to a minute: it bounds a broken program, it measures nothing)
# until OUT holds the line "ready" and every thread of PID sleeps in pause.
wait_parked() {
    local pid=$1 out=$2 task all nr state
    for _ in $(seq 1 1200); do
        if grep -qx ready "$out" 2>/dev/null; then
            all=1
            for task in /proc/"$pid"/task/*; do
                # /proc/PID/task/TID/syscall starts with the number of the blocking call;
                # where it cannot be read, a sleeping state (S, after the name) will do.
                if read -r nr _ <"$task/syscall" 2>/dev/null; then
                    [[ $nr == 34 ]] || { all=0; break; }
                else
                    state=$(sed 's/.*) //' "$task/stat" 2>/dev/null) || state=
                    [[ $state == S* ]] || { all=0; break; }
                fi
            done
            [[ $all == 1 && -d /proc/$pid/task ]] && return 0
        fi
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}

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
    # Ready, then every thread blocked in pause (system call 34), as the Rust tests wait
    # (orc_testkit::programs::spawn_stopped): no sleep that a busy machine could outlast.
    if ! wait_parked "$pid" "$out"; then
        printf '%-18s %s\n' "$name" "did not reach stop mode"
        failed=1
        continue
    fi
    "$orctool" unwind --pid "$pid" --json --cache-dir "$work/cache" >"$work/$name.json"
    gdb -p "$pid" -batch -nx -iex 'set debuginfod enabled off' -x "$frames_py" >"$work/$name.gdb" 2>&1 </dev/null || true
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    read -r threads compared inline tail nbad < <(python3 "$work/compare.py" "$work/$name.json" "$work/$name.gdb" 2>"$work/$name.bad")
    if [[ $nbad == 0 ]]; then result=same; else result="DIFFERENT ($nbad threads)"; failed=1; fi
    printf '%-18s %7s %9s %8s %9s  %s\n' "$name" "$threads" "$compared" "$inline" "$tail" "$result"
    [[ $nbad == 0 ]] || sed 's/^/    /' "$work/$name.bad"
done
exit $failed
