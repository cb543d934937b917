#!/usr/bin/env bash
# A crash dump (ELF vmcore) of Debian's kernel booted under QEMU (TCG), for `orctool unwind --vmcore`,
# `orctool verify-patching --vmcore` and the comparison with drgn (docs/vmcore.md).
#
# usage: scripts/make-vmcore.sh [--mem MB] [--smp N] [--timeout SEC] [--redo] [6.12|6.1]
#   6.12|6.1       which corpus kernel (default 6.12); its bzImage and modules come from the fetched
#                  corpus (scripts/fetch-corpus.sh K), its -dbg vmlinux from scripts/fetch-images.sh K
#   --mem MB       guest RAM (default 256: the dump is about that size)
#   --smp N        guest CPUs (default 2: two CPUs busy, one in user space, one in a system call)
#   --timeout SEC  give up when the guest is not ready after SEC seconds (default 600)
#   --redo         make the dump again even if a cached one matches
#
# The guest (scripts/lib/vmcore-guest-init.sh) leaves tasks sleeping, spinning in user space, blocked
# in pipes and a FIFO, inside system calls, and blocked in a module's code (evdev), then prints `VMCORE ready`; scripts/lib/qemu-dump.py
# stops it and runs QMP `dump-guest-memory` (QEMU's `-device vmcoreinfo` passes the guest's VMCOREINFO
# into the dump, as kdump does; KASLR stays on).
#
# Cache: $ORCTOOL_CACHE/vmcore/<K>/ (default ~/.cache/orctool): vmcore, console.log, vmcore.env
# (written last: KEY, the kernel, the size, the time taken). Prints the path of the vmcore on stdout.
set -euo pipefail
export LC_ALL=C

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scripts/lib/corpus.sh
. "$here/lib/corpus.sh"
# shellcheck source=scripts/lib/initramfs.sh
. "$here/lib/initramfs.sh"

die()  { echo "make-vmcore: error: $*" >&2; exit 2; }
note() { echo "make-vmcore: $*" >&2; }

