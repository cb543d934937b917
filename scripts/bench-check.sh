#!/usr/bin/env bash
# Speed and memory of `orctool check` against the real objtool on a stripped corpus (6.12 by
# default; `--kernel 7.2` runs objtool 7.2 as the corpus runs it, through sid's ld.so).
#
# Usage: scripts/bench-check.sh [--kernel 6.12|7.2] [--sample N] [--orctool PATH] [--interleave]
#
# 1. Makes (once) a copy of every shipped module of the corpus with objtool's seven output sections
#    removed: $ORCTOOL_CACHE/corpus/<kernel>/stripped/.
# 2. Times, over the same modules, each on a fresh copy written in place:
#      objtool            one process per module (objtool checks one file per run)
#      orctool -j1        one process per module, one thread
#      orctool -j2        one process for all modules, two threads
#    and, for scale, the copying of the inputs (done before each row, not in its time).
# 3. Peak memory (maximum resident set) of both on amdgpu.ko, the largest module.
# Prints a markdown table for docs/benchmarks.md. The machine has 2 cores and is shared:
# run it when nothing else runs, and quote ratios from one run.
# --interleave: on a loaded machine, time the two one-process-per-module rows module by module
# instead (objtool, then orctool, on fresh copies of the same module; wall time of each process
# from bash's clock, summed), so that a change of load falls on both; the -j2 row and amdgpu
# are left out.
set -euo pipefail
cd "$(dirname "$0")/.."

sample=0
orctool=""
kernel=6.12
interleave=0
while [ $# -gt 0 ]; do
    case "$1" in
        --sample) sample=$2; shift 2 ;;
        --kernel) kernel=$2; shift 2 ;;
        --orctool) orctool=$2; shift 2 ;;
        --interleave) interleave=1; shift ;;
        -h|--help) sed -n '2,23p' "$0"; exit 0 ;;
        *) echo "bench-check: unknown argument $1" >&2; exit 2 ;;
    esac
done

modules=$(bash scripts/lib/corpus.sh modules "$kernel")
objtool=$(bash scripts/lib/corpus.sh objtool "$kernel")
list=$(bash scripts/lib/corpus.sh list "$kernel")
stripped="$(bash scripts/lib/corpus.sh dir "$kernel")/stripped"
if [ -z "$orctool" ]; then
    cargo build --release -p orctool >&2
    orctool="${CARGO_TARGET_DIR:-target}/release/orctool"
fi
flags=(--hacks=jump_label --hacks=noinstr --hacks=skylake --ibt --orc --retpoline --rethunk --sls
       --static-call --uaccess --prefix=16 --link --module)

if [ ! -f "$stripped/.complete" ]; then
    echo "bench-check: stripping the corpus once into $stripped" >&2
    rm -rf "$stripped"
    mkdir -p "$stripped"
    remove_flags=""
    for s in .orc_unwind .orc_unwind_ip .return_sites .call_sites .retpoline_sites .static_call_sites .ibt_endbr_seal; do
        remove_flags+=" --remove-section=$s --remove-section=.rela$s"
    done
    export stripped modules remove_flags
    # shellcheck disable=SC2016 # expanded by the inner shell
    xargs -a "$list" -P "$(nproc)" -n 1 bash -c \
        'mkdir -p "$stripped/$(dirname "$0")" && objcopy $remove_flags "$modules/$0" "$stripped/$0"'
    touch "$stripped/.complete"
fi

