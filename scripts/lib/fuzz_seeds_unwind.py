#!/usr/bin/env python3
"""Seeds of the `unwind` and `snapshot_json` fuzz targets (called by scripts/fuzz-seeds.sh).

    fuzz_seeds_unwind.py OUTDIR [KERNEL:VMLINUX ...]

`unwind` seeds: windows of 4 KB of a real vmlinux ORC table (every entry whose address falls in
the window, rebased to the target's text at 0x1000), in the target's input format (see
fuzz/fuzz_targets/unwind.rs), with a stack of return addresses into the window and pointers into
the stack. Without an image, hand-made tables of the common shapes. `snapshot_json` seeds: the
snapshot format of docs/unwinder.md with the same stacks.
"""
import os
import random
import struct
import subprocess
import sys

LAYOUTS = ["v1", "v2", "v3", "v3+ax", "v4"]
TEXT = 0x1000
STACK = 0x8000


def sections(path):
    """name -> (addr, offset, size) from readelf's section table."""
    out = {}
    text = subprocess.run(["readelf", "-S", "-W", path], check=True, capture_output=True, text=True).stdout
    for line in text.splitlines():
        line = line.replace("[ ", "[")
        parts = line.split()
        if len(parts) > 6 and parts[0].startswith("[") and parts[0].endswith("]") and parts[0][1:-1].isdigit():
            name, addr, off, size = parts[1], int(parts[3], 16), int(parts[4], 16), int(parts[5], 16)
            out[name] = (addr, off, size)
    return out


def read(path, off, size):
    with open(path, "rb") as f:
        f.seek(off)
        return f.read(size)


def mode_for(layout_index, extra):
    """A mode byte whose value % 5 is the layout and which has `extra` bits set, if any does."""
    for m in range(256):
        if m % 5 == layout_index and m & extra == extra:
            return m
    return layout_index


def case(layout_index, entries, stack_words, start, extra=0x0C):
    mode = mode_for(layout_index, extra)
    out = bytes([mode, 5, len(entries)])
    for off, (sp, bp, flags) in entries:
        out += struct.pack("<HhhH", off, sp, bp, flags)
    stack = b"".join(struct.pack("<Q", w & 0xFFFFFFFFFFFFFFFF) for w in stack_words)
    ip, sp, bp = start
    # start: ip, sp, bp chosen as given (selector 0: the value itself), regs_at even (no pt_regs).
    sel = lambda v: (v << 2) & 0xFFFFFFFFFFFFFFFF  # noqa: E731  (v >> 2 restores it; sel % 4 == 0)
    out += struct.pack("<H", len(stack)) + struct.pack("<QQQQ", sel(ip), sel(sp), sel(bp), 0) + stack
    return out


def windows(path, count, rng):
    s = sections(path)
    if not all(n in s for n in (".orc_unwind_ip", ".orc_unwind", ".text")):
        return []
    ip_addr, ip_off, ip_size = s[".orc_unwind_ip"]
    _, u_off, _ = s[".orc_unwind"]
    n = ip_size // 4
    rel = struct.unpack("<%di" % n, read(path, ip_off, ip_size))
    raw = read(path, u_off, n * 6)
    ips = [ip_addr + 4 * i + r for i, r in enumerate(rel)]
    text_addr, _, text_size = s[".text"]
    out = []
    for _ in range(count):
        base = text_addr + rng.randrange(0, max(1, text_size - 0x1000)) & ~0xFFF
        picked = [(ip - base, struct.unpack_from("<hhH", raw, 6 * i)) for i, ip in enumerate(ips) if base <= ip < base + 0x1000]
        out.append(picked[:255])
    return out


def main():
    outdir = sys.argv[1]
    rng = random.Random(17)
    made = 0
    tables = []
    for spec in sys.argv[2:]:
        kernel, path = spec.split(":", 1)
        layout = LAYOUTS.index("v1" if kernel == "6.1" else "v3")
        for w in windows(path, 6, rng):
            if w:
                tables.append((layout, w))
    if not tables:
        # call frames (sp+8), a frame-pointer function (bp+16, prev_sp-16), an end of stack.
        tables.append((2, [(0, (8, 0, 0x0195)), (0x40, (16, -16, 0x0146)), (0x80, (8, 0, 0x0195)), (0xC0, (0, 0, 0x0400))]))
    for layout, entries in tables:
        offs = [off for off, _ in entries] or [0]
        words = []
        for i in range(48):
            r = rng.random()
            words.append(TEXT + rng.choice(offs) + rng.randrange(1, 8) if r < 0.5 else STACK + 8 * rng.randrange(0, 48) if r < 0.8 else rng.randrange(0, 256))
        start = (TEXT + rng.choice(offs), STACK, STACK + 8 * 4)
        with open(os.path.join(outdir, "unwind-%d" % made), "wb") as f:
            f.write(case(layout, entries, words, start))
        snapshot = (
            '{"regs": {"rip": "%#x", "rsp": "%#x", "rbp": "%#x"}, "ip_is_exact": true, "pt_regs": null,\n'
            ' "stacks": [{"name": "task", "base": "%#x", "bytes": "%s"}], "kernel": {"version": "%s"}}\n'
            % (0x1000 + rng.randrange(0, 0x100), STACK, STACK + 32, STACK,
               b"".join(struct.pack("<Q", w) for w in words).hex(), "6.1" if layout == 0 else "6.12")
        )
        with open(os.path.join(outdir, "snapshot-%d" % made), "w") as f:
            f.write(snapshot)
        made += 1
    # One snapshot starting from saved registers, one with two stacks.
    with open(os.path.join(outdir, "snapshot-regs"), "w") as f:
        f.write('{"regs": {"rip": 4096, "rsp": 32768, "rbp": 0}, "pt_regs": "0x8000", "stacks": [{"base": "0x8000", "bytes": "%s"}]}\n'
                % (b"\x41" * 8 * 22).hex())
    with open(os.path.join(outdir, "snapshot-two"), "w") as f:
        f.write('{"regs": {"rip": "0x1040", "rsp": "0x8000", "rbp": "0x8010"}, "stacks": [{"name": "irq", "base": "0x8000", "bytes": "%s"}, {"name": "task", "base": "0x20000", "bytes": "%s"}], "kernel": {"version": "6.12.1"}}\n'
                % (struct.pack("<QQQ", 0x20000, 0x1044, 0x20010).hex(), struct.pack("<QQ", 0, 0x1084).hex()))


if __name__ == "__main__":
    main()
