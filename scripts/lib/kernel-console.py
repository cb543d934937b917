#!/usr/bin/env python3
"""Read the serial console of a kernel-build.sh boot (scripts/lib/kernel-guest-init.sh as /init).

usage: kernel-console.py check NAME CONSOLE_LOG FUNCTIONS_JSON
         one summary line; writes the function names per source to FUNCTIONS_JSON;
         exit 0 if the boot passed, 1 if not
       kernel-console.py compare NAME_A A.json NAME_B B.json
         one line per source, where the traces ended, and a last line; exit 0 if the sources that do not
         depend on timing (the sleeping tasks' /proc/<pid>/stack, the stack tracer) name the same functions

A boot passes when: /init was reached and finished (`ORCTEST done`); no unwinder complaint (the ORC
unwinder's `WARNING: ...` messages, the `unwind stack type:` dumps `unwind_debug` adds); no kernel error
(BUG, Oops, WARNING: CPU, panic, jump_label fatal); the sysrq-t call traces, /proc/<pid>/stack, the
stack traces of trace events and of the function tracer are all there, and none of the function
tracer's stack entries is an unresolved address (the trace events' may end in a kprobe instruction slot); the livepatch transitions (which need reliable stack traces of every
task) both finish and /proc/cmdline is patched while the patch is on; and every trace (console call
traces, trace events, function tracer) ends at the bottom of its stack: syscall or user-mode interrupt
entry, a kthread's ret_from_fork, an idle task's startup code (a trace that ends elsewhere was cut short),
except in the retpoline thunks, which the kernel marks UNWIND_HINT_UNDEFINED on purpose.

Function names come from: `calltrace` (the reliable entries of the printk'ed call traces: sysrq-t,
sysrq-l), `calltrace?` (the `? ` entries: stack words the unwinder did not walk through),
`proc-stack`, `events`, `function` (in-guest summaries of the trace buffer), `stack-tracer`.
"""
import json
import re
import sys

TS = r"^(?:\[\s*\d+\.\d+\]\s?)?"
RE_CALL = re.compile(TS + r"\s*(\? )?([A-Za-z_.$][\w.$]*)\+0x[0-9a-f]+/0x[0-9a-f]+(?: \[[\w-]+\])?\s*$")
RE_PROC = re.compile(r"^\[<[0-9a-f]+>\] ([A-Za-z_.$][\w.$]*)\+0x[0-9a-f]+/0x[0-9a-f]+")
RE_STACKTRACER = re.compile(r"^\s*\d+\)\s+\d+\s+\d+\s+([A-Za-z_.$][\w.$]*)\+0x[0-9a-f]+/0x[0-9a-f]+")
RE_MARK = re.compile(r"ORCTEST (\S+)(?: (.*))?$")
RE_FN = re.compile(r"ORCFN (\S+) (\S+) (\d+)\s*$")
RE_TIME = re.compile(r"^\[\s*(\d+\.\d+)\]")
RE_LAST = re.compile(r"ORCLAST (\S+) (\S+) (\d+)\s*$")
# Where a complete kernel stack trace ends: the entry code of a syscall or of an interrupt or exception taken
# in user mode, a kthread's first frame, an idle task's startup code. A trace that ends anywhere else was
# cut short by the unwinder. ("(unresolved)": a kprobe's instruction slot, see the events source.)
RE_BOTTOM = re.compile(r"^(entry_SYSCALL_64(_after_hwframe)?|entry_SYSENTER_compat\w*|entry_SYSCALL_compat\w*|"
                       r"entry_INT80_compat|ret_from_fork(_asm)?|asm_\w+|common_startup_64|secondary_startup_64\w*|"
                       r"x86_64_start_\w+|start_kernel|xen_start_kernel|startup_64|\(unresolved\))$")