kernel=6.12 mem=256 smp=2 timeout=600 redo=0
while [[ $# -gt 0 ]]; do
    case $1 in
        --mem) [[ $# -ge 2 ]] || die "--mem needs MB"; mem=$2; shift ;;
        --smp) [[ $# -ge 2 ]] || die "--smp needs a number"; smp=$2; shift ;;
        --timeout) [[ $# -ge 2 ]] || die "--timeout needs seconds"; timeout=$2; shift ;;
        --redo) redo=1 ;;
        6.12|6.1) kernel=$1 ;;
        -h|--help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
        *) echo "usage: $0 [--mem MB] [--smp N] [--timeout SEC] [--redo] [6.12|6.1]" >&2; exit 2 ;;
    esac
    shift
done
[[ $mem =~ ^[1-9][0-9]*$ && $smp =~ ^[1-9][0-9]*$ && $timeout =~ ^[1-9][0-9]*$ ]] || die "--mem, --smp and --timeout want positive numbers"
command -v qemu-system-x86_64 > /dev/null || die "qemu-system-x86_64 is missing (apt-get install qemu-system-x86)"
[[ -x /bin/busybox ]] || die "/bin/busybox is missing (apt-get install busybox-static)"
command -v cpio > /dev/null || die "cpio is missing (apt-get install cpio)"

corpus_ready "$kernel" || { note "the $kernel corpus is missing: running scripts/fetch-corpus.sh $kernel"; "$here/fetch-corpus.sh" "$kernel" >&2; }
kver=$(corpus_get "$kernel" CORPUS_KVER)
bzimage=$(corpus_dir "$kernel")/boot/vmlinuz-$kver
mods=$(corpus_modules "$kernel")
[[ -f $bzimage ]] || die "no $bzimage (scripts/fetch-corpus.sh $kernel)"

out=$(corpus_cache)/vmcore/$kernel
mkdir -p "$out"
exec 9> "$out/.lock"
flock -n 9 || die "another make-vmcore.sh is running on $out"
# The dump depends on the kernel, the guest's script, the modules it loads and the machine.
GUEST_MODULES="drivers/firmware/qemu_fw_cfg.ko drivers/block/null_blk/null_blk.ko drivers/input/evdev.ko"
key=$( { sha256sum "$bzimage" "$here/lib/vmcore-guest-init.sh" "$here/lib/guest-setup.sh"; echo "$GUEST_MODULES mem=$mem smp=$smp"; } | sha256sum | cut -c1-16)
if [[ $redo -eq 0 && -f $out/vmcore.env && -f $out/vmcore ]] && grep -qx "KEY=$key" "$out/vmcore.env"; then
    note "cached: $out/vmcore ($(grep '^SUMMARY=' "$out/vmcore.env" | cut -d= -f2-))"
    printf '%s\n' "$out/vmcore"
    exit 0
fi
rm -f "$out/vmcore.env" "$out/vmcore"
t0=$(date +%s)
root=$(mktemp -d "$out/.initramfs.XXXXXX")
trap 'rm -rf "$root"' EXIT
initramfs_root "$root" "$here/lib/vmcore-guest-init.sh"
declare -A added=()
add_module() {    # add_module PATH: the module (relative to the corpus' modules/) after its dependencies
    local dep path
    [[ -z ${added[$1]-} ]] || return 0
    [[ -f $mods/$1 ]] || die "no module $mods/$1"
    for dep in $(initramfs_module_deps "$mods/$1"); do
        path=$(grep -E "(^|/)${dep//_/[-_]}\.ko\$" "$(corpus_list "$kernel")" | head -n 1) || die "$1 needs $dep: not in the corpus"
        add_module "$path"
    done
    added[$1]=1
    initramfs_add_module "$root" "$mods/$1"
}
for m in $GUEST_MODULES; do add_module "$m"; done
initramfs_pack "$root" "$out/initramfs.cpio.gz"

# TCG: no KVM here. `-cpu max` gives the guest what the kernel's alternatives look for (so the dump has
# patched code to verify, and 5-level paging: LA57).
qemu=(qemu-system-x86_64 -nographic -no-reboot -m "$mem" -smp "$smp" -cpu max -device vmcoreinfo
      -kernel "$bzimage" -initrd "$out/initramfs.cpio.gz" -append "console=ttyS0 panic=-1 loglevel=4")
# Up to three boots: Debian's own 6.12 kernel was seen dying at boot under TCG with two CPUs (an int3
# Oops in sched_clock_cpu while static keys were being patched: the emulator's cross-CPU code
# modification, not our code), once in several boots. A boot that fails is said, with its console kept.
attempt=1
while :; do
    note "booting $kver under QEMU (TCG, $mem MB, $smp CPUs), attempt $attempt, console: $out/console.log"
    if python3 "$here/lib/qemu-dump.py" --console "$out/console.log" --ready "VMCORE ready" --out "$out/vmcore" \
        --timeout "$timeout" -- "${qemu[@]}"; then
        break
    fi
    [[ $attempt -lt 3 ]] || die "no dump after $attempt boots (console: $out/console.log)"
    cp "$out/console.log" "$out/console.failed-$attempt.log"
    note "boot $attempt gave no dump: $(grep -m1 -E 'Oops|panic|BUG' "$out/console.log" || echo 'no panic line'); kept as $out/console.failed-$attempt.log"
    attempt=$((attempt + 1))
done
secs=$(( $(date +%s) - t0 ))
size=$(stat -c %s "$out/vmcore")
tasks=$(sed -n 's/.*VMCORE tasks \([0-9]*\).*/\1/p' "$out/console.log" | head -n 1)
summary="$kver, $mem MB, $smp CPUs, $size bytes, ${tasks:-?} user tasks, made in $secs s"
printf 'KEY=%s\nKERNEL=%s\nKVER=%s\nSUMMARY=%q\n' "$key" "$kernel" "$kver" "$summary" > "$out/vmcore.env.tmp"
mv "$out/vmcore.env.tmp" "$out/vmcore.env"
note "done in $secs s: $out/vmcore ($summary)"
printf '%s\n' "$out/vmcore"
