#!/usr/bin/env python3
"""Compares `perf script` with `orctool perf-script` on the same perf.data, sample by sample.

    perf-script-compare.py PERF.txt ORCTOOL.txt [--show N]

Both texts are parsed by perf script's grammar (a header line per sample, then one frame per
line: address, symbol+offset or [unknown], the file in parentheses; an empty line ends the
sample), not by their spacing. Every sample falls in one class:

  equal            the same frames (address, name, file), in the same order
  perf shorter     perf's frames are a prefix of orctool's: perf's unwind stopped, ORC's went on
  orctool shorter  orctool's frames are a prefix of perf's
  differ           they part at some frame (the first such frame pair is counted)

A sample whose perf frames end in a function where stacks end (`_start`, `clone3`, ...)
"reaches the stack's end"; the summary says how many of those are equal, and lists every other
class with its most frequent frame pairs, so that each difference is counted and can be
explained. Exit status 0 when every sample that perf unwound to the stack's end is equal.
"""
import collections
import re
import sys

FRAME = re.compile(r"^\s+([0-9a-f]+) (.*) \((.*)\)$")
# Where a user stack ends: the entry point, the thread start, ld.so's own start.
STACK_ENDS = {"_start", "clone3", "__clone3", "__clone", "__GI___clone3", "__GI___clone", "_dl_start_user"}


def samples(path):
    """Yields (header, [(addr, name, dso)]) per sample."""
    header, frames = None, []
    with open(path, errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line.strip():
                if header is not None:
                    yield header, frames
                header, frames = None, []
                continue
            m = FRAME.match(line)
            if m and header is not None:
                name = m.group(2)
                name = re.sub(r"\+0x[0-9a-f]+$", "", name)
                frames.append((int(m.group(1), 16), name, m.group(3)))
            elif not line[0].isspace():
                if header is not None:
                    yield header, frames
                header, frames = " ".join(line.split()), []
            else:
                raise SystemExit(f"{path}: not perf script's grammar: {line!r}")
    if header is not None:
        yield header, frames


def show(frame):
    return f"{frame[0]:x} {frame[1]} ({frame[2]})" if frame else "(none)"


def main():
    args = sys.argv[1:]
    top = 5
    if "--show" in args:
        i = args.index("--show")
        top = int(args[i + 1])
        del args[i:i + 2]
    if len(args) != 2:
        raise SystemExit(__doc__)
    perf, orc = list(samples(args[0])), list(samples(args[1]))
    if len(perf) != len(orc):
        print(f"sample count differs: perf {len(perf)}, orctool {len(orc)}")
        return 1
    classes = collections.Counter()
    reached = collections.Counter()
    pairs = collections.defaultdict(collections.Counter)
    for (ph, pf), (oh, of) in zip(perf, orc):
        if ph != oh:
            print(f"headers differ: perf {ph!r}, orctool {oh!r}")
            return 1
        end = bool(pf) and pf[-1][1] in STACK_ENDS
        if pf == of:
            cls = "equal"
        elif of[:len(pf)] == pf:
            cls = "perf shorter"
            pairs[cls][(show(pf[-1] if pf else None), show(of[len(pf)]))] += 1
        elif pf[:len(of)] == of:
            cls = "orctool shorter"
            pairs[cls][(show(of[-1] if of else None), show(pf[len(of)]))] += 1
        else:
            cls = "differ"
            i = next(i for i, (a, b) in enumerate(zip(pf, of)) if a != b)
            pairs[cls][(show(pf[i]), show(of[i]))] += 1
        classes[cls] += 1
        reached[(end, cls)] += 1
    total = len(perf)
    ended = sum(n for (e, _), n in reached.items() if e)
    print(f"samples: {total}; perf reached the stack's end in {ended}, of which equal: {reached[(True, 'equal')]}")
    for cls in ("equal", "perf shorter", "orctool shorter", "differ"):
        print(f"  {cls}: {classes[cls]} (perf at the stack's end: {reached[(True, cls)]})")
        for (a, b), n in pairs[cls].most_common(top):
            label = {"perf shorter": ("perf's last", "orctool's next"),
                     "orctool shorter": ("orctool's last", "perf's next"),
                     "differ": ("perf", "orctool")}[cls]
            print(f"      {n:6}  {label[0]}: {a}  |  {label[1]}: {b}")
    bad = ended - reached[(True, "equal")]
    return 0 if bad == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
