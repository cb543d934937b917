#!/usr/bin/env bash
# Seed corpora of the fuzz targets (scripts/fuzz.sh), made from real inputs, never committed:
#   bash scripts/fuzz-seeds.sh DIR        (default ~/.cache/orctool/fuzz/corpus; seeds go to DIR/../seeds)
# - kernel objects: small real modules of each fetched corpus (6.12, 6.1, 7.2: the 6 smallest
#   with ORC between 8 and 24 KB), the embedded example's objects (crates/orctool/seed), and the
#   same modules linked by `ld` (special sections resolved, as in vmlinux);
# - user space: the C test programs (crates/testkit/programs) built as the tests build them
#   (gcc -O2 -fomit-frame-pointer, PIE) and without frame pointers' omission, one stripped, one
#   as a shared library; their .eh_frame sections; their sidecar tables (orctool check --sidecar);
#   a core of one of them (gdb's gcore) and /proc/PID/maps of a few processes;
# - the unwinder: windows of the real ORC table of vmlinux (6.12 and 6.1 images, when fetched),
#   with stacks made of return addresses into them; snapshot JSON of the same.
# Idempotent: a target's seeds are made once (delete DIR/../seeds/TARGET to make them again).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
corpus=${1:-$HOME/.cache/orctool/fuzz/corpus}
seeds=$(dirname "$corpus")/seeds
mkdir -p "$seeds"
all=1
for t in elf_orc_table flow_special check_kernel verify_patching check_linked linked_compare eh_frame sidecar proc_maps core_file unwind snapshot_json; do
    [ -n "$(ls -A "$seeds/$t" 2>/dev/null)" ] || all=0
done
[ "$all" = 1 ] && exit 0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cache=$(bash scripts/lib/corpus.sh cache)

need() { [ ! -d "$seeds/$1" ] || [ -z "$(ls -A "$seeds/$1")" ]; }
put() { # put TARGET FILE [PREFIX-BYTE-HEX]: copy FILE as a seed of TARGET (named by its hash)
    local t=$1 f=$2 prefix=${3-} h
    mkdir -p "$seeds/$t.new"
    if [ -n "$prefix" ]; then
        { printf "\\x$prefix"; cat "$f"; } >"$work/prefixed"
        f=$work/prefixed
    fi
    h=$(sha1sum "$f" | cut -c1-16)
    cp "$f" "$seeds/$t.new/$h"
}
done_target() { rm -rf "$seeds/$1"; mv "$seeds/$1.new" "$seeds/$1"; echo "fuzz-seeds: $1: $(ls "$seeds/$1" | wc -l) seeds"; }

# Kernel objects.
objects=()
for k in 6.12 6.1 7.2; do
    dir=$cache/corpus/$k
    [ -f "$dir/corpus.env" ] || { echo "fuzz-seeds: no $k corpus (scripts/fetch-corpus.sh $k): its modules are left out"; continue; }
    n=0
    while read -r rel; do
        f=$dir/modules/$rel
        size=$(stat -c %s "$f")
        [ "$size" -ge 8192 ] && [ "$size" -le 24576 ] || continue
        cp "$f" "$work/$k-$(basename "$f")"
        objects+=("$work/$k-$(basename "$f")")
        n=$((n + 1))
        [ $n -ge 6 ] && break
    done < <(LC_ALL=C comm -23 "$dir/modules.list" "$dir/no-orc.list")
