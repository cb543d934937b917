#!/usr/bin/env python3
"""orctool check on the gold set against the ORC Debian shipped (oracle 2 of docs/corpus.md).

For every module built by scripts/build-gold.sh ($ORCTOOL_CACHE/gold/gold.tsv):

  orctool   `orctool check <recorded objtool flags> gold/<m>.o -o TMP` then `orctool dump TMP`,
            compared line for line with `orctool dump` of Debian's shipped .ko (the 6.12 corpus)
  whole     `orctool compare-objects` of objtool's output and orctool's on the same input: every
            section's bytes, the symbol table as a set, relocations by symbol name (layout aside)
  objtool   sanity check of the input: the real objtool run in place on a copy of gold/<m>.o with
            the same flags, `objtool --dump=orc` of it compared with `objtool --dump=orc` of the
            shipped .ko (expected identical, with no warnings: otherwise the input is not the one
            Debian's objtool saw and the orctool comparison means little)

The dumps compare as they are: objtool's dump of a module .o prints section+offset addresses, and
the final link with <m>.mod.o does not move the text sections of the module object, so the
shipped .ko dumps identically to objtool's output on the .o (the objtool column checks this).

Prints one line per module (identical, or how many entries differ and the first difference) and
totals. With --disasm N, also the instructions around the first differing address (objdump -d).
Exit status: 0 when every module is identical for orctool (and for objtool), 1 on a mismatch,
2 on a harness error (no gold set, no orctool, a tool that crashed).

Usage: scripts/compat-gold.py [--orctool PATH] [--only REGEX] [--jobs N] [--disasm N] [--keep DIR]
"""

import argparse
import concurrent.futures as cf
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def corpus(what, kernel="6.12"):
    args = ["bash", os.path.join(HERE, "lib", "corpus.sh"), what] + ([kernel] if what != "cache" else [])
    out = subprocess.run(args, check=True, capture_output=True, text=True)
    return out.stdout.strip()


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, errors="replace", **kw)


def warnings_of(stderr):
    return [l.split(": warning: objtool: ", 1)[1] for l in stderr.splitlines() if ": warning: objtool: " in l]


def compare_dumps(expected, got):
    """(number of differing entries, missing, extra, first difference text)."""
    a, b = expected.splitlines(), got.splitlines()
    missing = Counter(a) - Counter(b)
    extra = Counter(b) - Counter(a)
    # An entry differs when its address has another row (or none) on either side.
    addr = lambda l: l.split(":", 1)[0]
    bad = {addr(l) for l in missing} | {addr(l) for l in extra}
    first = None
    for i in range(max(len(a), len(b))):
        x = a[i] if i < len(a) else "<end>"
        y = b[i] if i < len(b) else "<end>"
        if x != y:
            first = (i + 1, x, y)
            break
    return len(bad), sum(missing.values()), sum(extra.values()), first


# objtool's other output sections and their entry sizes; orctool's are compared with objtool's on
# the same input (entries as sets of relocation targets), once orctool writes them.
SITES = {".retpoline_sites": 4, ".return_sites": 4, ".call_sites": 4, ".static_call_sites": 8,
         ".ibt_endbr_seal": 4}