# Code the kernel marks UNWIND_HINT_UNDEFINED on purpose (arch/x86/lib/retpoline.S: the retpoline thunks'
# bodies): an interrupt taken there unwinds to it and stops, on any kernel. Counted apart, not a failure.
RE_UNDEFINED_BY_DESIGN = re.compile(r"^__x86_indirect_(call_|jump_)?thunk_\w+$")
# Sources whose function sets do not depend on timing: the sleeping tasks' stacks and the deepest stack.
# The others sample whatever the CPU was doing when an interrupt or an event came, and differ between two
# boots of the same kernel (docs/kernel-build.md): for them the comparison reports the overlap.
STABLE_SOURCES = ("proc-stack", "stack-tracer")
UNWINDER = [
    re.compile(p) for p in (
        r"WARNING: (can't access|stack going in the wrong direction|bad lookup|Bad or missing \.orc_unwind|"
        r"Corrupt \.orc_unwind|unknown (SP|BP) base reg|unknown \.orc_unwind entry type)",
        r"WARNING: .*unwind",
        r"missing (R10|R13|RDI|DX) value at",
        r"unwind stack type:",
        r"kernel stack regs at .* in .* has bad",
    )
]
KERNEL_ERRORS = [
    re.compile(p) for p in (
        r"WARNING: CPU: \d+ PID: \d+", r"\bBUG: ", r"kernel BUG at", r"\bOops\b", r"Kernel panic",
        r"jump_label: Fatal", r"general protection fault", r"invalid opcode:", r"Unable to handle", r"stack-protector",
        r"alternatives: .*(failed|BUG)",
    )
]