mapfile -t all < "$list"
if [ "$sample" -gt 0 ] && [ "$sample" -lt "${#all[@]}" ]; then
    picked=()
    step=$(( ${#all[@]} / sample ))
    for ((i = 0; i < sample; i++)); do picked+=("${all[$((i * step))]}"); done
    all=("${picked[@]}")
fi
n=${#all[@]}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

now() { date +%s.%N; }
elapsed() { echo "$2 - $1" | bc; }

copy_all() { # fresh copies of the chosen modules under $work/tree
    rm -rf "$work/tree"
    for m in "${all[@]}"; do mkdir -p "$work/tree/$(dirname "$m")"; cp "$stripped/$m" "$work/tree/$m"; done
}

if [ "$interleave" = 1 ]; then
    echo "bench-check: $n modules, interleaved; load at start $(cut -d' ' -f1-3 /proc/loadavg)" >&2
    us() { echo "${EPOCHREALTIME/./}"; }
    t_objtool=0 t_one=0
    for m in "${all[@]}"; do
        cp "$stripped/$m" "$work/a.ko"; cp "$stripped/$m" "$work/b.ko"
        t0=$(us); "$objtool" "${flags[@]}" "$work/a.ko" 2>/dev/null || true; t1=$(us)
        "$orctool" check -j1 "${flags[@]}" "$work/b.ko" 2>/dev/null || true; t2=$(us)
        t_objtool=$((t_objtool + t1 - t0)); t_one=$((t_one + t2 - t1))
    done
    echo
    echo "| run ($n modules, stripped $kernel, interleaved, load $(cut -d' ' -f1 /proc/loadavg) at end) | wall (s) | per module (ms) | objtool ÷ this |"
    echo "|---|---:|---:|---:|"
    awk -v o="$t_objtool" -v r="$t_one" -v n="$n" 'BEGIN {
        printf "| objtool, one process per module | %.1f | %.2f | 1.00 |\n", o / 1e6, o / 1e3 / n
        printf "| orctool check -j1, one process per module | %.1f | %.2f | %.2f |\n", r / 1e6, r / 1e3 / n, o / r }'
    exit 0
fi

t0=$(now); copy_all; t1=$(now); t_copy=$(elapsed "$t0" "$t1")

copy_all
t0=$(now)
for m in "${all[@]}"; do "$objtool" "${flags[@]}" "$work/tree/$m" 2>/dev/null || true; done
t1=$(now); t_objtool=$(elapsed "$t0" "$t1")

copy_all
t0=$(now)
for m in "${all[@]}"; do "$orctool" check -j1 "${flags[@]}" "$work/tree/$m" 2>/dev/null || true; done
t1=$(now); t_one=$(elapsed "$t0" "$t1")

copy_all
files=(); for m in "${all[@]}"; do files+=("$work/tree/$m"); done
t0=$(now)
"$orctool" check -j2 "${flags[@]}" "${files[@]}" 2>/dev/null || true
t1=$(now); t_two=$(elapsed "$t0" "$t1")

amdgpu=drivers/gpu/drm/amd/amdgpu/amdgpu.ko
cp "$stripped/$amdgpu" "$work/a1.ko"; cp "$stripped/$amdgpu" "$work/a2.ko"
rss() { /usr/bin/time -f '%M %e' "$@" 2>&1 >/dev/null | tail -1; }
read -r m_obj s_obj < <(rss "$objtool" "${flags[@]}" "$work/a1.ko")
read -r m_ours s_ours < <(rss "$orctool" check -j1 "${flags[@]}" "$work/a2.ko")

ratio() { echo "scale=2; $1 / $2" | bc; }
echo
echo "| run ($n modules, stripped $kernel) | wall (s) | objtool ÷ this |"
echo "|---|---:|---:|"
printf '| (copying the inputs, before each row, not timed) | %.1f | |\n' "$t_copy"
printf '| objtool, one process per module | %.1f | 1.00 |\n' "$t_objtool"
printf '| orctool check -j1, one process per module | %.1f | %s |\n' "$t_one" "$(ratio "$t_objtool" "$t_one")"
printf '| orctool check -j2, one process | %.1f | %s |\n' "$t_two" "$(ratio "$t_objtool" "$t_two")"
echo
echo "| amdgpu.ko | peak RSS (MB) | wall (s) |"
echo "|---|---:|---:|"
printf '| objtool | %.0f | %s |\n' "$(echo "$m_obj / 1024" | bc -l)" "$s_obj"
printf '| orctool check -j1 | %.0f | %s |\n' "$(echo "$m_ours / 1024" | bc -l)" "$s_ours"
