#!/usr/bin/env python3
"""Boot a guest under QEMU, wait for a console line, dump its memory through QMP, quit.

usage: qemu-dump.py --console LOG --ready TEXT --out VMCORE --timeout SEC -- QEMU-COMMAND...

QEMU is started with `-qmp unix:SOCKET,server=on,wait=off` added; its console (stdout) is copied to
LOG. When a console line contains TEXT, the guest is stopped, `dump-guest-memory` (ELF, no paging:
QEMU writes the same format as kdump's /proc/vmcore, and with `-device vmcoreinfo` the guest's
VMCOREINFO note) writes OUT.tmp, which is renamed to OUT, and QEMU is told to quit.
Exit 0 on success; 1 if the guest never got ready (timeout, or QEMU exited); 2 on a usage error.
"""
import json
import os
import select
import socket
import subprocess
import sys
import tempfile
import time


def qmp(sock_path):
    """A connected QMP session: returns a function that runs one command and returns its result."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sock_path)
    f = s.makefile("rw")

    def reply():
        while True:
            msg = json.loads(f.readline())
            if "return" in msg or "error" in msg:
                return msg
            # Events (STOP, DUMP_COMPLETED, ...) are not answers.

    json.loads(f.readline())  # greeting

    def run(cmd, **args):
        f.write(json.dumps({"execute": cmd, "arguments": args}) + "\n")
        f.flush()
        msg = reply()
        if "error" in msg:
            raise RuntimeError(f"{cmd}: {msg['error'].get('desc')}")
        return msg["return"]

    run("qmp_capabilities")
    return run


def main():
    argv = sys.argv[1:]
    if "--" not in argv:
        print(__doc__, file=sys.stderr)
        return 2
    cut = argv.index("--")
    opts, cmd = argv[:cut], argv[cut + 1:]
    o = dict(zip(opts[::2], opts[1::2]))
    try:
        log, ready, out, timeout = o["--console"], o["--ready"], o["--out"], float(o["--timeout"])
    except (KeyError, ValueError):
        print(__doc__, file=sys.stderr)
        return 2
    tmpdir = tempfile.mkdtemp(prefix="qemu-dump.")
    sock = os.path.join(tmpdir, "qmp")
    proc = subprocess.Popen(cmd + ["-qmp", f"unix:{sock},server=on,wait=off"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    got_ready = False
    buf = b""
    with open(log, "wb") as console:
        while time.monotonic() < deadline and not got_ready:
            r, _, _ = select.select([proc.stdout], [], [], 1.0)
            if not r:
                continue
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                break
            console.write(chunk)
            console.flush()
            buf = (buf + chunk)[-4096:]
            got_ready = ready.encode() in buf
        if not got_ready:
            proc.kill()
            proc.wait()
            print(f"qemu-dump: the guest did not print {ready!r} (console: {log})", file=sys.stderr)
            return 1
        # Let the guest's tasks settle into their states, then stop it and dump.
        time.sleep(2)
        run = qmp(sock)
        run("stop")
        t0 = time.monotonic()
        run("dump-guest-memory", paging=False, protocol=f"file:{out}.tmp")
        print(f"qemu-dump: dump-guest-memory took {time.monotonic() - t0:.1f} s", file=sys.stderr)
        os.replace(out + ".tmp", out)
        try:
            run("quit")
        except (OSError, ValueError, RuntimeError):
            pass
        # Drain the rest of the console.
        rest = proc.stdout.read()
        if rest:
            console.write(rest)
    proc.wait()
    os.rmdir(tmpdir) if not os.path.exists(sock) else (os.unlink(sock), os.rmdir(tmpdir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