def check(name, log_path, json_path):
    sources = {}
    counts = {}
    marks = {}
    unwinder, errors = [], []
    calltraces = unreliable = 0
    init_time = None
    section = None
    bottoms = {}          # source -> {last entry: count}
    trace_last = None     # last reliable entry of the console call trace being read
    with open(log_path, "rb") as f:
        lines = f.read().decode("utf-8", "replace").replace("\r", "").split("\n")
    for line in lines:
        m = RE_MARK.search(line)
        if m:
            key, rest = m.group(1), (m.group(2) or "")
            marks.setdefault(key, []).append(rest)
            if key == "stack-tracer":
                section = "stack-tracer" if rest == "begin" else None
            elif key in ("proc-stack",):
                section = "proc-stack"
            elif key == "proc-stacks":
                section = None
            continue
        m = RE_LAST.search(line)
        if m:
            b = bottoms.setdefault(m.group(1), {})
            b[m.group(2)] = b.get(m.group(2), 0) + int(m.group(3))
            continue
        m = RE_FN.search(line)
        if m:
            src, fn, n = m.group(1), m.group(2), int(m.group(3))
            sources.setdefault(src, set()).add(fn)
            counts[src] = counts.get(src, 0) + n
            continue
        if init_time is None and "Run /init as init process" in line:
            t = RE_TIME.match(line)
            init_time = float(t.group(1)) if t else -1.0
        if any(p.search(line) for p in UNWINDER):
            unwinder.append(line.strip())
        if any(p.search(line) for p in KERNEL_ERRORS):
            errors.append(line.strip())
        if "Call Trace:" in line:
            calltraces += 1
            trace_last = ""
        if trace_last is not None and "</TASK>" in line:
            b = bottoms.setdefault("calltrace", {})
            b[trace_last or "(empty)"] = b.get(trace_last or "(empty)", 0) + 1
            trace_last = None
        if section == "proc-stack":
            m = RE_PROC.match(line)
            if m:
                sources.setdefault("proc-stack", set()).add(m.group(1))
                continue
        if section == "stack-tracer":
            m = RE_STACKTRACER.match(line)
            if m:
                sources.setdefault("stack-tracer", set()).add(m.group(1))
                continue
        m = RE_CALL.match(line)
        if m:
            if m.group(1):
                unreliable += 1
                sources.setdefault("calltrace?", set()).add(m.group(2))
            else:
                sources.setdefault("calltrace", set()).add(m.group(2))
                if trace_last is not None:
                    trace_last = m.group(2)

    def mark_kv(key):
        """The key=value pairs of the last marker KEY."""
        vals = marks.get(key, [""])[-1]
        return dict(kv.split("=", 1) for kv in vals.split() if "=" in kv)

    problems = []
    if "init" not in marks:
        problems.append("/init never ran")
    elif "done" not in marks:
        problems.append("/init did not finish")
    if unwinder:
        problems.append("%d unwinder complaints (first: %s)" % (len(unwinder), unwinder[0]))
    if errors:
        problems.append("%d kernel error lines (first: %s)" % (len(errors), errors[0]))
    if "init" in marks:
        if "sysrq-t" not in marks or calltraces == 0:
            problems.append("no sysrq-t call traces")
        if not sources.get("proc-stack"):
            problems.append("no /proc/<pid>/stack")
        for src in ("events", "function"):
            kv = mark_kv(src)
            if int(kv.get("traces", 0)) == 0:
                problems.append("no %s stack traces" % src)
            # events: an interrupt taken in a kprobe's instruction slot ends its trace with that slot's
            # address (no symbol, no ORC): expected, so only counted. The function tracer's traces start
            # in the traced function, where every entry must resolve.
            if src == "function" and int(kv.get("unresolved", 0)) != 0:
                problems.append("%s: %s unresolved stack entries" % (src, kv["unresolved"]))
        for key, rest in ((k, r) for k in ("insmod", "kprobe", "event") for r in marks.get(k, [])):
            if "FAILED" in rest:
                problems.append("%s %s" % (key, rest))
        lp = {k: v for k, v in ((r.split(" ", 1) + [""])[:2] for r in marks.get("livepatch", []))}
        if "enable" not in lp:
            problems.append("livepatch not loaded")
        else:
            for step in ("enable", "disable"):
                # transition=gone: the disabled patch was freed, which happens only after its transition
                if not re.search(r"transition=(0|gone) ", lp.get(step, "")):
                    problems.append("livepatch %s transition did not finish (%s)" % (step, lp.get(step, "missing")))
            if "live patched" not in lp.get("cmdline", ""):
                problems.append("livepatch: /proc/cmdline not patched")
    else:
        lp = {}
    truncated = {src: sum(n for f, n in b.items() if not RE_BOTTOM.match(f)) for src, b in bottoms.items()}
    by_design = sum(n for b in bottoms.values() for f, n in b.items() if RE_UNDEFINED_BY_DESIGN.match(f))
    for src, b in sorted(bottoms.items()):
        cut = {f: n for f, n in b.items() if not RE_BOTTOM.match(f) and not RE_UNDEFINED_BY_DESIGN.match(f)}
        if cut:
            problems.append("%s: %d traces end before the stack's bottom (at %s)" % (
                src, sum(cut.values()), ", ".join("%s %d" % kv for kv in sorted(cut.items(), key=lambda kv: -kv[1])[:5])))

    ev, fu = mark_kv("events"), mark_kv("function")
    wait = lambda s: re.search(r"waited_ms=(\d+)", lp.get(s, "")).group(1) if re.search(r"waited_ms=(\d+)", lp.get(s, "")) else "?"
    allnames = set().union(*(v for k, v in sources.items() if k != "calltrace?")) if sources else set()
    summary = (
        "boot %s: %s: init %s, %d unwinder warnings, %d kernel errors, %d call traces (%d '?' entries), "
        "%d /proc stacks, events %s traces (%s unresolved), function %s traces (%s unresolved), "
        "stack tracer %d functions, livepatch enable %s ms / disable %s ms, %d function names, %d traces checked to their bottom (%d stopped early: %d in retpoline thunks, undefined by design)"
        % (name, "FAIL" if problems else "PASS",
           ("at %.2f s" % init_time) if init_time and init_time >= 0 else ("reached" if "init" in marks else "NOT reached"),
           len(unwinder), len(errors), calltraces, unreliable, len(marks.get("proc-stack", [])),
           ev.get("traces", "0"), ev.get("unresolved", "-"), fu.get("traces", "0"), fu.get("unresolved", "-"),
           len(sources.get("stack-tracer", ())), wait("enable"), wait("disable"), len(allnames),
           sum(sum(b.values()) for b in bottoms.values()), sum(truncated.values()), by_design))
    print(summary)
    for p in problems:
        print("  problem: %s" % p)
    with open(json_path + ".tmp", "w") as f:
        json.dump({"functions": {k: sorted(v) for k, v in sorted(sources.items())},
                   "bottoms": {k: dict(sorted(v.items())) for k, v in sorted(bottoms.items())}}, f, indent=0)
    import os
    os.replace(json_path + ".tmp", json_path)
    return 1 if problems else 0


