#!/usr/bin/env bash
# verify-exec on real programs: `gzip -c` of a 1 MB file and `python3.11 -c` running a small
# recursive function. Prints, per run, the per-binary table (main binary, libc, ld.so...) and
# the agreement; the full reports (text and JSON) go to the output directory.
#
#   scripts/verify-exec-real.sh [--every N] [--out DIR] [--only gzip|python] [--ratio STEPS]
#
# These runs are long (tens of millions of single steps, about 25 us each): progress goes to
# standard error every few seconds. --ratio STEPS also measures, on the first STEPS steps of
# gzip, the bare single-step rate and the checked rate, one after the other, and prints their
# ratio.
set -euo pipefail

every=1
out=${TMPDIR:-/tmp}/orctool-verify-exec-real
only=""
ratio=0
while [ $# -gt 0 ]; do
    case "$1" in
        --every) every="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        --only) only="$2"; shift 2 ;;
        --ratio) ratio="$2"; shift 2 ;;
        *) echo "usage: $0 [--every N] [--out DIR] [--only gzip|python] [--ratio STEPS]" >&2; exit 2 ;;
    esac
done

root=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
# ORCTOOL=path runs a given build (a long run should not see a rebuild under its feet).
orctool=${ORCTOOL:-}
if [ -z "$orctool" ]; then
    cargo build --quiet --release -p orctool --manifest-path "$root/Cargo.toml"
    orctool="$target/release/orctool"
fi
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cache="$out/cache"

head -c 1048576 /dev/zero > "$work/zeros"
python=/usr/bin/python3.11
[ -x "$python" ] || python=$(command -v python3)
script='
def f(n):
    return 1 if n == 0 else n * f(n - 1)
print(f(30))
'

run() {
    local name="$1"; shift
    echo "== $name: $* (every $every)"
    local rc=0
    # The program's own output is not the report: it goes to /dev/null.
    "$orctool" verify-exec --every "$every" --progress --cache-dir "$cache" --json -o "$out/$name.json" -- "$@" \
        > /dev/null || rc=$?
    if [ "$rc" -ge 2 ]; then
        echo "$name: verify-exec failed (exit $rc)"
        return
    fi
    python3 - "$out/$name.json" <<'PY' | tee "$out/$name.txt"
import json, sys
r = json.load(open(sys.argv[1]))
print(f"{' '.join(r['command'])}: {r['steps']} steps, every {r['every']}, {r['seconds']:.0f} s, "
      f"{r['steps'] / max(r['seconds'], 1e-9):.0f} steps/s, exit {r['exit']}")
print(f"{'checked':>10} {'agree':>10} {'disagree':>9} {'agree%':>9} {'undefined':>9} {'no table':>9}  binary")
for b in r['binaries'] + [dict(name='total', checked=r['checked'], agree=r['agree'],
                                  disagree=r['disagree'], no_table=r['no_table'],
                                  undefined=r.get('undefined', 0))]:
    pct = 100.0 * b['agree'] / b['checked'] if b['checked'] else 100.0
    print(f"{b['checked']:>10} {b['agree']:>10} {b['disagree']:>9} {pct:>8.3f}% {b.get('undefined', 0):>9} "
          f"{b['no_table']:>9}  {b['name']}")
print(f"distinct disagreements: {len(r['disagreements']) + r['disagreements_not_kept']}")
for d in r['disagreements'][:15]:
    print(f"  {d['ip']:#x} {(d['module'] or '?').rsplit('/', 1)[-1]}+{d['offset'] or 0:#x} "
          f"{d['function'] or '?'}: {d['count']} x {d['mismatch']}")
PY
}

if [ "$ratio" -gt 0 ]; then
    echo "== single-step rate vs checked rate, first $ratio steps of gzip -c"
    "$orctool" verify-exec --raw --max-steps "$ratio" -- gzip -c "$work/zeros" > /dev/null 2> /dev/null || true
    "$orctool" verify-exec --raw --json --max-steps "$ratio" -o "$work/raw.json" -- gzip -c "$work/zeros" > /dev/null
    "$orctool" verify-exec --json --every "$every" --max-steps "$ratio" --cache-dir "$cache" -o "$work/checked.json" \
        -- gzip -c "$work/zeros" > /dev/null || true
    python3 - "$work/raw.json" "$work/checked.json" <<'PY'
import json, sys
raw = json.load(open(sys.argv[1])); chk = json.load(open(sys.argv[2]))
r = raw['steps_per_second']; c = chk['steps'] / chk['seconds']
print(f"bare single-step: {r:.0f} steps/s; verify-exec (every {chk['every']}): {c:.0f} steps/s; ratio {c / r:.2f}")
PY
fi

if [ -z "$only" ] || [ "$only" = gzip ]; then
    run gzip gzip -c "$work/zeros"
fi
if [ -z "$only" ] || [ "$only" = python ]; then
    run python "$python" -c "$script"
fi
