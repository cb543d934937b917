#!/usr/bin/env python3
"""Compare two SFrame dumps in the layout of `objdump --sframe`: binutils' and `orctool sframe-dump`.

Usage: sframe_dumps.py OBJDUMP_OUTPUT ORCTOOL_OUTPUT
Parses the grammar (function lines, rows as whitespace-separated fields), not the spacing, and
prints `same N_FDES N_FRES` or the first difference; exit 0 if the same, 1 if not, 2 if a dump
does not parse. objdump writes a negative CFA offset of a default row as `sp+-8`, read as
`sp-8`; it prints the default return-address rule of a flexible row that has
a frame-pointer rule as `U` and elsewhere as `f` (both: at the CFA's fixed -8), so `U` reads as
`f`.
"""
import re
import sys

FUNC = re.compile(r'^\s*func idx \[(\d+)\]: pc = (0x[0-9a-f]+), size = (\d+) bytes(?:, attr = "([A-Z]*)")?')
ROW = re.compile(r'^\s*([0-9a-f]{16})\s+(.*\S)\s*$')


def parse(path):
    funcs = []
    with open(path, encoding="utf-8", errors="replace") as f:
        in_index = False
        for line in f:
            if "Function Index" in line:
                in_index = True
                continue
            if not in_index:
                continue
            m = FUNC.match(line)
            if m:
                funcs.append([(int(m.group(1)), int(m.group(2), 16), int(m.group(3)), m.group(4) or ""), []])
                continue
            m = ROW.match(line)
            if m and funcs:
                fields = m.group(2).replace("+-", "-").split()
                if fields == ["RA", "undefined"]:
                    fields = ["outermost"]
                elif len(fields) == 3:
                    if fields[2] == "U":
                        fields[2] = "f"
                else:
                    raise ValueError(f"{path}: row not understood: {line.rstrip()}")
                funcs[-1][1].append((int(m.group(1), 16), tuple(fields)))
    return funcs


def main():
    try:
        a, b = parse(sys.argv[1]), parse(sys.argv[2])
    except (OSError, ValueError) as e:
        print(f"unparsable: {e}")
        return 2
    if not a:
        print("objdump printed no functions")
        return 1
    if len(a) != len(b):
        print(f"differ: {len(a)} FDEs against {len(b)}")
        return 1
    for fa, fb in zip(a, b):
        if fa[0] != fb[0]:
            print(f"differ: function {fa[0]} against {fb[0]}")
            return 1
        if fa[1] != fb[1]:
            for ra, rb in zip(fa[1], fb[1]):
                if ra != rb:
                    print(f"differ: function {fa[0]}: row {ra} against {rb}")
                    return 1
            print(f"differ: function {fa[0]}: {len(fa[1])} rows against {len(fb[1])}")
            return 1
    print(f"same {len(a)} {sum(len(f[1]) for f in a)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