def compare(name_a, path_a, name_b, path_b):
    with open(path_a) as f:
        ja = json.load(f)
    with open(path_b) as f:
        jb = json.load(f)
    a = {k: set(v) for k, v in ja["functions"].items()}
    b = {k: set(v) for k, v in jb["functions"].items()}
    differ = []
    for src in sorted(set(a) | set(b)):
        x, y = a.get(src, set()), b.get(src, set())
        only_a, only_b = sorted(x - y), sorted(y - x)
        stable = src in STABLE_SOURCES
        if stable and (only_a or only_b):
            differ.append(src)
        print("  %-13s %-8s %s %d, %s %d, common %d (%.0f%%)%s%s" % (
            src, "compared" if stable else "sampled", name_a, len(x), name_b, len(y), len(x & y),
            100.0 * len(x & y) / max(1, len(x | y)),
            ("; only %s: %s" % (name_a, " ".join(only_a[:6]) + (" ..." if len(only_a) > 6 else ""))) if only_a else "",
            ("; only %s: %s" % (name_b, " ".join(only_b[:6]) + (" ..." if len(only_b) > 6 else ""))) if only_b else ""))
    # Where the traces ended: the same kinds of stack bottom in both (counts vary with timing).
    ba = {k: set(v) for k, v in ja.get("bottoms", {}).items()}
    bb = {k: set(v) for k, v in jb.get("bottoms", {}).items()}
    for src in sorted(set(ba) | set(bb)):
        x, y = ba.get(src, set()), bb.get(src, set())
        print("  bottoms %-6s %s: %s%s" % (src, "same" if x == y else "differ", " ".join(sorted(x | y)[:8]),
              ("; only %s: %s; only %s: %s" % (name_a, " ".join(sorted(x - y)), name_b, " ".join(sorted(y - x))))
              if x != y else ""))
    ua = set().union(*a.values()) if a else set()
    ub = set().union(*b.values()) if b else set()
    # Reported, never failed: which functions a sample of stacks names depends on timing. Even
    # /proc/*/stack, the steadiest source, differed between two boots (rcu_gp_kthread caught in
    # rcu_gp_fqs_loop in one, not the other), and two boots of one kernel share only ~60% of the
    # sampled names. What fails a kernel are its own checks (boot, 0 unwinder warnings, 0 kernel
    # errors, every trace to its stack's bottom, the livepatch transition).
    print("boot compare %s vs %s (reported, not a pass/fail check): %d vs %d function names (%d common); steadiest sources (%s) %s" % (
        name_a, name_b, len(ua), len(ub), len(ua & ub),
        ", ".join(STABLE_SOURCES), "identical" if not differ else "differ: " + ", ".join(differ)))
    return 0


def main():
    args = sys.argv[1:]
    if args and args[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0
    if len(args) == 4 and args[0] == "check":
        return check(*args[1:])
    if len(args) == 5 and args[0] == "compare":
        return compare(*args[1:])
    print(__doc__.strip().split("\n\n")[0], file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
