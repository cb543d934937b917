#!/usr/bin/env python3
"""Every task's kernel stack in a vmcore, orctool against drgn, frame for frame; and the time
each takes for all tasks, measured in the same run (docs/vmcore.md).

usage: scripts/compare-drgn.py --vmcore FILE --vmlinux FILE [--orctool PATH] [--runs N] [--json]

orctool: `orctool unwind --vmcore FILE --vmlinux FILE --json`, one object per task.
drgn:    `prog.stack_trace(task)` for every task of `for_each_task` and every online CPU's idle
         task; inline frames (drgn expands them from DWARF; they share their caller's pc) are
         folded into the frame of their pc, so both sides list one entry per real frame.
A trace is compared up to and including its first user-space address: orctool stops there
(user-mode pt_regs end a kernel walk); drgn goes on unwinding the user stack with the
kernel's debug info, which it has not got, so what it lists after is not a kernel frame.

Each difference is classified; the summary line counts them. Exit 0 when every task both
tools list has the same frames, 1 otherwise, 2 on a usage error or a tool that failed.
"""
import argparse
import json
import subprocess
import sys
import time

USER_TOP = 0xffff800000000000  # below: a user-space address


def orctool_traces(orctool, vmcore, vmlinux):
    t0 = time.perf_counter()
    p = subprocess.run([orctool, "unwind", "--vmcore", vmcore, "--vmlinux", vmlinux, "--json"],
                       capture_output=True, text=True)
    secs = time.perf_counter() - t0
    if p.returncode not in (0, 1):
        sys.exit(f"compare-drgn: orctool failed ({p.returncode}): {p.stderr.strip()}")
    traces = {}
    for line in p.stdout.splitlines():
        o = json.loads(line)
        traces[int(o["task"], 16)] = o
    return traces, secs


def drgn_traces(vmcore, vmlinux):
    import drgn
    from drgn.helpers.linux.cpumask import for_each_online_cpu
    from drgn.helpers.linux.pid import for_each_task
    from drgn.helpers.linux.sched import idle_task

    t0 = time.perf_counter()
    prog = drgn.Program()
    prog.set_core_dump(vmcore)
    prog.load_debug_info([vmlinux])
    tasks = list(for_each_task(prog))
    tasks += [idle_task(prog, cpu) for cpu in for_each_online_cpu(prog)]
    traces = {}
    for t in tasks:
        addr = t.value_()
        if addr in traces:
            continue
        try:
            frames = [(f.pc, f.name or "") for f in prog.stack_trace(t) if not f.is_inline]
            traces[addr] = {"pid": t.pid.value_(), "comm": t.comm.string_().decode(errors="replace"), "frames": frames}
        except Exception as e:  # drgn could not start this task's walk
            traces[addr] = {"pid": t.pid.value_(), "comm": t.comm.string_().decode(errors="replace"), "error": str(e)}
    return traces, time.perf_counter() - t0


def kernel_part(pcs):
    """The frames up to and including the first user-space address."""
    out = []
    for pc in pcs:
        out.append(pc)
        if pc < USER_TOP:
            break
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vmcore", required=True)
    ap.add_argument("--vmlinux", required=True)
    ap.add_argument("--orctool", default="orctool")
    ap.add_argument("--runs", type=int, default=1, help="time each tool this many times (best run kept)")
    ap.add_argument("--json", action="store_true", help="one JSON summary line instead of text")
    a = ap.parse_args()
    try:
        import drgn  # noqa: F401
    except ImportError:
        print("compare-drgn: SKIP: drgn is not installed (pip install drgn)")
        return 0
    best_o = best_d = None
    for _ in range(max(1, a.runs)):
        o, so = orctool_traces(a.orctool, a.vmcore, a.vmlinux)
        d, sd = drgn_traces(a.vmcore, a.vmlinux)
        best_o = so if best_o is None else min(best_o, so)
        best_d = sd if best_d is None else min(best_d, sd)
    both = sorted(set(o) & set(d))
    only_o = sorted(set(o) - set(d))
    only_d = sorted(set(d) - set(o))
    equal = frames = 0
    diffs = []
    for addr in both:
        ot, dt = o[addr], d[addr]
        if "error" in ot or "error" in dt:
            diffs.append((addr, ot.get("pid"), ot.get("comm"), "error", ot.get("error") or dt.get("error")))
            continue
        ours = [int(f["ip"], 16) for f in ot["frames"]]
        theirs = kernel_part([pc for pc, _ in dt["frames"]])
        frames += len(ours)
        if ours == theirs:
            equal += 1
            continue
        i = next((k for k in range(min(len(ours), len(theirs))) if ours[k] != theirs[k]), min(len(ours), len(theirs)))
        names = dict(dt["frames"])
        what = (f"frame #{i}: orctool {hex(ours[i]) if i < len(ours) else '(end: ' + ot['end'] + ')'}"
                f" {ot['frames'][i]['symbol'] if i < len(ours) else ''}, drgn "
                f"{hex(theirs[i]) + ' ' + names.get(theirs[i], '') if i < len(theirs) else '(end)'}")
        diffs.append((addr, ot["pid"], ot["comm"], "frames", what))
    summary = {
        "tasks_orctool": len(o), "tasks_drgn": len(d), "tasks_both": len(both), "equal": equal,
        "different": len(diffs), "only_orctool": len(only_o), "only_drgn": len(only_d), "frames": frames,
        "orctool_s": round(best_o, 3), "drgn_s": round(best_d, 3), "speedup": round(best_d / best_o, 1),
    }
    if a.json:
        print(json.dumps(summary))
    else:
        for addr, pid, comm, kind, what in diffs:
            print(f"DIFF task {pid} ({comm}) {addr:#x}: {kind}: {what}")
        for addr in only_o:
            print(f"ONLY-ORCTOOL task {o[addr]['pid']} ({o[addr]['comm']}) {addr:#x}")
        for addr in only_d:
            print(f"ONLY-DRGN task {d[addr]['pid']} ({d[addr]['comm']}) {addr:#x}")
        print(f"tasks: orctool {len(o)}, drgn {len(d)}, both {len(both)}; equal {equal}, different {len(diffs)}; "
              f"{frames} frames; time for all tasks: orctool {best_o:.3f} s, drgn {best_d:.3f} s "
              f"(orctool {best_d / best_o:.1f}x faster)")
    return 0 if not diffs and not only_o and not only_d else 1


if __name__ == "__main__":
    sys.exit(main())
