#!/usr/bin/env python3
"""Corrupted copies of a real object through `orctool check`, as kbuild runs it (in place).

usage: scripts/mutate-check.py OBJECT [--runs N] [--seed S] [--orctool PATH] [--flags "..."] [--timeout SEC]

Each run copies OBJECT (a vmlinux.o, a module's .o) to a temporary file, damages the copy one way,
runs `orctool check FLAGS COPY` on it in place, and checks what a build system relies on:
  - no panic, no hang (--timeout, default 600 s), exit code 0, 1 or 2;
  - exit 2 (bad input): exactly one line on stderr, `orctool: COPY: ...`, and the copy untouched;
  - exit 0/1: the result is still an ELF file orctool can read back (`orctool dump` exits 0).
The damage, chosen by a seeded generator (replayable with --seed): truncation at a random point,
a random section header field, a few random bytes in a special section objtool reads
(.altinstructions, __jump_table, __ex_table, .discard.*, .rela of those, .symtab, .strtab), or in
a relocation section of the code. One line per run, then `mutate-check: N runs, P passed, F failed`.
Exit 0 only if every run passed.
"""
import argparse
import hashlib
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KBUILD_FLAGS = ("--hacks=jump_label --hacks=noinstr --hacks=skylake --ibt --orc --retpoline --rethunk --sls "
                "--static-call --uaccess --prefix=16 --noinstr --unret --link")


def sections(data):
    """(name, offset, size, header offset) of every section of an ELF64 little-endian file."""
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3a)
    heads = []
    for i in range(shnum):
        at = shoff + i * shentsize
        name, kind, flags, addr, off, size = struct.unpack_from("<IIQQQQ", data, at)
        heads.append((name, kind, off, size, at))
    strtab = heads[shstrndx]
    out = []
    for name, kind, off, size, at in heads:
        start = strtab[2] + name
        end = data.index(b"\0", start)
        out.append((data[start:end].decode("latin-1"), off, size if kind != 8 else 0, at))
    return out


INTERESTING = (".altinstructions", "__jump_table", "__ex_table", ".symtab", ".strtab", ".parainstructions",
               ".static_call_sites", ".retpoline_sites", ".return_sites", ".orc_unwind")


def damage(data, secs, rng):
    """One kind of damage; returns (new bytes, description)."""
    kind = rng.choice(["truncate", "header", "special", "special", "rela"])
    b = bytearray(data)
    if kind == "truncate":
        at = rng.randrange(0, len(data))
        return bytes(b[:at]), "truncated at %#x of %#x" % (at, len(data))
    if kind == "header":
        name, off, size, at = rng.choice(secs[1:])
        field = rng.randrange(0, 64)
        b[at + field] = rng.randrange(256)
        return bytes(b), "section header of %s, byte %d" % (name, field)
    if kind == "special":
        pool = [s for s in secs if s[2] > 0 and (s[0].startswith(INTERESTING) or s[0].startswith(".discard")
                                                  or any(s[0] == ".rela" + p for p in INTERESTING))]
    else:
        pool = [s for s in secs if s[2] > 0 and s[0].startswith(".rela.") and "text" in s[0]]
    if not pool:
        pool = [s for s in secs if s[2] > 0]
    name, off, size, _ = rng.choice(pool)
    n = rng.randrange(1, 9)
    for _ in range(n):
        b[off + rng.randrange(size)] = rng.randrange(256)
    return bytes(b), "%d random bytes in %s" % (n, name)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("object")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--seed", type=int, default=1)
    tdir = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    ap.add_argument("--orctool", default=os.path.join(tdir, "release", "orctool"))
    ap.add_argument("--flags", default=KBUILD_FLAGS, help="objtool flags (default: kbuild's for vmlinux.o)")
    ap.add_argument("--timeout", type=int, default=600)
    args = ap.parse_args()
    try:
        with open(args.object, "rb") as f:
            data = f.read()
        secs = sections(data)
    except (OSError, ValueError, struct.error) as e:
        print("mutate-check: %s: not a readable ELF64 object (%s)" % (args.object, e), file=sys.stderr)
        return 2
    rng = random.Random(args.seed)
    tmp = tempfile.mkdtemp(prefix="orctool-mutate-")
    passed = failed = 0
    t0 = time.time()
    try:
        for i in range(args.runs):
            bad, what = damage(data, secs, rng)
            copy = os.path.join(tmp, "m%d.o" % i)
            with open(copy, "wb") as f:
                f.write(bad)
            before = hashlib.sha256(bad).hexdigest()
            problem = None
            try:
                r = subprocess.run([args.orctool, "check", *args.flags.split(), copy], capture_output=True,
                                   text=True, errors="replace", timeout=args.timeout)
            except subprocess.TimeoutExpired:
                r, problem = None, "hang (over %d s)" % args.timeout
            if r is not None:
                lines = r.stderr.splitlines()
                after = hashlib.sha256(open(copy, "rb").read()).hexdigest()
                if "panicked" in r.stderr or r.returncode not in (0, 1, 2):
                    problem = "exit %d: %s" % (r.returncode, (lines or [""])[-1][:200])
                elif r.returncode == 2:
                    if len(lines) != 1 or not lines[0].startswith("orctool: %s: " % copy):
                        problem = "exit 2 with %d stderr lines: %s" % (len(lines), " | ".join(lines[:3])[:200])
                    elif after != before:
                        problem = "exit 2 but the file was changed"
                else:
                    d = subprocess.run([args.orctool, "dump", copy], capture_output=True, text=True, errors="replace")
                    if after != before and d.returncode != 0:
                        problem = "written, but unreadable: %s" % d.stderr.strip()[:200]
            verdict = "ok" if problem is None else "FAIL " + problem
            code = "-" if r is None else r.returncode
            print("run %3d  exit %s  %-55s %s" % (i, code, what[:55], verdict), flush=True)
            passed += problem is None
            failed += problem is not None
            os.unlink(copy)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("mutate-check: %s: %d runs, %d passed, %d failed (seed %d, %.0f s)" % (
        os.path.basename(args.object), args.runs, passed, failed, args.seed, time.time() - t0))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
