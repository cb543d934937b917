#!/usr/bin/env bash
# The analysis of linked code against the converted .eh_frame on every ELF file of a
# directory (default /usr/bin): one line per file, then the totals.
#
#   scripts/cfi-compare.sh [DIR] [orctool options, e.g. -v or --json]
set -euo pipefail
dir=${1:-/usr/bin}
shift || true
here=$(cd "$(dirname "$0")/.." && pwd)
orctool=${ORCTOOL:-}
if [[ -z $orctool ]]; then
    cargo build --release -q -p orctool --manifest-path "$here/Cargo.toml"
    orctool="${CARGO_TARGET_DIR:-$here/target}/release/orctool"
fi
files=()
for f in "$dir"/*; do
    [[ -f $f && ! -L $f ]] || continue
    # ELF executables and shared libraries only (magic, then e_type 2 or 3).
    head -c 18 "$f" 2>/dev/null | od -An -tx1 | tr -d ' \n' | grep -qE '^7f454c46.{24}0(2|3)00$' || continue
    files+=("$f")
done
echo "cfi-compare: ${#files[@]} ELF files in $dir" >&2
"$orctool" cfi-compare "$@" "${files[@]}"
