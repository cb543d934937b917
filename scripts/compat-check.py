#!/usr/bin/env python3
"""orctool check against objtool on stripped shipped modules (oracle 1 of docs/corpus.md).

For every module (or a fixed sample): remove objtool's seven output sections (and their
relocations) with objcopy, run the real objtool and `orctool check` on that same file with the
kernel's module flags, and compare the ORC tables (`objtool --dump=orc` of both outputs) and the
warnings. Prints per-module differences and four figures:

  dumps identical   modules whose ORC dump is byte-identical, among modules objtool gave ORC
  entries identical ORC lines of objtool's dump also present in orctool's, in all such modules
  warnings agree    modules whose warning lines (file name removed) are the same set
  whole objects     modules whose two outputs are the same object to a linker (`orctool
                    compare-objects`: sections' bytes, symbols as a set, relocations by name)
  gave up           modules where objtool wrote no ORC, and what orctool did there

Usage: scripts/compat-check.py [--kernel 6.12] [--sample N] [--orctool PATH] [--jobs N]
                               [--results FILE] [--min-dumps PCT] [--min-entries PCT]
                               [--min-warnings PCT]
Exit status 1 when a threshold given with --min-* is not met, 2 on a harness error.
"""

import argparse
import concurrent.futures as cf
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter

FLAGS = [
    "--hacks=jump_label", "--hacks=noinstr", "--hacks=skylake", "--ibt", "--orc", "--retpoline",
    "--rethunk", "--sls", "--static-call", "--uaccess", "--prefix=16", "--link", "--module",
]
OBJTOOL_SECTIONS = [
    ".orc_unwind", ".orc_unwind_ip", ".return_sites", ".call_sites", ".retpoline_sites",
    ".static_call_sites", ".ibt_endbr_seal",
]
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def corpus(kernel, what):
    out = subprocess.run(["bash", os.path.join(HERE, "lib", "corpus.sh"), what, kernel],
                         check=True, capture_output=True, text=True)
    return out.stdout.strip()


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, errors="replace", **kw)


def warnings_of(stderr, name):
    lines = set()
    for line in stderr.splitlines():
        if ": warning: objtool: " not in line:
            continue
        lines.add(line.split(": warning: objtool: ", 1)[1])
    return lines