done
for s in crates/orctool/seed/*.S; do
    as --64 -o "$work/seed-$(basename "$s" .S).o" "$s" 2>/dev/null && objects+=("$work/seed-$(basename "$s" .S).o")
done
linked=()
for o in "${objects[@]}"; do
    case "$o" in *seed-*) continue ;; esac
    if ld -m elf_x86_64 -e 0 --unresolved-symbols=ignore-all -z noexecstack -o "$o.linked" "$o" 2>/dev/null; then
        linked+=("$o.linked")
    fi
done
if need elf_orc_table; then for o in "${objects[@]}" "${linked[@]}"; do put elf_orc_table "$o"; done; done_target elf_orc_table; fi
if need flow_special; then for o in "${objects[@]}" "${linked[@]}"; do put flow_special "$o"; done; done_target flow_special; fi
# check_kernel and verify_patching: a first byte chooses the era and options.
if need check_kernel; then for o in "${objects[@]}"; do put check_kernel "$o" 00; put check_kernel "$o" 01; done; done_target check_kernel; fi
if need verify_patching; then for o in "${objects[@]}" "${linked[@]}"; do put verify_patching "$o" 00; done; done_target verify_patching; fi

# User space: the test programs.
programs=()
for c in crates/testkit/programs/*.c; do
    b=$work/$(basename "$c" .c)
    gcc -O2 -g -pthread -fomit-frame-pointer -fPIE -pie -o "$b" "$c" 2>/dev/null || continue
    programs+=("$b")
done
if [ ${#programs[@]} -gt 0 ]; then
    gcc -O1 -pthread -fno-omit-frame-pointer -no-pie -o "$work/recursion-fp" crates/testkit/programs/recursion.c && programs+=("$work/recursion-fp")
    strip -o "$work/switch-stripped" "$work/switch" && programs+=("$work/switch-stripped")
    gcc -O2 -shared -fPIC -o "$work/libtailcall.so" crates/testkit/programs/tailcall.c && programs+=("$work/libtailcall.so")
fi
if need check_linked; then for p in "${programs[@]}"; do put check_linked "$p"; done; done_target check_linked; fi
if need linked_compare; then for p in "${programs[@]}"; do put linked_compare "$p"; done; done_target linked_compare; fi
if need eh_frame; then
    for p in "${programs[@]}"; do
        objcopy -O binary --only-section=.eh_frame "$p" "$work/eh" 2>/dev/null && [ -s "$work/eh" ] && put eh_frame "$work/eh" 00
    done
    done_target eh_frame
fi
if need sidecar; then
    orctool=${ORCTOOL:-${CARGO_TARGET_DIR:-target}/release/orctool}
    [ -x "$orctool" ] || cargo build --release -q -p orctool
    for p in "${programs[@]}"; do
        mkdir -p "$work/side"
        "$orctool" check --sidecar="$work/side" "$p" >/dev/null 2>&1 || true
    done
    for s in "$work"/side/*.orc; do if [ -f "$s" ]; then put sidecar "$s"; fi; done
    done_target sidecar
fi
if need proc_maps; then
    for pid in $$ 1; do cat "/proc/$pid/maps" >"$work/maps" 2>/dev/null && put proc_maps "$work/maps"; done
    done_target proc_maps
fi
if need core_file && command -v gdb >/dev/null; then
    # A program that prints its pid and waits: its core, with every thread where it stopped.
    for p in "$work/recursion" "$work/threads"; do
        [ -x "$p" ] || continue
        stop=exit; [ "$(basename "$p")" = recursion ] && stop=bottom
        timeout 60 gdb -q -batch -ex "set confirm off" -ex "break $stop" -ex "run" -ex "gcore $work/core" "$p" >/dev/null 2>&1 </dev/null || true
        [ -s "$work/core" ] && [ "$(stat -c %s "$work/core")" -le 1048576 ] && put core_file "$work/core"
        rm -f "$work/core"
    done
    [ -d "$seeds/core_file.new" ] && done_target core_file
fi

# The unwinder and snapshots, from windows of vmlinux's table.
if need unwind || need snapshot_json; then
    images=()
    for k in 6.12 6.1; do [ -f "$cache/images/$k/vmlinux" ] && images+=("$k:$cache/images/$k/vmlinux"); done
    python3 scripts/lib/fuzz_seeds_unwind.py "$work" "${images[@]}"
    for f in "$work"/unwind-*; do [ -f "$f" ] && put unwind "$f"; done
    for f in "$work"/snapshot-*; do [ -f "$f" ] && put snapshot_json "$f"; done
    need unwind && [ -d "$seeds/unwind.new" ] && done_target unwind
    need snapshot_json && [ -d "$seeds/snapshot_json.new" ] && done_target snapshot_json
fi
rm -rf "$seeds"/*.new
