#!/usr/bin/env python3
"""Rewrite the addresses of `orctool dump VMLINUX` as SECTION+OFFSET, so that the ORC of two linked images
can be compared where only the start of a section differs (scripts/kernel-build.sh --config debian).

usage: orc-dump-by-section.py VMLINUX < DUMP > DUMP_BY_SECTION
       orc-dump-by-section.py --addresses VMLINUX     (one line per allocated section: name, address)

A linked kernel's dump names absolute addresses. Everything after .text (.rodata, the BTF, the kallsyms
tables, .init.text...) moves when the size of anything before it changes: a longer banner string, a
bigger BTF blob, another signing certificate. Inside a section the entries keep their offsets when the
code is the same. Section addresses come from `readelf -SW` (binutils). A line whose address is in no
allocated section keeps its address, prefixed with `?`. Exit 2 when VMLINUX cannot be read.
"""
import bisect
import re
import subprocess
import sys

RE_SECTION = re.compile(r"^\s*\[\s*\d+\]\s+(\S+)\s+\S+\s+([0-9a-f]{16})\s+[0-9a-f]+\s+([0-9a-f]+)\s+\S+\s+(\S*)")
RE_LINE = re.compile(r"^([0-9a-f]{16})(:.*)$")


def sections(path):
    try:
        out = subprocess.run(["readelf", "-SW", path], check=True, capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        sys.exit("orc-dump-by-section: %s: cannot read the section headers (%s)" % (path, e))
    found = []
    for line in out.splitlines():
        m = RE_SECTION.match(line)
        if m and "A" in m.group(4) and int(m.group(3), 16) > 0:
            found.append((int(m.group(2), 16), int(m.group(3), 16), m.group(1)))
    return sorted(found)


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--addresses":
        for addr, _, name in sections(sys.argv[2]):
            print(name, "%x" % addr)
        return 0
    if len(sys.argv) != 2:
        sys.stderr.write(__doc__)
        return 2
    secs = sections(sys.argv[1])
    starts = [s[0] for s in secs]
    out = sys.stdout
    for line in sys.stdin:
        m = RE_LINE.match(line)
        if not m:
            out.write(line)
            continue
        addr = int(m.group(1), 16)
        i = bisect.bisect_right(starts, addr) - 1
        # The last entry of a table may sit at the end of its section (a terminator after the code).
        if i >= 0 and addr <= secs[i][0] + secs[i][1]:
            out.write("%s+%x%s\n" % (secs[i][2], addr - secs[i][0], m.group(2)))
        else:
            out.write("?%s%s\n" % (m.group(1), m.group(2)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
