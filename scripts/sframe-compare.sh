#!/usr/bin/env bash
# SFrame v3 written by orctool, read by Debian unstable's binutils: for every ELF executable and
# shared library of the directories (default /usr/bin and /usr/lib/x86_64-linux-gnu), orctool
# writes a copy with `.sframe` + PT_GNU_SFRAME (`check --sframe -o`), sid's `objdump --sframe`
# dumps it, `orctool sframe-dump` dumps it with orctool's own reader, and the two dumps must
# agree row for row (scripts/lib/sframe_dumps.py). Also the sizes: SFrame bytes against
# .eh_frame + .eh_frame_hdr, per file and in total.
#
#   scripts/sframe-compare.sh [DIR...]
#
# One line per file in $ORCTOOL_CACHE/sframe/compare/<dir>.tsv (resumable: files already there
# are skipped; delete the file to start again): path, result (same/differ/objdump-error/
# orctool-error), FDEs, FREs, sframe bytes, eh_frame+hdr bytes, detail.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cache=${ORCTOOL_CACHE:-$HOME/.cache/orctool}
[[ $# -gt 0 ]] || set -- /usr/bin /usr/lib/x86_64-linux-gnu
orctool=${ORCTOOL:-}
if [[ -z $orctool ]]; then
    cargo build --release -q -p orctool --manifest-path "$here/Cargo.toml"
    orctool="${CARGO_TARGET_DIR:-$here/target}/release/orctool"
fi
bin=${SID_BIN:-$(bash "$here/scripts/fetch-sid-binutils.sh")}
export ORCTOOL_BIN=$orctool SID_OBJDUMP=$bin/objdump COMPARE_PY=$here/scripts/lib/sframe_dumps.py SECTION_BYTES_PY=$here/scripts/lib/section_bytes.py
start=$SECONDS
mkdir -p "$cache/sframe/compare"
# section_bytes FILE NAME...: the total size of the named sections.
section_bytes() { python3 "$SECTION_BYTES_PY" "$@"; }
export -f section_bytes
one() {
    local f=$1 tmp r fdes=0 fres=0 bytes=0 eh detail
    tmp=$(mktemp -d)
    eh=$(section_bytes "$f" .eh_frame .eh_frame_hdr)
    if ! detail=$("$ORCTOOL_BIN" check --sframe "$f" -o "$tmp/x" 2>&1); then
        r=orctool-error
    elif ! "$SID_OBJDUMP" --sframe "$tmp/x" > "$tmp/a" 2> "$tmp/err" || [[ -s $tmp/err ]]; then
        r=objdump-error; detail=$(head -c 300 "$tmp/err" | tr '\n\t' '  ')
    else
        "$ORCTOOL_BIN" sframe-dump "$tmp/x" > "$tmp/b" 2>&1 || true
        detail=$(python3 "$COMPARE_PY" "$tmp/a" "$tmp/b" || true)
        case $detail in
            same*) r=same; read -r _ fdes fres <<< "$detail" ;;
            *) r=differ ;;
        esac
        bytes=$(section_bytes "$tmp/x" .sframe)
    fi
    rm -rf "$tmp"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$f" "$r" "$fdes" "$fres" "$bytes" "$eh" "${detail//$'\n'/ }"
}
export -f one
for dir in "$@"; do
    out=$cache/sframe/compare/$(echo "$dir" | tr / _).tsv
    touch "$out"
    files=()
    for f in "$dir"/*; do
        [[ -f $f && ! -L $f ]] || continue
        head -c 18 "$f" 2>/dev/null | od -An -tx1 | tr -d ' \n' | grep -qE '^7f454c46.{24}0(2|3)00$' || continue
        grep -qF -- "$f	" "$out" && continue
        files+=("$f")
    done
    echo "sframe-compare: $dir: ${#files[@]} files to do" >&2
    if [[ ${#files[@]} -gt 0 ]]; then
        printf '%s\0' "${files[@]}" | xargs -0 -n 1 -P "${JOBS:-2}" bash -c 'one "$1"' _ >> "$out"
    fi
    awk -F'\t' -v d="$dir" '{n[$2]++; if ($2=="same") {s+=$5; e+=$6; fres+=$4}} END {
        printf "sframe-compare: %s: %d files: %d same, %d differ, %d objdump errors, %d orctool errors; %d FREs; SFrame %d bytes, .eh_frame+.eh_frame_hdr %d bytes (%.3fx) over the files compared\n",
        d, NR, n["same"], n["differ"], n["objdump-error"], n["orctool-error"], fres, s, e, (e ? s/e : 0) }' "$out"
done
echo "sframe-compare: $((SECONDS - start)) s" >&2
