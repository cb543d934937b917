#!/usr/bin/env python3
"""Compare two x86-64 ELF relocatable objects as a linker sees them (the kernel-build.sh fallback while
`orctool compare-objects` does not exist).

usage: elf-compare.py A B

Compared, layout aside (section order, symbol order and string-table layout do not matter):
  - every section with contents, by name (the n-th section of a name with the n-th of the same name):
    its type, flags and bytes (SHT_NOBITS: the size);
  - every relocation section, as the set of (offset, type, symbol name or section name, addend);
  - the symbol table as a set of (name, type, bind, visibility, section name, value, size);
    a section symbol is named after its section.
Prints one line per aspect that differs (and what), then a last line `equal` or `differ: N aspects`.
Exit 0 iff equal, 1 if they differ, 2 if a file cannot be read as an ELF64 little-endian object.
"""
import hashlib
import mmap
import struct
import sys

SHT_SYMTAB, SHT_STRTAB, SHT_RELA, SHT_NOBITS, SHT_REL, SHT_GROUP, SHT_SYMTAB_SHNDX = 2, 3, 4, 8, 9, 17, 18
SKIP_TYPES = {SHT_SYMTAB, SHT_STRTAB, SHT_SYMTAB_SHNDX}
SYM_TYPES = {0: "NOTYPE", 1: "OBJECT", 2: "FUNC", 3: "SECTION", 4: "FILE", 5: "COMMON", 6: "TLS"}
SYM_BINDS = {0: "LOCAL", 1: "GLOBAL", 2: "WEAK"}


class BadElf(Exception):
    pass


class Elf:
    def __init__(self, path):
        self.path = path
        with open(path, "rb") as f:
            try:
                self.m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
            except ValueError:
                raise BadElf("empty file")
        m = self.m
        if len(m) < 64 or m[:4] != b"\x7fELF" or m[4] != 2 or m[5] != 1:
            raise BadElf("not an ELF64 little-endian file")
        shoff, = struct.unpack_from("<Q", m, 0x28)
        shentsize, shnum, shstrndx = struct.unpack_from("<HHH", m, 0x3A)
        if shentsize != 64 or shoff + 64 > len(m):
            raise BadElf("bad section header table")
        if shnum == 0:
            shnum = struct.unpack_from("<Q", m, shoff + 32)[0]
        if shstrndx == 0xFFFF:
            shstrndx = struct.unpack_from("<I", m, shoff + 40)[0]
        if shoff + 64 * shnum > len(m):
            raise BadElf("section header table past the end of the file")
        self.sh = []
        for i in range(shnum):
            name, typ, flags, _addr, off, size, link, info, _align, entsize = struct.unpack_from(
                "<IIQQQQIIQQ", m, shoff + 64 * i)
            if typ != SHT_NOBITS and off + size > len(m):
                raise BadElf("section %d past the end of the file" % i)
            self.sh.append(dict(name=name, type=typ, flags=flags, off=off, size=size, link=link, info=info,
                                entsize=entsize))
        if shstrndx >= shnum:
            raise BadElf("bad section name table index")
        strs = self.sh[shstrndx]
        for s in self.sh:
            s["name"] = self.cstr(strs["off"] + s["name"], strs["off"] + strs["size"])
        # unique names: the n-th section of a name is "name#n" for n > 0
        seen = {}
        for s in self.sh:
            n = seen.get(s["name"], 0)
            seen[s["name"]] = n + 1
            s["key"] = s["name"] if n == 0 else "%s#%d" % (s["name"], n)
        self.symtab_index = next((i for i, s in enumerate(self.sh) if s["type"] == SHT_SYMTAB), None)
        self.syms = self.read_symbols()

    def cstr(self, start, end):
        e = self.m.find(b"\0", start, end)
        if e < 0:
            raise BadElf("unterminated string")
        return self.m[start:e].decode("utf-8", "replace")

    def data(self, s):
        return self.m[s["off"]:s["off"] + s["size"]]

    def read_symbols(self):
        if self.symtab_index is None:
            return []
        st = self.sh[self.symtab_index]
        strs = self.sh[st["link"]]
        shndx_ext = None
        for s in self.sh:
            if s["type"] == SHT_SYMTAB_SHNDX and s["link"] == self.symtab_index:
                shndx_ext = self.data(s)
        out = []
        raw = self.data(st)
        for i, (name, info, other, shndx, value, size) in enumerate(struct.iter_unpack("<IBBHQQ", raw)):
            if shndx == 0xFFFF and shndx_ext is not None:
                shndx = struct.unpack_from("<I", shndx_ext, 4 * i)[0]
            sec = (self.sh[shndx]["key"] if 0 < shndx < len(self.sh) else
                   {0: "UND", 0xFFF1: "ABS", 0xFFF2: "COM"}.get(shndx, "idx%d" % shndx))
            typ = info & 15
            nm = self.cstr(strs["off"] + name, strs["off"] + strs["size"]) if name else ""
            if typ == 3 and not nm:
                nm = sec
            out.append((nm, SYM_TYPES.get(typ, str(typ)), SYM_BINDS.get(info >> 4, str(info >> 4)),
                        other & 3, sec, value, size))
        return out

    def relocations(self, s):
        if not hasattr(self, "sym_names"):
            self.sym_names = [x[0] for x in self.syms]
        names = self.sym_names
        out = []
        if s["type"] == SHT_RELA:
            for off, info, addend in struct.iter_unpack("<QQq", self.data(s)):
                sym = info >> 32
                out.append((off, info & 0xFFFFFFFF, names[sym] if sym < len(names) else "sym%d" % sym, addend))
        else:
            for off, info in struct.iter_unpack("<QQ", self.data(s)):
                sym = info >> 32
                out.append((off, info & 0xFFFFFFFF, names[sym] if sym < len(names) else "sym%d" % sym, 0))
        return out

    def sections(self):
        return {s["key"]: s for s in self.sh[1:] if s["type"] not in SKIP_TYPES}


