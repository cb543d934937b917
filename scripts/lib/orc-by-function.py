#!/usr/bin/env python3
"""Compare the ORC of the functions of a relocatable object with the same functions in a linked image.

usage: orc-by-function.py OBJECT OBJECT_DUMP IMAGE IMAGE_DUMP [--show N]

OBJECT_DUMP and IMAGE_DUMP are `orctool dump` of OBJECT (rows named SECTION+OFFSET) and of IMAGE (rows
named by absolute address). Every function (an STT_FUNC symbol, prefix symbols `__pfx_`/`__cfi_` aside)
whose name is defined exactly once in each file, not weak, is compared: the rows inside the function, as (offset from
the function's start, row). This is what a part of a kernel's objects, linked together and run through
objtool or orctool, can say about a whole kernel's image before the whole kernel is built: the same
compiler and flags give the same code, the same tool gives the same rows, function by function. A
function can still differ for a reason outside its object (objtool learns which functions never return
from their bodies, and a body in another object is not in a partial link); the first ones are listed.

Prints one line per differing function (up to --show, default 10) and a last line
`functions: N compared, N identical, N different; N only in the object, N weak or with a name defined more than once`.
Exit 0 when no compared function differs, 1 when one does, 2 on unreadable input.
"""
import bisect
import re
import subprocess
import sys

RE_SECTION = re.compile(r"^\s*\[\s*(\d+)\]\s+(\S+)\s+\S+\s+([0-9a-f]{16})\s")
RE_SYMBOL = re.compile(r"^\s*\d+:\s+([0-9a-f]+)\s+(0x[0-9a-f]+|\d+)\s+FUNC\s+(\S+)\s+\S+\s+(\d+)\s+(\S+)")
RE_ROW_OBJECT = re.compile(r"^([^+\s]+)\+([0-9a-f]+):(.*)$")
RE_ROW_IMAGE = re.compile(r"^([0-9a-f]{16}):(.*)$")


def readelf(args, path):
    try:
        return subprocess.run(["readelf"] + args + [path], check=True, capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        sys.exit("orc-by-function: %s: readelf %s failed (%s)" % (path, " ".join(args), e))


def functions(path, linked):
    """{name: (key, start, end)}, key = section name (object) or None (image); names defined twice map to None."""
    names = {}
    for line in readelf(["-SW"], path).splitlines():
        m = RE_SECTION.match(line)
        if m:
            names[int(m.group(1))] = m.group(2)
    found = {}
    for line in readelf(["-sW"], path).splitlines():
        m = RE_SYMBOL.match(line)
        if not m:
            continue
        name = m.group(5).split("@")[0]
        if name.startswith(("__pfx_", "__cfi_")):
            continue
        start, size = int(m.group(1), 16), int(m.group(2), 0)
        if size == 0:
            continue
        key = None if linked else names.get(int(m.group(4)))
        # A weak definition may not be the one the whole kernel links (a partial link has not seen the strong one).
        found[name] = None if name in found or m.group(3) == "WEAK" else (key, start, start + size)
    return found


def rows(dump, linked):
    """{section or None: sorted [(address, row)]}."""
    by = {}
    try:
        with open(dump) as f:
            for line in f:
                m = (RE_ROW_IMAGE if linked else RE_ROW_OBJECT).match(line.rstrip("\n"))
                if not m:
                    continue
                if linked:
                    by.setdefault(None, []).append((int(m.group(1), 16), m.group(2)))
                else:
                    by.setdefault(m.group(1), []).append((int(m.group(2), 16), m.group(3)))
    except OSError as e:
        sys.exit("orc-by-function: %s: %s" % (dump, e))
    for v in by.values():
        v.sort()
    return by


def rows_of(table, key, start, end):
    lst = table.get(key, [])
    i = bisect.bisect_left(lst, (start, ""))
    out = []
    while i < len(lst) and lst[i][0] < end:
        out.append((lst[i][0] - start, lst[i][1]))
        i += 1
    return out


def main():
    args = sys.argv[1:]
    show = 10
    if "--show" in args:
        i = args.index("--show")
        show = int(args[i + 1])
        del args[i:i + 2]
    if len(args) != 4:
        sys.stderr.write(__doc__)
        return 2
    obj_fn, img_fn = functions(args[0], False), functions(args[2], True)
    obj_rows, img_rows = rows(args[1], False), rows(args[3], True)
    compared = same = only_obj = dup = 0
    different = []
    for name, o in sorted(obj_fn.items()):
        i = img_fn.get(name, 0)
        if o is None or i is None:
            dup += 1
            continue
        if i == 0:
            only_obj += 1
            continue
        a = rows_of(obj_rows, *o)
        b = rows_of(img_rows, *i)
        if not a and not b:
            continue
        compared += 1
        if a == b:
            same += 1
        else:
            first = next((x, y) for x, y in zip(a + [None] * len(b), b + [None] * len(a)) if x != y)
            different.append((name, len(a), len(b), first))
    for name, na, nb, (x, y) in different[:show]:
        print("%s: %d rows in the object, %d in the image; first difference: object %s, image %s" % (name, na, nb, x, y))
    print("functions: %d compared, %d identical, %d different; %d only in the object, %d weak or with a name defined more than once"
          % (compared, same, len(different), only_obj, dup))
    return 1 if different else 0


if __name__ == "__main__":
    sys.exit(main())