def site_entries(path):
    """{section: Counter of entries} for the SITES sections present in an ELF64 relocatable object.

    An entry is the tuple of its relocations (offset in the entry, type, target), where the target
    is (section name, offset) for a defined symbol and ("UND", name, addend) for an undefined one,
    so that section-symbol and function-symbol relocations to the same place compare equal."""
    with open(path, "rb") as f:
        data = f.read()
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    shdrs = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]

    def cstr(off):
        return data[off:data.index(b"\0", off)].decode("latin-1")

    names = [cstr(shdrs[shstrndx][4] + h[0]) for h in shdrs]
    out = {}
    for i, h in enumerate(shdrs):
        if h[1] != 4 or names[i][len(".rela"):] not in SITES:   # SHT_RELA
            continue
        target_sec = names[i][len(".rela"):]
        entsize = SITES[target_sec]
        sym, str_ = shdrs[h[6]], shdrs[shdrs[h[6]][6]]
        entries = {}
        for k in range(h[5] // 24):
            r_off, r_info, r_add = struct.unpack_from("<QQq", data, h[4] + 24 * k)
            st_name, _, _, st_shndx, st_value, _ = struct.unpack_from("<IBBHQQ", data, sym[4] + 24 * (r_info >> 32))
            if st_shndx == 0:
                tgt = ("UND", cstr(str_[4] + st_name), r_add)
            else:
                tgt = (names[st_shndx], st_value + r_add)
            entries.setdefault(r_off // entsize, []).append((r_off % entsize, r_info & 0xFFFFFFFF, tgt))
        out[target_sec] = Counter(tuple(sorted(e)) for e in entries.values())
    return out


def disasm(obj, where, n):
    """objdump -d of the instructions around section+0xoff in obj (n lines before and after)."""
    m = re.match(r"^(.*)\+0x([0-9a-f]+)$", where) or re.match(r"^(.*)\+([0-9a-f]+)$", where)
    if not m:
        return []
    sec, off = m.group(1), int(m.group(2), 16)
    out = run(["objdump", "-d", "-r", "--no-show-raw-insn", "-j", sec,
               "--start-address=%#x" % max(0, off - 24 * n), "--stop-address=%#x" % (off + 24 * n), obj]).stdout
    lines = [l for l in out.splitlines() if re.match(r"^\s+[0-9a-f]+:", l) or re.match(r"^[0-9a-f]+ <", l)
             or "R_X86_64" in l]
    at = next((i for i, l in enumerate(lines) if re.match(r"^\s+%x:" % off, l)), None)
    if at is None:
        return lines[: 2 * n]
    return [("=> " if i == at else "   ") + l for i, l in enumerate(lines) if at - n <= i <= at + n]


def check_module(row, gold, modules_dir, objtool, orctool, tmp, ndis):
    m, folder, shipped_rel, flags = row
    flags = flags.split()
    src = os.path.join(gold, m + ".o")
    shipped = os.path.join(modules_dir, shipped_rel)
    res = {"module": m, "shipped": shipped_rel}
    if not os.path.exists(shipped):
        res["error"] = "no shipped module %s" % shipped
        return res
    expected_objtool = run([objtool, "--dump=orc", shipped]).stdout
    expected = run([orctool, "dump", shipped])
    if expected.returncode != 0:
        res["error"] = "orctool dump %s: exit %d %s" % (shipped_rel, expected.returncode, expected.stderr.strip()[:200])
        return res
    expected = expected.stdout
    res["entries"] = len(expected.splitlines())
    res["dump_agrees"] = expected == expected_objtool

    # objtool on the same input: does the gold object reproduce Debian's ORC?
    theirs = os.path.join(tmp, m + ".objtool.o")
    shutil.copyfile(src, theirs)
    t0 = time.perf_counter()
    obj = run([objtool, *flags, theirs])
    res["objtool_s"] = time.perf_counter() - t0
    res["objtool_warnings"] = warnings_of(obj.stderr)
    got_objtool = run([objtool, "--dump=orc", theirs]).stdout
    res["objtool_same"] = got_objtool == expected_objtool
    theirs_sites = site_entries(theirs)
    if not res["objtool_same"]:
        res["objtool_diff"] = compare_dumps(expected_objtool, got_objtool)

    # orctool.
    ours = os.path.join(tmp, m + ".orctool.o")
    t0 = time.perf_counter()
    mine = run([orctool, "check", *flags, src, "-o", ours])
    res["orctool_s"] = time.perf_counter() - t0
    res["orctool_rc"] = mine.returncode
    res["orctool_warnings"] = warnings_of(mine.stderr)
    res["orctool_stderr"] = mine.stderr.strip().splitlines()
    if mine.returncode not in (0, 1) or "panicked" in mine.stderr or not os.path.exists(ours):
        res["error"] = "orctool check exit %d: %s" % (mine.returncode, (res["orctool_stderr"] or [""])[-1][:300])
        return res
    got = run([orctool, "dump", "--orc-layout", "v3", ours])
    if got.returncode != 0:
        res["error"] = "orctool dump of orctool's output: exit %d %s" % (got.returncode, got.stderr.strip()[:200])
        return res
    res["same"] = got.stdout == expected
    # The whole object, as a linker sees it: every section's bytes (jump-label NOPs included),
    # the symbol table as a set (__pfx_ symbols), relocations by symbol name.
    whole = run([orctool, "compare-objects", "--max-shown", "3", theirs, ours])
    res["whole_same"] = whole.returncode == 0
    if whole.returncode == 2:
        res["error"] = "orctool compare-objects: %s" % whole.stderr.strip()[:300]
        return res
    res["whole_diff"] = whole.stdout.strip().splitlines()
    # The other sections: orctool's against objtool's on the same input, where orctool wrote them.
    ours_sites = site_entries(ours)
    res["sites"] = {}
    for sec in SITES:
        a, b = theirs_sites.get(sec, Counter()), ours_sites.get(sec)
        if b is None:
            res["sites"][sec] = "not written" if a else "absent"
        else:
            res["sites"][sec] = "same" if a == b else "%d missing, %d extra" % (
                sum((a - b).values()), sum((b - a).values()))
    if not res["same"]:
        res["diff"] = compare_dumps(expected, got.stdout)
        first = res["diff"][3]
        if first and ndis:
            where = (first[1] if first[1] != "<end>" else first[2]).split(":", 1)[0]
            res["disasm"] = disasm(src, where, ndis)
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    tdir = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    ap.add_argument("--orctool", default=os.path.join(tdir, "release", "orctool"),
                    help="orctool binary (default: $CARGO_TARGET_DIR/release/orctool, else target/release/orctool)")
    ap.add_argument("--only", help="only the modules whose name matches this regular expression")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--disasm", type=int, default=0, metavar="N",
                    help="print N instructions before and after the first differing address")
    ap.add_argument("--keep", metavar="DIR", help="keep the outputs of both tools in DIR")
    args = ap.parse_args()

    gold = os.path.join(corpus("cache"), "gold")
    manifest = os.path.join(gold, "gold.tsv")
    if not os.path.exists(manifest):
        print("compat-gold: no gold set at %s (run scripts/build-gold.sh)" % gold, file=sys.stderr)
        return 2
    orctool = shutil.which(args.orctool) if os.sep not in args.orctool else args.orctool
    if not orctool or not os.access(orctool, os.X_OK):
        print("compat-gold: no orctool binary at %s (cargo build --release -p orctool, or --orctool)" % args.orctool,
              file=sys.stderr)
        return 2
    modules_dir = corpus("modules")
    objtool = corpus("objtool")
    with open(manifest) as f:
        rows = [l.rstrip("\n").split("\t") for l in f if l.strip()]
    if args.only:
        rows = [r for r in rows if re.search(args.only, r[0])]
    if not rows:
        print("compat-gold: no gold module to check", file=sys.stderr)
        return 2

    t_start = time.perf_counter()
    tmp = args.keep or tempfile.mkdtemp(prefix="orctool-gold-")
    os.makedirs(tmp, exist_ok=True)
    try:
        with cf.ThreadPoolExecutor(max_workers=args.jobs) as pool:
            results = list(pool.map(lambda r: check_module(r, gold, modules_dir, objtool, orctool, tmp, args.disasm),
                                    rows))
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)

    width = max(len(r["module"]) for r in results)
    n_same = n_obj_same = n_err = n_sites_bad = n_whole = 0
    sites_state = {k: Counter() for k in SITES}
    entries = entries_bad = 0
    for r in results:
        name = r["module"].ljust(width)
        if "error" in r:
            n_err += 1
            print("%s  ERROR %s" % (name, r["error"]))
            continue
        entries += r["entries"]
        obj = "objtool identical" if r["objtool_same"] else "objtool DIFFERS (%d entries)" % r["objtool_diff"][0]
        if r["objtool_warnings"]:
            obj += ", %d objtool warnings" % len(r["objtool_warnings"])
        n_obj_same += r["objtool_same"]
        warn = ", %d orctool warnings" % len(r["orctool_warnings"]) if r["orctool_warnings"] else ""
        if r["same"]:
            n_same += 1
            print("%s  identical      %6d entries  (%s%s)" % (name, r["entries"], obj, warn))
        else:
            nbad, miss, extra, first = r["diff"]
            entries_bad += nbad
            print("%s  %5d of %6d entries differ (%d rows missing, %d extra)  (%s%s)" % (
                name, nbad, r["entries"], miss, extra, obj, warn))
            if first:
                print("    first difference at line %d:\n      debian : %s\n      orctool: %s" % first)
            for l in r.get("disasm", []):
                print("      " + l)
        if not r["dump_agrees"]:
            print("    note: orctool dump and objtool --dump=orc disagree on the shipped %s" % r["shipped"])
        n_whole += r["whole_same"]
        if not r["whole_same"]:
            print("    whole object differs from objtool's on the same input:")
            for l in r["whole_diff"][-8:]:
                print("      " + l)
        bad_sites = {k: v for k, v in r["sites"].items() if v not in ("same", "absent", "not written")}
        if bad_sites:
            n_sites_bad += 1
            print("    sections differing from objtool's: " + ", ".join("%s %s" % kv for kv in bad_sites.items()))
        for k, v in r["sites"].items():
            if v != "absent":
                sites_state[k][v == "same" and "same" or v == "not written" and "not written" or "differ"] += 1
        for w in r["orctool_warnings"][:3]:
            print("    orctool warning: " + w)
        for w in r["objtool_warnings"][:3]:
            print("    objtool warning: " + w)
        if r["objtool_same"] is False and r["objtool_diff"][3]:
            print("    objtool first difference at line %d:\n      debian : %s\n      objtool: %s" % r["objtool_diff"][3])

    checked = len(results) - n_err
    t_obj = sum(r.get("objtool_s", 0) for r in results)
    t_ours = sum(r.get("orctool_s", 0) for r in results)
    print("compat-gold: %d modules: orctool identical %d/%d, objtool identical %d/%d, errors %d" % (
        len(results), n_same, checked, n_obj_same, checked, n_err))
    print("  whole objects identical to objtool's on the same input: %d/%d" % (n_whole, checked))
    print("  entries: %d of %d differ (%.3f%% identical)" % (
        entries_bad, entries, 100.0 * (entries - entries_bad) / entries if entries else 100.0))
    print("  other sections vs objtool's on the same input: " + ", ".join(
        "%s %s" % (k, " ".join("%s %d" % (st, n) for st, n in sorted(c.items())) or "-") for k, c in sites_state.items()))
    print("  time: objtool %.2f s, orctool %.2f s (summed), wall %.1f s" % (t_obj, t_ours, time.perf_counter() - t_start))
    if n_err:
        return 2
    return 0 if n_same == checked and n_obj_same == checked and not n_sites_bad and n_whole == checked else 1


if __name__ == "__main__":
    sys.exit(main())
