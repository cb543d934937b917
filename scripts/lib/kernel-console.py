#!/usr/bin/env python3
"""Read the serial console of a kernel-build.sh boot (scripts/lib/kernel-guest-init.sh as /init).

usage: kernel-console.py check NAME CONSOLE_LOG FUNCTIONS_JSON
         one summary line; writes the function names per source to FUNCTIONS_JSON;
         exit 0 if the boot passed, 1 if not
       kernel-console.py compare NAME_A A.json NAME_B B.json
         one line per source and a last line; exit 0 if every source names the same functions

A boot passes when: /init was reached and finished (`ORCTEST done`); no unwinder complaint (the ORC
unwinder's `WARNING: ...` messages, the `unwind stack type:` dumps `unwind_debug` adds); no kernel error
(BUG, Oops, WARNING: CPU, panic, jump_label fatal); the sysrq-t call traces, /proc/<pid>/stack, the
stack traces of trace events and of the function tracer are all there, and none of the function
tracer's stack entries is an unresolved address (the trace events' may end in a kprobe instruction slot); the livepatch transitions (which need reliable stack traces of every
task) both finish and /proc/cmdline is patched while the patch is on.

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
                if "transition=0" not in lp.get(step, ""):
                    problems.append("livepatch %s transition did not finish (%s)" % (step, lp.get(step, "missing")))
            if "live patched" not in lp.get("cmdline", ""):
                problems.append("livepatch: /proc/cmdline not patched")
    else:
        lp = {}

    ev, fu = mark_kv("events"), mark_kv("function")
    wait = lambda s: re.search(r"waited_ms=(\d+)", lp.get(s, "")).group(1) if re.search(r"waited_ms=(\d+)", lp.get(s, "")) else "?"
    allnames = set().union(*(v for k, v in sources.items() if k != "calltrace?")) if sources else set()
    summary = (
        "boot %s: %s: init %s, %d unwinder warnings, %d kernel errors, %d call traces (%d '?' entries), "
        "%d /proc stacks, events %s traces (%s unresolved), function %s traces (%s unresolved), "
        "stack tracer %d functions, livepatch enable %s ms / disable %s ms, %d function names"
        % (name, "FAIL" if problems else "PASS",
           ("at %.2f s" % init_time) if init_time and init_time >= 0 else ("reached" if "init" in marks else "NOT reached"),
           len(unwinder), len(errors), calltraces, unreliable, len(marks.get("proc-stack", [])),
           ev.get("traces", "0"), ev.get("unresolved", "-"), fu.get("traces", "0"), fu.get("unresolved", "-"),
           len(sources.get("stack-tracer", ())), wait("enable"), wait("disable"), len(allnames)))
    print(summary)
    for p in problems:
        print("  problem: %s" % p)
    with open(json_path + ".tmp", "w") as f:
        json.dump({k: sorted(v) for k, v in sorted(sources.items())}, f, indent=0)
    import os
    os.replace(json_path + ".tmp", json_path)
    return 1 if problems else 0


def compare(name_a, path_a, name_b, path_b):
    with open(path_a) as f:
        a = {k: set(v) for k, v in json.load(f).items()}
    with open(path_b) as f:
        b = {k: set(v) for k, v in json.load(f).items()}
    differ = 0
    for src in sorted(set(a) | set(b)):
        x, y = a.get(src, set()), b.get(src, set())
        only_a, only_b = sorted(x - y), sorted(y - x)
        state = "same" if not only_a and not only_b else "DIFFERENT"
        if state != "same" and src != "calltrace?":
            differ += 1
        print("  %-13s %s %d, %s %d, common %d%s%s" % (
            src, name_a, len(x), name_b, len(y), len(x & y),
            ("; only %s: %s" % (name_a, " ".join(only_a[:8]) + (" ..." if len(only_a) > 8 else ""))) if only_a else "",
            ("; only %s: %s" % (name_b, " ".join(only_b[:8]) + (" ..." if len(only_b) > 8 else ""))) if only_b else ""))
    ua = set().union(*(v for k, v in a.items() if k != "calltrace?")) if a else set()
    ub = set().union(*(v for k, v in b.items() if k != "calltrace?")) if b else set()
    print("boot compare %s vs %s: %s: %d vs %d function names, %d common, %d sources differ ('calltrace?' not counted)" % (
        name_a, name_b, "same functions" if differ == 0 else "DIFFERENT", len(ua), len(ub), len(ua & ub), differ))
    return 0 if differ == 0 else 1


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