def first_diff(a, b):
    n = min(len(a), len(b))
    step = 4096
    for base in range(0, n, step):
        if a[base:base + step] != b[base:base + step]:
            for i in range(base, min(base + step, n)):
                if a[i] != b[i]:
                    return i
    return n


def show(items, n=3):
    items = sorted(items)
    return ", ".join(str(x) for x in items[:n]) + (", ..." if len(items) > n else "")


def compare(a, b):
    diffs = []
    sa, sb = a.sections(), b.sections()
    only_a, only_b = set(sa) - set(sb), set(sb) - set(sa)
    if only_a:
        diffs.append("sections only in A (%d): %s" % (len(only_a), show(only_a, 6)))
    if only_b:
        diffs.append("sections only in B (%d): %s" % (len(only_b), show(only_b, 6)))
    for key in sorted(set(sa) & set(sb)):
        x, y = sa[key], sb[key]
        if x["type"] != y["type"] or x["flags"] != y["flags"]:
            diffs.append("section %s: type/flags %d/%#x vs %d/%#x" % (key, x["type"], x["flags"], y["type"], y["flags"]))
            continue
        if x["type"] in (SHT_RELA, SHT_REL):
            ra, rb = a.relocations(x), b.relocations(y)
            if ra != rb:
                ma, mb = set(ra) - set(rb), set(rb) - set(ra)
                if not ma and not mb and len(ra) == len(rb):
                    continue  # same set, other order
                fmt = lambda r: "%#x %d %s%+d" % r
                diffs.append("relocations %s: %d vs %d entries, %d only in A (%s), %d only in B (%s)" % (
                    key, len(ra), len(rb), len(ma), ", ".join(fmt(r) for r in sorted(ma)[:2]),
                    len(mb), ", ".join(fmt(r) for r in sorted(mb)[:2])))
        elif x["type"] == SHT_GROUP:
            ga = [a.sh[i]["key"] for i in struct.unpack_from("<%dI" % (x["size"] // 4), a.data(x))[1:]]
            gb = [b.sh[i]["key"] for i in struct.unpack_from("<%dI" % (y["size"] // 4), b.data(y))[1:]]
            if sorted(ga) != sorted(gb):
                diffs.append("group %s: members differ" % key)
        elif x["type"] == SHT_NOBITS:
            if x["size"] != y["size"]:
                diffs.append("section %s: size %d vs %d" % (key, x["size"], y["size"]))
        else:
            da, db = a.data(x), b.data(y)
            if da != db:
                nd = sum(1 for i in range(0, min(len(da), len(db)), 64) if da[i:i + 64] != db[i:i + 64])
                diffs.append("section %s: bytes differ (size %d vs %d, first at %#x, %d 64-byte blocks differ)" % (
                    key, len(da), len(db), first_diff(da, db), nd))
    syma, symb = set(a.syms[1:]), set(b.syms[1:])
    if syma != symb or len(a.syms) != len(b.syms):
        ma, mb = syma - symb, symb - syma
        diffs.append("symbols: %d vs %d, %d only in A (%s), %d only in B (%s)" % (
            len(a.syms) - 1, len(b.syms) - 1, len(ma), show({m[0] for m in ma}), len(mb), show({m[0] for m in mb})))
    return diffs


def main():
    if len(sys.argv) != 3 or sys.argv[1] in ("-h", "--help"):
        print(__doc__.strip(), file=sys.stderr if len(sys.argv) != 2 else sys.stdout)
        return 0 if len(sys.argv) == 2 else 2
    objs = []
    for p in sys.argv[1:]:
        try:
            objs.append(Elf(p))
        except (OSError, BadElf, struct.error) as e:
            print("elf-compare: %s: %s" % (p, e), file=sys.stderr)
            return 2
    diffs = compare(*objs)
    for d in diffs:
        print(d)
    print("equal" if not diffs else "differ: %d aspects" % len(diffs))
    return 0 if not diffs else 1


if __name__ == "__main__":
    sys.exit(main())