def compare(module, objtool, orctool, tmp):
    base = os.path.join(tmp, os.path.basename(module))
    stripped = base + ".in.ko"
    theirs = base + ".objtool.ko"
    ours = base + ".orctool.ko"
    remove = []
    for s in OBJTOOL_SECTIONS:
        remove += ["--remove-section=" + s, "--remove-section=.rela" + s]
    r = run(["objcopy", *remove, module, stripped])
    if r.returncode != 0:
        return {"module": module, "error": "objcopy: " + r.stderr.strip()[:200]}
    subprocess.run(["cp", stripped, theirs], check=True)
    t0 = time.perf_counter()
    obj = run([objtool, *FLAGS, theirs])
    t1 = time.perf_counter()
    mine = run([orctool, "check", *FLAGS, stripped, "-o", ours])
    t2 = time.perf_counter()
    res = {"module": module, "objtool_s": t1 - t0, "orctool_s": t2 - t1}
    if mine.returncode not in (0, 1) or "panicked" in mine.stderr:
        res["error"] = "orctool exit %d: %s" % (mine.returncode, mine.stderr.strip().splitlines()[-1:] or "")
    dump_theirs = run([objtool, "--dump=orc", theirs]).stdout
    res["objtool_orc"] = bool(dump_theirs)
    dump_ours = run([objtool, "--dump=orc", ours]).stdout if os.path.exists(ours) else ""
    res["orctool_orc"] = bool(dump_ours)
    a, b = dump_theirs.splitlines(), dump_ours.splitlines()
    res["entries"] = len(a)
    res["entries_same"] = sum((Counter(a) & Counter(b)).values())
    res["dump_same"] = dump_theirs == dump_ours
    if not res["dump_same"] and a:
        for i, (x, y) in enumerate(zip(a + [""] * len(b), b + [""] * len(a))):
            if x != y:
                res["first_diff"] = "line %d: objtool %r / orctool %r" % (i + 1, x, y)
                break
    wa, wb = warnings_of(obj.stderr, theirs), warnings_of(mine.stderr, stripped)
    res["warnings_same"] = wa == wb
    if os.path.exists(ours):
        whole = run([orctool, "compare-objects", "--max-shown", "2", theirs, ours])
        res["whole_same"] = whole.returncode == 0
        res["whole_diff"] = whole.stdout.strip().splitlines()[-3:]
    res["warnings_only_objtool"] = sorted(wa - wb)[:3]
    res["warnings_only_orctool"] = sorted(wb - wa)[:3]
    for p in (stripped, theirs, ours):
        if os.path.exists(p):
            os.unlink(p)
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kernel", default="6.12")
    ap.add_argument("--sample", type=int, default=0, help="every k-th module, N in all (0: all)")
    ap.add_argument("--orctool", default=os.path.join(ROOT, "target", "release", "orctool"))
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--results", help="write one line per module here")
    ap.add_argument("--min-dumps", type=float)
    ap.add_argument("--min-entries", type=float)
    ap.add_argument("--min-warnings", type=float)
    ap.add_argument("--min-whole", type=float, help="minimum percentage of identical whole objects")
    ap.add_argument("--show", type=int, default=8, help="differences to print")
    ap.add_argument("--only", help="a file listing the modules to check (paths relative to the corpus)")
    args = ap.parse_args()

    modules_dir = corpus(args.kernel, "modules")
    objtool = corpus(args.kernel, "objtool")
    with open(corpus(args.kernel, "list")) as f:
        modules = [os.path.join(modules_dir, line.strip()) for line in f if line.strip()]
    no_orc = set()
    with open(corpus(args.kernel, "no_orc_list")) as f:
        no_orc = {os.path.join(modules_dir, line.strip()) for line in f if line.strip()}
    if args.only:
        with open(args.only) as f:
            wanted = {os.path.join(modules_dir, line.split()[0]) for line in f if line.strip()}
        modules = [m for m in modules if m in wanted]
    if args.sample and args.sample < len(modules):
        step = len(modules) / args.sample
        modules = [modules[int(i * step)] for i in range(args.sample)]
    skipped = [m for m in modules if m in no_orc]
    modules = [m for m in modules if m not in no_orc]
    if not os.access(args.orctool, os.X_OK):
        print("compat-check: no orctool binary at %s (cargo build --release -p orctool)" % args.orctool,
              file=sys.stderr)
        return 2

    results = []
    with tempfile.TemporaryDirectory(prefix="orctool-compat-") as tmp:
        with cf.ThreadPoolExecutor(max_workers=args.jobs) as pool:
            futs = [pool.submit(compare, m, objtool, args.orctool, tmp) for m in modules]
            for n, fut in enumerate(cf.as_completed(futs), 1):
                results.append(fut.result())
                if sys.stderr.isatty():
                    print("\r%d/%d modules" % (n, len(futs)), end="", file=sys.stderr)
    if sys.stderr.isatty():
        print(file=sys.stderr)
    results.sort(key=lambda r: r["module"])

    errors = [r for r in results if "error" in r]
    with_orc = [r for r in results if r.get("objtool_orc")]
    gave_up = [r for r in results if "error" not in r and not r.get("objtool_orc")]
    same = [r for r in with_orc if r["dump_same"]]
    entries = sum(r["entries"] for r in with_orc)
    entries_same = sum(r["entries_same"] for r in with_orc)
    warn_ok = [r for r in results if "error" not in r and r["warnings_same"]]
    whole_ok = [r for r in with_orc if r.get("whole_same")]
    t_obj = sum(r.get("objtool_s", 0) for r in results)
    t_ours = sum(r.get("orctool_s", 0) for r in results)

    if args.results:
        with open(args.results, "w") as f:
            for r in results:
                f.write("%s dump=%s entries=%d/%d warnings=%s%s\n" % (
                    os.path.relpath(r["module"], modules_dir), "same" if r.get("dump_same") else "DIFF",
                    r.get("entries_same", 0), r.get("entries", 0),
                    "same" if r.get("warnings_same") else "DIFF", " ERROR " + r["error"] if "error" in r else ""))

    shown = 0
    for r in with_orc:
        if not r["dump_same"] and shown < args.show:
            print("DIFF %s: %s" % (os.path.relpath(r["module"], modules_dir), r.get("first_diff", "")))
            shown += 1
    shown = 0
    for r in results:
        if "error" not in r and not r["warnings_same"] and shown < args.show:
            print("WARN %s: objtool-only %s, orctool-only %s" % (
                os.path.relpath(r["module"], modules_dir), r["warnings_only_objtool"], r["warnings_only_orctool"]))
            shown += 1
    shown = 0
    for r in with_orc:
        if not r.get("whole_same") and shown < args.show:
            print("OBJECT %s: %s" % (os.path.relpath(r["module"], modules_dir), " | ".join(r.get("whole_diff", []))))
            shown += 1
    for r in errors[: args.show]:
        print("ERROR %s: %s" % (os.path.relpath(r["module"], modules_dir), r["error"]))

    def pct(a, b):
        return 100.0 * a / b if b else 100.0

    checked = len(results) - len(errors)
    print("compat-check %s: %d modules checked (%d skipped: no ORC shipped; %d harness/orctool errors)" % (
        args.kernel, len(results), len(skipped), len(errors)))
    print("  dumps identical:   %d / %d modules with objtool ORC (%.2f%%)" % (len(same), len(with_orc), pct(len(same), len(with_orc))))
    print("  entries identical: %d / %d (%.3f%%)" % (entries_same, entries, pct(entries_same, entries)))
    print("  warnings agree:    %d / %d modules (%.2f%%)" % (len(warn_ok), checked, pct(len(warn_ok), checked)))
    print("  whole objects:     %d / %d modules with objtool ORC (%.2f%%)" % (
        len(whole_ok), len(with_orc), pct(len(whole_ok), len(with_orc))))
    print("  objtool gave up:   %d modules; orctool wrote ORC for %d of them" % (
        len(gave_up), sum(1 for r in gave_up if r.get("orctool_orc"))))
    print("  time: objtool %.1f s, orctool %.1f s (one process per module, summed)" % (t_obj, t_ours))

    failed = bool(errors)
    if args.min_dumps is not None and pct(len(same), len(with_orc)) < args.min_dumps:
        failed = True
    if args.min_entries is not None and pct(entries_same, entries) < args.min_entries:
        failed = True
    if args.min_whole is not None and pct(len(whole_ok), len(with_orc)) < args.min_whole:
        failed = True
    if args.min_warnings is not None and pct(len(warn_ok), checked) < args.min_warnings:
        failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
