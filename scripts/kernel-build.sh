#!/usr/bin/env bash
# A real kernel built with orctool standing in for objtool, booted under QEMU, against the same kernel
# built by the real objtool (issue 13). See docs/kernel-build.md.
#
# usage: scripts/kernel-build.sh [--config small|debian] [--orctool PATH] [-j N] [--stage S]... [--redo S]... [--timeout SEC]
#   --config C      small (default): x86_64_defconfig plus what objtool's flags exercise, bzImage and a few
#                   modules, minutes; debian: Debian's own .config of the 6.12 corpus kernel with Debian's
#                   compiler and build identity, the image and a sample of 6 modules (not Debian's ~4000),
#                   hours on 2 cores; its compare stage also compares both images' ORC with Debian's shipped vmlinux
#                   (scripts/fetch-images.sh 6.12)
#   --orctool PATH  the orctool binary (default /work/main/target/release/orctool if it exists, else
#                   the one `cargo build --release -p orctool` makes in this repository)
#   -j N            make jobs for the kernel (default 2)
#   --stage S       run only stage S (repeatable); default: all stages, each skipped when already done
#   --redo S        forget stage S's result and run it again (repeatable; implies it runs)
#   --timeout SEC   QEMU timeout per boot (default 600)
#   --list          print the stages and whether each is done, then stop
#
# Stages (each prints its time; results cached under $ORCTOOL_CACHE/kernel, default ~/.cache/orctool/kernel):
#   source   Debian's linux-source-6.12 of the 6.12 corpus (the .deb scripts/build-gold.sh downloads), extracted
#            once into kernel/<version>/src; installs the build and boot packages with apt if missing
#   config   small: x86_64_defconfig + the options of the small config (ORC, IBT, retpoline, rethunk, SLS, call
#            depth tracking, Xen/PVH guest, ftrace, kprobes, livepatch, a few modules, the in-guest checks'
#            needs), `make olddefconfig`; prints which of the wanted options really ended up set.
#            debian: the corpus kernel's config-<kver> (from its linux-image package), `make olddefconfig`;
#            prints every line that olddefconfig changed (none when the toolchain is Debian's: gcc-12 12.2.0,
#            binutils 2.40, pahole 1.24)
#   objtool  `make bzImage modules` with objtool=<capture wrapper around the tree's own tools/objtool/objtool>;
#            every invocation's arguments, wall time, peak memory, input and output object are saved in
#            small/objtool/capture; the bzImage, vmlinux and modules in small/objtool/image
#   orctool  the same tree built again with objtool=<capture wrapper around `orctool check`> (a wrapper path per
#            orctool binary, so kbuild sees a new command line and reruns the objtool steps and what depends on
#            them: the module links, vmlinux.o and the final links, and the single-file modules, whose compile
#            command includes the objtool call); results in small/orctool-<sha>/
#   compare  every object both tools processed: inputs byte-identical, outputs as whole objects
#            (`orctool compare-objects`, or `orctool dump` + section and symbol lists while it does not exist);
#            `orctool dump` of both vmlinux images
#   partial  (only with --stage partial; for a build still running) the objects of every directory kbuild has
#            finished (the members of each built-in.a) linked into one object as vmlinux.o is, the tree's
#            objtool and orctool run on it with the flags kbuild gives vmlinux.o, compared as whole objects
#            and by their warnings; with --config debian, the ORC of each of its functions against the same
#            function in Debian's shipped vmlinux (scripts/lib/orc-by-function.py). Results in partial/
#   boot     both kernels under QEMU (TCG) with a busybox initramfs that exercises the ORC unwinder (sysrq-t,
#            /proc/*/stack, stack tracer, function tracer and events with stack traces, a kprobe, a livepatch
#            transition) and prints markers; the console logs are parsed by scripts/lib/kernel-console.py
#
# Exit status: 0 when every stage run passed; 1 when a comparison or a boot check failed; 2 on a harness error.
set -euo pipefail
export LC_ALL=C

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scripts/lib/corpus.sh
. "$here/lib/corpus.sh"
# shellcheck source=scripts/lib/orctool.sh
. "$here/lib/orctool.sh"
# shellcheck source=scripts/lib/initramfs.sh
. "$here/lib/initramfs.sh"

die()  { echo "kernel-build: error: $*" >&2; exit 2; }
note() { echo "kernel-build: $*" >&2; }

STAGES="source config objtool orctool compare boot partial"
DEFAULT_STAGES="source config objtool orctool compare boot"   # partial only when asked for
MAIN_ORCTOOL=/work/main/target/release/orctool

CONFIG_NAME=small orctool_arg= jobs=2 timeout=600 list_only=0
declare -A only=() redo=()
while [[ $# -gt 0 ]]; do
    case $1 in
        --config) [[ $# -ge 2 && ($2 == small || $2 == debian) ]] || die "--config wants small or debian"; CONFIG_NAME=$2; shift ;;
        --orctool) [[ $# -ge 2 ]] || die "--orctool needs a path"; orctool_arg=$2; shift ;;
        -j|--jobs) [[ $# -ge 2 ]] || die "$1 needs a number"; jobs=$2; shift ;;
        -j*) jobs=${1#-j} ;;
        --stage|--redo)
            [[ $# -ge 2 ]] || die "$1 needs a stage name ($STAGES)"
            [[ " $STAGES " == *" $2 "* ]] || die "unknown stage '$2' (stages: $STAGES)"
            only[$2]=1; [[ $1 == --redo ]] && redo[$2]=1; shift ;;
        --timeout) [[ $# -ge 2 ]] || die "--timeout needs seconds"; timeout=$2; shift ;;
        --list) list_only=1 ;;
        -h|--help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
        *) echo "usage: $0 [--config small|debian] [--orctool PATH] [-j N] [--stage S]... [--redo S]... [--timeout SEC] [--list]" >&2; exit 2 ;;
    esac
    shift
done
[[ $jobs =~ ^[1-9][0-9]*$ ]] || die "-j wants a positive number, got '$jobs'"
[[ $timeout =~ ^[1-9][0-9]*$ ]] || die "--timeout wants a positive number of seconds, got '$timeout'"
wanted() { if [[ ${#only[@]} -eq 0 ]]; then [[ " $DEFAULT_STAGES " == *" $1 "* ]]; else [[ -n ${only[$1]-} ]]; fi; }

cache=$(corpus_cache)
corpus_ready 6.12 || { note "the 6.12 corpus is missing: running scripts/fetch-corpus.sh 6.12"; "$here/fetch-corpus.sh" 6.12 >&2; }
version=$(corpus_get 6.12 CORPUS_VERSION)      # 6.12.117-1~deb12u1
kver=$(corpus_get 6.12 CORPUS_KVER)            # 6.12.117+deb12-amd64

# What differs between the two configs: the compiler's name, the build identity, what is built.
# KMAKE_VARS are make variables of every kernel make; BUILD_TARGETS what the two builds make.
if [[ $CONFIG_NAME == small ]]; then
    # The compiler Debian built the 6.12 corpus kernel with; a fixed build identity, so that two builds of
    # the same tree give the same bytes.
    CC_KERNEL=gcc-12
    export KBUILD_BUILD_TIMESTAMP='Thu Jan  1 00:00:00 UTC 2026' KBUILD_BUILD_USER=orctool KBUILD_BUILD_HOST=kbuild
    export KBUILD_BUILD_VERSION=1
    KMAKE_VARS=()
    BUILD_TARGETS="bzImage modules"
    SAMPLE_MODULES=
else
    # Debian's: the compiler by the name its config records (CONFIG_CC_VERSION_TEXT), the release name, and the
    # identity debian/rules gives kbuild (the banner of the shipped image says which: user, host, package
    # version and date). The banner and the package id are strings in .rodata; code does not depend on them.
    debian_config=$(compgen -G "$cache/corpus/6.12/boot/config-$kver" | head -n 1 || true)
    [[ -n $debian_config ]] || die "no config-$kver in $cache/corpus/6.12/boot (scripts/fetch-corpus.sh 6.12 --refresh)"
    CC_KERNEL=$(sed -n 's/^CONFIG_CC_VERSION_TEXT="\([^ ]*\) .*/\1/p' "$debian_config")
    [[ -n $CC_KERNEL ]] || die "$debian_config: no CONFIG_CC_VERSION_TEXT"
    banner_date=$(strings -n 20 "$cache/corpus/6.12/boot/vmlinuz-$kver" | sed -n "s/.*#1 .* Debian $version (\([0-9-]*\)).*/\1/p" | head -n 1)
    [[ -n $banner_date ]] || die "no 'Debian $version (DATE)' banner in $cache/corpus/6.12/boot/vmlinuz-$kver"
    export KBUILD_BUILD_TIMESTAMP="$banner_date" KBUILD_BUILD_VERSION_TIMESTAMP="Debian $version ($banner_date)"
    export KBUILD_BUILD_USER=debian-kernel KBUILD_BUILD_HOST=lists.debian.org KBUILD_BUILD_VERSION=1
    export DISTRIBUTION_OFFICIAL_BUILD=1 DISTRIBUTOR=Debian DISTRIBUTION_VERSION=$version
    KMAKE_VARS=(KERNELRELEASE="$kver")
    BUILD_TARGETS="bzImage"
    # Not Debian's ~4000 modules (hours more on 2 cores): a sample built as single targets after the image,
    # through the same objtool= path: what /init loads (null_blk, tun, veth), two small ones of the gold set
    # (msr, cpuid), and the livepatch sample (a test module Debian's config does not build: its option
    # is given on the command line; only that Makefile reads it).
    SAMPLE_MODULES="drivers/block/null_blk/null_blk.ko drivers/net/tun.ko drivers/net/veth.ko
        arch/x86/kernel/msr.ko arch/x86/kernel/cpuid.ko samples/livepatch/livepatch-sample.ko"
fi
kroot=$cache/kernel/$version
src=$kroot/src
bdir=$kroot/$CONFIG_NAME
obj=$bdir/obj
mkdir -p "$bdir"
# One run at a time per build tree (two makes in one tree would corrupt it); compare and boot only read it.
if [[ $list_only -eq 0 ]] && { wanted source || wanted config || wanted objtool || wanted orctool; }; then
    exec 9> "$bdir/.lock"
    flock -n 9 || die "another kernel-build.sh is running on $bdir"
fi

as_root() {
    if [[ $(id -u) -eq 0 ]]; then "$@"
    elif command -v sudo >/dev/null; then sudo "$@"
    else die "need root for: $* (no sudo)"; fi
}

# Stage bookkeeping: a stage is done when its marker holds the key it was run with. The source tree is
# shared by both configs: its marker is next to it, not in a config's directory.
marker() { if [[ $1 == source ]]; then printf '%s/.stage-source\n' "$kroot"; else printf '%s/.stage-%s\n' "$bdir" "$1"; fi; }
stage_done() { [[ -z ${redo[${1%%-*}]-} && -f $(marker "$1") && "$(cat "$(marker "$1")")" == "$2" ]]; }
stage_t0=0
stage_begin() { stage_t0=$(date +%s); rm -f "$(marker "$1")"; note "stage $1: running"; }
stage_end() {
    printf '%s\n' "$2" > "$(marker "$1").tmp"; mv "$(marker "$1").tmp" "$(marker "$1")"
    note "stage $1: done in $(( $(date +%s) - stage_t0 )) s"
}
stage_skip() { note "stage $1: cached ($2)"; }

failed=0
t_start=$(date +%s)

# ================================================================== stage 1: source and packages
PKGS="make bc flex bison libelf-dev libssl-dev cpio qemu-system-x86 busybox-static gcc-12 time"
# Debian's config has DEBUG_INFO_BTF: pahole (bookworm's 1.24, the CONFIG_PAHOLE_VERSION Debian's config records).
[[ $CONFIG_NAME == small ]] || PKGS+=" dwarves"
need_pkgs() {
    local missing=() p
    for p in $PKGS; do
        dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    [[ ${#missing[@]} -eq 0 ]] && return 0
    note "installing ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2 \
        || die "apt-get install ${missing[*]} failed"
}

source_key="linux-source-6.12 $version"
if [[ $list_only -eq 0 ]] && wanted source; then
    need_pkgs
    # One source stage at a time across configs: a second script must not extract over (or delete) a tree
    # the first one is extracting. A tree extracted by an older version of this script has its marker in small/.
    exec 8> "$kroot/.source.lock"
    flock 8
    if [[ ! -f $(marker source) && -f $kroot/small/.stage-source && -f $src/Makefile ]]; then
        cp "$kroot/small/.stage-source" "$(marker source)"
    fi
    if stage_done source "$source_key" && [[ -f $src/Makefile ]]; then
        stage_skip source "$src"
    else
        stage_begin source
        # The tarball build-gold.sh took out of the .deb, else the .deb it downloaded, else download it.
        tarball=$cache/gold-build/$version/linux-source-6.12.tar.xz
        deb=$(compgen -G "$cache/debs/linux-source-6.12_${version//:/%3a}_*.deb" | head -n 1 || true)
        if [[ ! -s $tarball && -z $deb ]]; then
            mkdir -p "$cache/debs"
            tmp=$(mktemp -d "$cache/debs/.download.XXXXXX"); chmod 0777 "$tmp"
            note "downloading linux-source-6.12=$version"
            (cd "$tmp" && apt-get download -q "linux-source-6.12=$version" >&2) \
                || { rm -rf "$tmp"; die "apt-get download linux-source-6.12=$version failed (apt-get update?)"; }
            mv "$tmp"/linux-source-6.12_*.deb "$cache/debs/"; rm -rf "$tmp"
            deb=$(compgen -G "$cache/debs/linux-source-6.12_${version//:/%3a}_*.deb" | head -n 1)
        fi
        rm -rf "$src" "$src.tmp"; mkdir -p "$src.tmp"
        if [[ -s $tarball ]]; then
            note "extracting $tarball"
            tar -xJf "$tarball" -C "$src.tmp" --strip-components=1
        else
            note "extracting linux-source-6.12.tar.xz out of $deb"
            dpkg-deb --fsys-tarfile "$deb" | tar -xO ./usr/src/linux-source-6.12.tar.xz | tar -xJ -C "$src.tmp" --strip-components=1
        fi
        [[ -f $src.tmp/Makefile && -d $src.tmp/tools/objtool ]] || die "unexpected source layout in $src.tmp"
        mv "$src.tmp" "$src"
        stage_end source "$source_key"
    fi
    exec 8>&-
fi

# ================================================================== stage 2: the small config
# NAME=VALUE the small config asks for, on top of x86_64_defconfig. Grouped by what needs them.
WANTED_CONFIG=(
    # what objtool's flags exercise
    UNWINDER_ORC=y X86_KERNEL_IBT=y MITIGATION_RETPOLINE=y MITIGATION_RETHUNK=y MITIGATION_SLS=y
    MITIGATION_CALL_DEPTH_TRACKING=y MITIGATION_UNRET_ENTRY=y MITIGATION_SRSO=y
    HYPERVISOR_GUEST=y PARAVIRT=y PARAVIRT_SPINLOCKS=y KVM_GUEST=y XEN=y XEN_PV=y XEN_PVHVM_GUEST=y XEN_PVH=y PVH=y
    HAVE_STATIC_CALL_INLINE=y
    FTRACE=y FUNCTION_TRACER=y FUNCTION_GRAPH_TRACER=y DYNAMIC_FTRACE=y STACK_TRACER=y FTRACE_SYSCALLS=y
    KPROBES=y KPROBE_EVENTS=y
    LIVEPATCH=y KALLSYMS_ALL=y SAMPLES=y SAMPLE_LIVEPATCH=m
    MODULES=y MODULE_UNLOAD=y
    # a few modules (each is one `--link --module` objtool run)
    KVM=m KVM_INTEL=m KVM_AMD=m BLK_DEV_NULL_BLK=m TUN=m VETH=m WIREGUARD=m VHOST_NET=m X86_MSR=m X86_CPUID=m
    XEN_GNTDEV=m XEN_GRANT_DEV_ALLOC=m
    CRYPTO_AES_NI_INTEL=m CRYPTO_CHACHA20_X86_64=m CRYPTO_POLY1305_X86_64=m CRYPTO_SHA256_SSSE3=m
    # what the in-guest checks need
    STACKTRACE=y MAGIC_SYSRQ=y DEVTMPFS=y DEVTMPFS_MOUNT=y BLK_DEV_INITRD=y RD_GZIP=y TMPFS=y PROC_FS=y SYSFS=y
    DEBUG_FS=y SERIAL_8250=y SERIAL_8250_CONSOLE=y KALLSYMS=y
)
config_key=$(printf '%s\n' "$source_key" "$CC_KERNEL" "${WANTED_CONFIG[@]}" | sha256sum | cut -c1-16)
[[ $CONFIG_NAME == small ]] || config_key=$(printf '%s\n' "$source_key" "$CC_KERNEL" "${KMAKE_VARS[@]}" | cat - "$debian_config" | sha256sum | cut -c1-16)
kmake() { make -C "$src" O="$obj" CC="$CC_KERNEL" HOSTCC="$CC_KERNEL" "${KMAKE_VARS[@]}" -j "$jobs" "$@"; }

# config_report: one line per wanted option, its value in .config, and a last count line.
config_report() {
    local w name want have ok=0 bad=0
    for w in "${WANTED_CONFIG[@]}"; do
        name=${w%%=*} want=${w#*=}
        have=$(sed -n "s/^CONFIG_$name=//p" "$obj/.config")
        [[ -n $have ]] || have=n
        if [[ $have == "$want" ]]; then ok=$((ok + 1)); printf '  %-32s %s\n' "$name" "$have"
        else bad=$((bad + 1)); printf '  %-32s %s (wanted %s)\n' "$name" "$have" "$want"; fi
    done
    printf 'config %s: %d of %d wanted options set as wanted\n' "$CONFIG_NAME" "$ok" $((ok + bad))
}

if [[ $list_only -eq 0 ]] && wanted config; then
    [[ -f $src/Makefile ]] || die "no source in $src: run the source stage first"
    if stage_done config "$config_key" && [[ -f $obj/.config ]]; then
        stage_skip config "$obj/.config"
        tail -n 1 "$bdir/config.report" >&2
    else
        stage_begin config
        mkdir -p "$obj"
        if [[ $CONFIG_NAME == small ]]; then
            kmake x86_64_defconfig > "$bdir/config.log" 2>&1 || { tail "$bdir/config.log" >&2; die "make x86_64_defconfig failed"; }
            args=()
            for w in "${WANTED_CONFIG[@]}"; do
                name=${w%%=*} val=${w#*=}
                case $val in y) args+=(--enable "$name") ;; m) args+=(--module "$name") ;; n) args+=(--disable "$name") ;;
                    *) args+=(--set-val "$name" "$val") ;; esac
            done
            "$src/scripts/config" --file "$obj/.config" "${args[@]}"
            kmake olddefconfig >> "$bdir/config.log" 2>&1 || { tail "$bdir/config.log" >&2; die "make olddefconfig failed"; }
            config_report > "$bdir/config.report"
        else
            cp "$debian_config" "$obj/.config"
            kmake olddefconfig > "$bdir/config.log" 2>&1 || { tail "$bdir/config.log" >&2; die "make olddefconfig failed"; }
            # What olddefconfig changed in Debian's config (the toolchain's versions, options this toolchain lacks).
            changed=$(diff <(grep '^CONFIG_\|^# CONFIG_' "$debian_config" | sort) <(grep '^CONFIG_\|^# CONFIG_' "$obj/.config" | sort) | grep '^[<>]' || true)
            { [[ -z $changed ]] || printf '%s\n' "$changed" | sed 's/^/  /'
              printf 'config debian: %s, make olddefconfig changed %d lines of it\n' "$(basename "$debian_config")" "$(grep -c . <<< "$changed" || true)"
            } > "$bdir/config.report"
        fi
        cat "$bdir/config.report" >&2
        stage_end config "$config_key"
    fi
fi

# ================================================================== stages 3 and 4: the two builds
# write_wrapper PATH CAPTURE_DIR TOOL...: kbuild's objtool= program. For each call it copies the object
# (the last argument) to CAPTURE/in/<path> before TOOL runs and to CAPTURE/out/<path> after, keeps TOOL's
# stderr in CAPTURE/log/<path>.err, and appends "path rc wall_ms peak_rss_kb flags" to CAPTURE/calls.tsv.
# Written only when its text changes: kbuild makes every objtool'd object depend on the program's file.
write_wrapper() {
    local path=$1 cap=$2 tool
    shift 2
    tool=$(printf "'%s' " "$@")
    mkdir -p "$(dirname "$path")"
    cat > "$path.tmp" <<WRAP
#!/bin/sh
# Generated by orctool scripts/kernel-build.sh: make's objtool=. Runs: ${tool% } FLAGS... OBJECT
# and saves the object before and after, the flags, the wall time and the peak memory.
cap='$cap'
[ \$# -gt 0 ] || exec ${tool% }
for f; do :; done
case \$f in "\$PWD"/*) rel=\${f#"\$PWD"/} ;; *) rel=\$f ;; esac
n=\$((\$# - 1))
flags=\$(for a; do [ \$n -gt 0 ] && printf '%s ' "\$a"; n=\$((n - 1)); done)
d=\$(dirname "\$rel")
mkdir -p "\$cap/in/\$d" "\$cap/out/\$d" "\$cap/log/\$d" || exit 1
cp "\$f" "\$cap/in/\$rel" || exit 1
t0=\$(date +%s%N)
/usr/bin/time -f '%M' -o "\$cap/log/\$rel.rss" ${tool% } "\$@" 2> "\$cap/log/\$rel.err"
rc=\$?
t1=\$(date +%s%N)
cat "\$cap/log/\$rel.err" >&2
[ ! -f "\$f" ] || cp "\$f" "\$cap/out/\$rel"
printf '%s\t%s\t%s\t%s\t%s\n' "\$rel" "\$rc" "\$(( (t1 - t0) / 1000000 ))" "\$(tail -n 1 "\$cap/log/\$rel.rss")" "\${flags% }" >> "\$cap/calls.tsv"
exit \$rc
WRAP
    chmod +x "$path.tmp"
    if cmp -s "$path.tmp" "$path"; then rm -f "$path.tmp"; else mv "$path.tmp" "$path"; fi
}

# run_build STAGE RUNDIR KEY TOOL...: build bzImage and modules with TOOL as objtool, capture every call,
# keep the image. Returns 1 when make fails (the log is in RUNDIR/build.log).
run_build() {
    local stage=$1 run=$2 key=$3 cap rel t0 rc mods m
    shift 3
    cap=$run/capture
    if stage_done "$stage" "$key" && [[ -f $run/image/bzImage && -f $run/summary ]]; then
        stage_skip "$stage" "$run"; cat "$run/summary" >&2; return 0
    fi
    stage_begin "$stage"
    # Objects this run's tool already processed in an earlier attempt: kbuild would not run the tool on
    # them again (same command line), so remove them to have every call captured.
    if [[ -d $cap/in ]]; then
        while IFS= read -r rel; do rm -f "$obj/$rel"; done < <(cd "$cap/in" && find . -type f -printf '%P\n')
    fi
    rm -rf "$cap" "$run/image"; mkdir -p "$cap"
    : > "$cap/calls.tsv"
    write_wrapper "$run/wrapper/objtool" "$cap" "$@"
    note "$stage: make $BUILD_TARGETS (log: $run/build.log)"
    t0=$(date +%s)
    rc=0
    # shellcheck disable=SC2086  # BUILD_TARGETS and SAMPLE_MODULES are lists of targets
    kmake objtool="$run/wrapper/objtool" $BUILD_TARGETS > "$run/build.log" 2>&1 || rc=$?
    if [[ $rc -eq 0 && -n $SAMPLE_MODULES ]]; then
        note "$stage: make the sample modules (single targets; log: $run/build.log)"
        # shellcheck disable=SC2086
        kmake objtool="$run/wrapper/objtool" CONFIG_SAMPLE_LIVEPATCH=m $SAMPLE_MODULES >> "$run/build.log" 2>&1 || rc=$?
    fi
    local build_s=$(( $(date +%s) - t0 ))
    if [[ $rc -ne 0 ]]; then
        tail -n 15 "$run/build.log" >&2
        printf '%s: make failed (exit %d) after %d s; %d tool calls captured\n' "$stage" "$rc" "$build_s" \
            "$(wc -l < "$cap/calls.tsv")" > "$run/summary"
        cat "$run/summary" >&2
        return 1
    fi
    # Every module and vmlinux.o went through the tool (no module when only the image is built).
    mods=
    [[ " $BUILD_TARGETS " != *" modules "* && -z $SAMPLE_MODULES ]] || mods=$(sed 's/\.o$//' "$obj/modules.order")
    local missing=0
    for m in vmlinux $mods; do
        cut -f1 "$cap/calls.tsv" | grep -qxF "$m.o" || { note "$stage: the tool never ran on $m.o"; missing=$((missing + 1)); }
    done
    mkdir -p "$run/image/modules"
    cp "$obj/arch/x86/boot/bzImage" "$obj/vmlinux" "$obj/System.map" "$obj/.config" "$obj/modules.order" "$run/image/"
    for m in $mods; do mkdir -p "$run/image/modules/$(dirname "$m")"; cp "$obj/$m.ko" "$run/image/modules/$m.ko"; done
    # What kbuild ran again: compile and link steps in the log.
    local cc ld
    cc=$(grep -c '^  CC ' "$run/build.log" || true)
    ld=$(grep -cE '^  (LD|LD \[M\]) ' "$run/build.log" || true)
    awk -F'\t' -v stage="$stage" -v build_s="$build_s" -v cc="$cc" -v ld="$ld" -v missing="$missing" -v nmod="$(wc -w <<< "$mods")" '
        { n++; ms += $3; if ($4 > rss) { rss = $4; big = $1 } if ($2 != 0) bad++; if ($1 == "vmlinux.o") vms = $3 }
        END { printf "%s: build %d s (%d CC, %d LD lines), %d tool calls (vmlinux.o + %d modules, %d never processed), %d failed; tool wall total %.2f s (vmlinux.o %.2f s), peak %d MB (%s)\n",
                  stage, build_s, cc, ld, n, nmod, missing, bad, ms / 1000, vms / 1000, rss / 1024, big }' \
        "$cap/calls.tsv" > "$run/summary"
    cat "$run/summary" >&2
    local warnings
    warnings=$(cat "$cap"/log/*.err "$cap"/log/*/*.err "$cap"/log/*/*/*.err "$cap"/log/*/*/*/*.err 2>/dev/null | grep -c 'warning' || true)
    printf '%s: tool warnings: %d (lines with "warning" in %s/log/**.err)\n' "$stage" "$warnings" "$cap" >> "$run/summary"
    tail -n 1 "$run/summary" >&2
    [[ $missing -eq 0 ]] || return 1
    stage_end "$stage" "$key"
}

objtool_run=$bdir/objtool
# What the two builds make is part of their key (the sample modules of Debian's config).
build_key=$config_key
[[ -z $SAMPLE_MODULES ]] || build_key+=" modules-$(printf '%s\n' $SAMPLE_MODULES | sha256sum | cut -c1-8)"
if [[ $list_only -eq 0 ]] && wanted objtool; then
    [[ -f $obj/.config ]] || die "no $obj/.config: run the config stage first"
    # kbuild builds the tree's own objtool (prepare: tools/objtool) before any object; the wrapper runs it.
    run_build objtool "$objtool_run" "$build_key" "$obj/tools/objtool/objtool" || die "the objtool build failed (log: $objtool_run/build.log)"
fi

# ------------------------------------------------------------------ the orctool binary
# Resolved only for the stages that need it. The binary is copied into its run directory (a cargo build
# during the kernel build cannot change it under kbuild's feet), and the run directory is named after its
# hash: a new orctool gives a new wrapper path, a new command line, and kbuild reruns the objtool steps.
orc= orc_sha= orc_run=
resolve_orctool() {
    [[ -z $orc ]] || return 0
    local bin=$orctool_arg
    if [[ -z $bin && -x $MAIN_ORCTOOL ]]; then bin=$MAIN_ORCTOOL; fi
    orc=$(orctool_bin "$bin") || exit 2
    orc_sha=$(sha256sum < "$orc" | cut -c1-12)
    orc_run=$bdir/orctool-$orc_sha
    mkdir -p "$orc_run"
    if ! cmp -s "$orc" "$orc_run/orctool"; then cp "$orc" "$orc_run/orctool.tmp"; mv "$orc_run/orctool.tmp" "$orc_run/orctool"; fi
    if [[ ! -f $orc_run/orctool.info ]]; then
        local repo commit=unknown
        repo=$(cd "$(dirname "$orc")" && git rev-parse --show-toplevel 2>/dev/null || true)
        [[ -z $repo ]] || commit=$(git -C "$repo" log -1 --format='%h %cI %s' 2>/dev/null || echo unknown)
        printf 'binary %s (sha256 %s...)\ncommit %s\nversion %s\n' "$orc" "$orc_sha" "$commit" \
            "$("$orc" --version 2>/dev/null || echo unknown)" > "$orc_run/orctool.info"
    fi
    note "orctool: $orc (sha256 $orc_sha...), $(sed -n 's/^commit //p' "$orc_run/orctool.info")"
}

if [[ $list_only -eq 0 ]] && wanted orctool; then
    [[ -f $(marker objtool) ]] || die "the objtool stage has not been run (its build is the reference)"
    resolve_orctool
    run_build orctool "$orc_run" "$build_key $orc_sha" "$orc_run/orctool" check || {
        failed=1; note "the orctool build failed (log: $orc_run/build.log)"; }
fi

# ================================================================== stage 5: compare
# Per object both builds ran their tool on: the inputs must be byte-identical (else the comparison of the
# outputs means nothing), then the outputs compared as whole objects. Then `orctool dump` of the two vmlinux.
if [[ $list_only -eq 0 ]] && wanted compare; then
    resolve_orctool
    [[ -f $(marker objtool) && -f $orc_run/capture/calls.tsv ]] || die "compare needs the objtool and orctool stages"
    cmp_key="$(cat "$(marker objtool)") $(sha256sum < "$orc_run/capture/calls.tsv" | cut -c1-16)"
    out=$orc_run/compare
    if stage_done compare "$cmp_key" && [[ -f $out/summary ]]; then
        stage_skip compare "$out"; cat "$out/summary" >&2
    else
        stage_begin compare
        rm -rf "$out"; mkdir -p "$out/objects"
        a=$objtool_run/capture b=$orc_run/capture
        # The comparison: orctool compare-objects when this orctool has it; else scripts/lib/elf-compare.py and
        # `orctool dump`. elf-compare.py also runs as a second opinion next to compare-objects.
        if "$orc" compare-objects --help > /dev/null 2>&1; then
            method="orctool compare-objects (second opinion: scripts/lib/elf-compare.py)"
            compare_objects() { "$orc" compare-objects "$1" "$2"; }
        else
            method="FALLBACK, this orctool has no compare-objects: scripts/lib/elf-compare.py (sections' bytes, relocations by symbol name, symbols as a set) and orctool dump"
            compare_objects() {
                local rc=0
                python3 "$here/lib/elf-compare.py" "$1" "$2" || rc=$?
                if cmp -s <("$orc" dump "$1" 2>&1) <("$orc" dump "$2" 2>&1); then echo "orctool dump: identical"
                else echo "orctool dump: differs"; [[ $rc -ne 0 ]] || rc=1; fi
                return $rc
            }
        fi
        n=0 in_same=0 out_same=0 only_a=0 only_b=0 agree=0
        : > "$out/objects.tsv"
        while IFS=$'\t' read -r rel _; do
            n=$((n + 1))
            if [[ ! -f $b/out/$rel ]]; then only_a=$((only_a + 1)); printf '%s\tonly-objtool\t-\t-\n' "$rel" >> "$out/objects.tsv"; continue; fi
            ins=identical; cmp -s "$a/in/$rel" "$b/in/$rel" || ins=DIFFERENT
            [[ $ins == identical ]] && in_same=$((in_same + 1))
            mkdir -p "$out/objects/$(dirname "$rel")"
            if cmp -s "$a/out/$rel" "$b/out/$rel"; then res=identical-bytes; echo "byte-identical" > "$out/objects/$rel.txt"
            elif compare_objects "$a/out/$rel" "$b/out/$rel" > "$out/objects/$rel.txt" 2>&1 < /dev/null; then res=equal
            else res=differ; fi
            [[ $res == differ ]] || out_same=$((out_same + 1))
            second=equal
            python3 "$here/lib/elf-compare.py" "$a/out/$rel" "$b/out/$rel" > "$out/objects/$rel.elf-compare.txt" 2>&1 < /dev/null || second=differ
            { [[ $second == differ && $res == differ ]] || [[ $second != differ && $res != differ ]]; } && agree=$((agree + 1))
            printf '%s\tinput-%s\t%s\telf-compare-%s\n' "$rel" "$ins" "$res" "$second" >> "$out/objects.tsv"
            printf '%-48s input %-9s output %-15s (elf-compare.py: %s)\n' "$rel" "$ins" "$res" "$second" >&2
        done < "$a/calls.tsv"
        only_b=$(cut -f1 "$b/calls.tsv" | grep -cvxFf <(cut -f1 "$a/calls.tsv") || true)
        # What differs, over all objects: one line per kind of difference (section name, symbols, relocations).
        find "$out/objects" -name '*.txt' ! -name '*.elf-compare.txt' -exec cat {} + \
            | grep -vE '^(equal|byte-identical|identical: |different: |differ: |orctool dump: identical|\.\.\. )' \
            | sed -E 's/^(section|relocations|group) ([^: ]+):.*/\1 \2/; s/^symbol .*: only in the (first|second).*/symbols only in the \1 (objtool = first)/;
                     s/^(symbols|sections only in [AB]).*/\1/; s/^(.{60}).*/\1.../' \
            | sort | uniq -c | sort -rn > "$out/differences" || true   # grep -v selects nothing when all are equal
        # The final images' ORC.
        "$orc" dump "$objtool_run/image/vmlinux" > "$out/vmlinux.objtool.dump" 2>&1 || true
        "$orc" dump "$orc_run/image/vmlinux" > "$out/vmlinux.orctool.dump" 2>&1 || true
        lines=$(wc -l < "$out/vmlinux.objtool.dump")
        if cmp -s "$out/vmlinux.objtool.dump" "$out/vmlinux.orctool.dump"; then vml="identical ($lines lines)"
        else vml="DIFFERENT ($(diff "$out/vmlinux.objtool.dump" "$out/vmlinux.orctool.dump" | grep -c '^[<>]' || true) of $lines lines differ)"; fi
        # Debian's config: both images' ORC against Debian's own image, the one its -dbg package ships.
        shipped=$cache/images/6.12/vmlinux debian_line=
        if [[ $CONFIG_NAME == debian && ! -f $shipped ]]; then
            debian_line="SKIP: no $shipped (scripts/fetch-images.sh 6.12)"
        elif [[ $CONFIG_NAME == debian ]]; then
            "$orc" dump "$shipped" > "$out/vmlinux.debian.dump" 2>&1 || true
            python3 "$here/lib/orc-dump-by-section.py" "$shipped" < "$out/vmlinux.debian.dump" > "$out/vmlinux.debian.by-section"
            for who in objtool orctool; do
                run_dir=$objtool_run; [[ $who == objtool ]] || run_dir=$orc_run
                if cmp -s "$out/vmlinux.debian.dump" "$out/vmlinux.$who.dump"; then
                    debian_line+="$who build identical ($(wc -l < "$out/vmlinux.debian.dump") lines); "; continue
                fi
                # Not identical as addresses: the same entries at the same offsets of each section?
                python3 "$here/lib/orc-dump-by-section.py" "$run_dir/image/vmlinux" < "$out/vmlinux.$who.dump" > "$out/vmlinux.$who.by-section"
                if cmp -s "$out/vmlinux.debian.by-section" "$out/vmlinux.$who.by-section"; then
                    debian_line+="$who build identical as section+offset, not as addresses (sections moved: $(diff \
                        <(python3 "$here/lib/orc-dump-by-section.py" --addresses "$shipped") \
                        <(python3 "$here/lib/orc-dump-by-section.py" --addresses "$run_dir/image/vmlinux") \
                        | sed -n 's/^> \([^ ]*\) .*/\1/p' | grep -E '^\.(text|init\.text|exit\.text|altinstr_aux)$' | tr '\n' ' ' | sed 's/ $//')); "
                else
                    debian_line+="$who build DIFFERENT ($(diff "$out/vmlinux.debian.by-section" "$out/vmlinux.$who.by-section" | grep -c '^[<>]' || true) lines differ as section+offset, first: $(diff "$out/vmlinux.debian.by-section" "$out/vmlinux.$who.by-section" | grep -m1 '^[<>]')); "
                fi
            done
            debian_line=${debian_line%; }
            # The sample modules against the ones Debian ships (the 6.12 corpus), by `orctool dump`.
            mod_same=0 mod_n=0 mod_diff=
            for m in $SAMPLE_MODULES; do
                [[ -f $cache/corpus/6.12/modules/$m ]] || continue   # the livepatch sample is not Debian's
                mod_n=$((mod_n + 1))
                if cmp -s <("$orc" dump "$cache/corpus/6.12/modules/$m" 2>&1) <("$orc" dump "$orc_run/image/modules/$m" 2>&1); then
                    mod_same=$((mod_same + 1))
                else mod_diff+=" $(basename "$m")"; fi
            done
            debian_line+="; sample modules built with orctool: ORC identical to Debian's shipped .ko for $mod_same of $mod_n${mod_diff:+ (different:$mod_diff)}"
        fi
        # The final images as whole files: only the build-id note (a hash over the whole file, symbol table
        # order included) may differ.
        python3 "$here/lib/elf-compare.py" "$objtool_run/image/vmlinux" "$orc_run/image/vmlinux" > "$out/vmlinux.elf-compare" 2>&1 < /dev/null || true
        if grep -qx equal "$out/vmlinux.elf-compare"; then vmlinux_whole=identical
        elif ! grep -vE '^(section \.notes: |differ: 1 aspects)' "$out/vmlinux.elf-compare" | grep -q .; then
            vmlinux_whole="identical but for .notes (the build-id: a hash of the whole file, symbol order included)"
        else vmlinux_whole="DIFFERENT: $(grep -v '^differ: ' "$out/vmlinux.elf-compare" | head -n 3 | tr '\n' ';')"; fi
        {
            printf 'compare: %d objects objtool processed; inputs identical %d/%d; outputs identical as whole objects %d/%d; only objtool %d, only orctool %d\n' \
                "$n" "$in_same" $((n - only_a)) "$out_same" $((n - only_a)) "$only_a" "$only_b"
            printf 'compare: method: %s; elf-compare.py agrees on %d of %d\n' "$method" "$agree" $((n - only_a))
            printf 'compare: orctool dump of the two vmlinux: %s\n' "$vml"
            printf 'compare: the two vmlinux as whole objects (sections, symbols, relocations): %s\n' "$vmlinux_whole"
            [[ -z $debian_line ]] || printf "compare: orctool dump against Debian's shipped vmlinux (%s): %s\n" "$shipped" "$debian_line"
            [[ ! -s $out/differences ]] || { echo "compare: what differs (objects):"; sed 's/^/  /' "$out/differences" | head -n 20; }
            if [[ $n -gt 0 && $only_a -eq 0 && $only_b -eq 0 && $in_same -eq $n && $out_same -eq $n && $vml == identical* && $vmlinux_whole == identical* ]]
            then echo "compare: result PASS"; else echo "compare: result FAIL"; fi
        } > "$out/summary"
        cat "$out/summary" >&2
        stage_end compare "$cmp_key"
    fi
    grep -qx 'compare: result PASS' "$out/summary" || failed=1
fi

# ================================================================== stage 7: partial
# vmlinux_o_flags: what kbuild passes objtool for vmlinux.o under $obj/.config (scripts/Makefile.lib's
# objtool-args and scripts/Makefile.vmlinux_o), for an object linked before kbuild got there.
vmlinux_o_flags() {
    local c=$obj/.config f=()
    on() { grep -qx "CONFIG_$1=y" "$c"; }
    if on X86_KERNEL_IBT || on LTO_CLANG; then
        on HAVE_JUMP_LABEL_HACK && f+=(--hacks=jump_label)
        on HAVE_NOINSTR_HACK && f+=(--hacks=noinstr)
        on MITIGATION_CALL_DEPTH_TRACKING && f+=(--hacks=skylake)
        on X86_KERNEL_IBT && f+=(--ibt)
        on FINEIBT && f+=(--cfi)
        if on FTRACE_MCOUNT_USE_OBJTOOL; then f+=(--mcount); on HAVE_OBJTOOL_NOP_MCOUNT && f+=(--mnop); fi
        on UNWINDER_ORC && f+=(--orc)
        on MITIGATION_RETPOLINE && f+=(--retpoline)
        on MITIGATION_RETHUNK && f+=(--rethunk)
        on MITIGATION_SLS && f+=(--sls)
        on STACK_VALIDATION && f+=(--stackval)
        on HAVE_STATIC_CALL_INLINE && f+=(--static-call)
        on HAVE_UACCESS_VALIDATION && f+=(--uaccess)
        { on GCOV_KERNEL || on KCOV; } && f+=(--no-unreachable)
        on PREFIX_SYMBOLS && f+=("--prefix=$(sed -n 's/^CONFIG_FUNCTION_PADDING_BYTES=//p' "$c")")
    fi
    on GCOV_KERNEL && f+=(--no-unreachable)
    if on NOINSTR_VALIDATION; then
        f+=(--noinstr); { on MITIGATION_UNRET_ENTRY || on MITIGATION_SRSO; } && f+=(--unret)
    fi
    printf '%s\n' "${f[@]}" --link
}

if [[ $list_only -eq 0 ]] && wanted partial; then
    resolve_orctool
    tree_objtool=$obj/tools/objtool/objtool
    [[ -x $tree_objtool ]] || die "partial: no $tree_objtool yet (the objtool build has not built it)"
    pd=$bdir/partial
    stage_begin partial
    rm -rf "$pd"; mkdir -p "$pd"
    # The members of every finished directory's built-in.a (thin archives of object paths), once each, in
    # the order of the archives' paths; objects the tool already rewrote (a finished build) are not taken.
    (cd "$obj" && find . -path ./tools -prune -o -name built-in.a -print | sed 's|^\./||' | sort \
        | while IFS= read -r a; do ar t "$a"; done | awk '!seen[$0]++' \
        | while IFS= read -r o; do [[ -f $o ]] && ! readelf -SW "$o" 2> /dev/null | grep -q ' \.orc_unwind ' && echo "$o"; done) > "$pd/objects"
    [[ -s $pd/objects ]] || die "partial: no finished directory yet (no built-in.a in $obj)"
    mapfile -t partial_flags < <(vmlinux_o_flags)
    printf '%s\n' "${partial_flags[*]}" > "$pd/flags"
    (cd "$obj" && ld -m elf_x86_64 -z noexecstack --no-warn-rwx-segments -r -o "$pd/in.o" @"$pd/objects") \
        || die "partial: ld -r of $(wc -l < "$pd/objects") objects failed"
    cp "$pd/in.o" "$pd/objtool.o"; cp "$pd/in.o" "$pd/orctool.o"
    /usr/bin/time -f '%e %U %S %M' -o "$pd/objtool.time" "$tree_objtool" "${partial_flags[@]}" "$pd/objtool.o" 2> "$pd/objtool.err" || true
    /usr/bin/time -f '%e %U %S %M' -o "$pd/orctool.time" "$orc" check "${partial_flags[@]}" "$pd/orctool.o" 2> "$pd/orctool.err" || true
    # Warnings: the file name is each tool's own temporary name, the rest must agree.
    for t in objtool orctool; do grep -i 'warning' "$pd/$t.err" | sed 's|^[^:]*/[a-z]*tool\.o: ||' | sort > "$pd/$t.warnings" || true; done
    if cmp -s "$pd/objtool.warnings" "$pd/orctool.warnings"; then warn_line="identical ($(wc -l < "$pd/objtool.warnings") warnings)"
    else warn_line="DIFFERENT ($(diff "$pd/objtool.warnings" "$pd/orctool.warnings" | grep -c '^[<>]') lines; $pd/*.warnings)"; fi
    if "$orc" compare-objects "$pd/objtool.o" "$pd/orctool.o" > "$pd/compare" 2>&1; then obj_line=$(tail -n 1 "$pd/compare")
    else obj_line="DIFFERENT: $(head -n 3 "$pd/compare" | tr '\n' ';')"; fi
    fn_line="no shipped image to compare with (--config debian and scripts/fetch-images.sh 6.12)"
    if [[ $CONFIG_NAME == debian && -f $cache/images/6.12/vmlinux ]]; then
        "$orc" dump "$cache/images/6.12/vmlinux" > "$pd/debian.dump"
        for t in objtool orctool; do
            "$orc" dump "$pd/$t.o" > "$pd/$t.dump"
            python3 "$here/lib/orc-by-function.py" "$pd/$t.o" "$pd/$t.dump" "$cache/images/6.12/vmlinux" "$pd/debian.dump" > "$pd/$t.by-function" || true
        done
        fn_line="objtool's: $(tail -n 1 "$pd/objtool.by-function"); orctool's: $(tail -n 1 "$pd/orctool.by-function")"
    fi
    {
        printf 'partial: %d objects of finished directories (%s MB linked), flags %s\n' "$(wc -l < "$pd/objects")" \
            "$(( $(stat -c %s "$pd/in.o") / 1048576 ))" "${partial_flags[*]}"
        read -r e u sy m < "$pd/objtool.time"; printf 'partial: objtool %s s wall, %s s user, %s s sys, %d MB\n' "$e" "$u" "$sy" $((m / 1024))
        read -r e u sy m < "$pd/orctool.time"; printf 'partial: orctool %s s wall, %s s user, %s s sys, %d MB\n' "$e" "$u" "$sy" $((m / 1024))
        printf 'partial: whole objects: %s\npartial: warnings: %s\n' "$obj_line" "$warn_line"
        printf "partial: ORC by function against Debian's shipped vmlinux: %s\n" "$fn_line"
    } > "$pd/summary"
    cat "$pd/summary" >&2
    grep -q 'DIFFERENT' "$pd/summary" && failed=1
    grep -q ' [1-9][0-9]* different;' "$pd/summary" && failed=1
    stage_end partial "$(date +%s)"
fi

# ================================================================== stage 6: boot
GUEST_MODULES="null_blk tun veth"       # loaded by /init before the checks (their dependencies first)
QEMU_APPEND="console=ttyS0 panic=-1 unwind_debug loglevel=7"
qemu_args() { printf '%s\n' -nographic -no-reboot -m 512 -smp 1 -cpu max -kernel "$1" -initrd "$2" -append "$QEMU_APPEND"; }

# make_initramfs IMAGE_DIR OUT: busybox-static, /init, the guest modules (in load order) and livepatch-sample.
make_initramfs() {
    local img=$1 out=$2 root m ko
    root=$(mktemp -d "$bdir/.initramfs.XXXXXX")
    initramfs_root "$root" "$here/lib/kernel-guest-init.sh"
    declare -A path_of=() loaded=()
    while IFS= read -r m; do ko=${m%.o}.ko; path_of[$(basename "${ko%.ko}" | tr - _)]=$ko; done < "$img/modules.order"
    add_module() {
        local name=${1//-/_} dep
        [[ -z ${loaded[$name]-} ]] || return 0
        [[ -n ${path_of[$name]-} ]] || die "module $1 is not in $img/modules.order"
        for dep in $(initramfs_module_deps "$img/modules/${path_of[$name]}"); do add_module "$dep"; done
        loaded[$name]=1
        initramfs_add_module "$root" "$img/modules/${path_of[$name]}"
    }
    for m in $GUEST_MODULES; do add_module "$m"; done
    cp "$img/modules/${path_of[livepatch_sample]}" "$root/lib/modules/livepatch-sample.ko"
    initramfs_pack "$root" "$out"
    rm -rf "$root"
}

# boot_kernel NAME RUN: boot RUN/image under QEMU, check its console; the summary is RUN/boot/summary.
boot_kernel() {
    local name=$1 run=$2 key t0 rc
    local bd=$run/boot
    key=$( (sha256sum < "$run/image/bzImage"; sha256sum < "$here/lib/kernel-guest-init.sh"; sha256sum < "$here/lib/guest-setup.sh"; sha256sum < "$here/lib/kernel-console.py"
            echo "$GUEST_MODULES $QEMU_APPEND") | sha256sum | cut -c1-16)
    if stage_done "boot-$name" "$key" && [[ -f $bd/summary ]]; then
        stage_skip "boot-$name" "$bd"; cat "$bd/summary" >&2
    else
        stage_begin "boot-$name"
        rm -rf "$bd"; mkdir -p "$bd"
        make_initramfs "$run/image" "$bd/initramfs.cpio.gz"
        mapfile -t qa < <(qemu_args "$run/image/bzImage" "$bd/initramfs.cpio.gz")
        printf '%q ' qemu-system-x86_64 "${qa[@]}" > "$bd/qemu.cmd"; echo >> "$bd/qemu.cmd"
        note "boot $name: qemu (TCG), timeout $timeout s, console: $bd/console.log"
        t0=$(date +%s)
        rc=0
        timeout "$timeout" qemu-system-x86_64 "${qa[@]}" < /dev/null > "$bd/console.log" 2>&1 || rc=$?
        local secs=$(( $(date +%s) - t0 ))
        rc=0
        python3 "$here/lib/kernel-console.py" check "$name" "$bd/console.log" "$bd/functions.json" > "$bd/summary.tmp" || rc=$?
        [[ $rc -le 1 ]] || die "kernel-console.py failed on $bd/console.log"
        sed -i "1s/\$/, qemu $secs s/" "$bd/summary.tmp"
        mv "$bd/summary.tmp" "$bd/summary"
        cat "$bd/summary" >&2
        stage_end "boot-$name" "$key"
    fi
    head -n 1 "$bd/summary" | grep -q ': PASS:' || return 1
}

if [[ $list_only -eq 0 ]] && wanted boot; then
    command -v qemu-system-x86_64 > /dev/null || die "qemu-system-x86_64 is missing (apt-get install qemu-system-x86)"
    [[ -x /bin/busybox ]] && file_is_static=$(ldd /bin/busybox 2>&1 | grep -c 'not a dynamic' || true)
    [[ ${file_is_static:-0} -ge 1 ]] || die "/bin/busybox is missing or not static (apt-get install busybox-static)"
    [[ -f $objtool_run/image/bzImage ]] || die "no objtool-built kernel: run the objtool stage first"
    boot_kernel objtool "$objtool_run" || failed=1
    resolve_orctool
    if [[ -f $orc_run/image/bzImage ]]; then
        boot_kernel orctool "$orc_run" || failed=1
        if [[ -f $objtool_run/boot/functions.json && -f $orc_run/boot/functions.json ]]; then
            python3 "$here/lib/kernel-console.py" compare objtool "$objtool_run/boot/functions.json" \
                orctool "$orc_run/boot/functions.json" > "$orc_run/boot/compare" || failed=1
            cat "$orc_run/boot/compare" >&2
        fi
    else
        note "boot: no orctool-built kernel for orctool $orc_sha (its build failed or was not run)"; failed=1
    fi
fi

# ================================================================== --list and the end
if [[ $list_only -eq 1 ]]; then
    for s in source config objtool; do
        printf '%-10s %s\n' "$s" "$([[ -f $(marker "$s") ]] && echo done || echo -)"
    done
    for d in "$bdir"/orctool-*/; do
        [[ -d $d ]] || continue
        printf '%-10s %s: %s\n' orctool "$(basename "$d")" "$(head -n 1 "$d/summary" 2> /dev/null || echo not built)"
        [[ ! -f $d/compare/summary ]] || sed 's/^/           /' "$d/compare/summary" | head -n 3
        [[ ! -f $d/boot/summary ]] || sed 's/^/           /' "$d/boot/summary" | head -n 1
    done
    [[ ! -f $objtool_run/boot/summary ]] || { printf '%-10s ' boot; head -n 1 "$objtool_run/boot/summary"; }
    exit 0
fi
note "total $(( $(date +%s) - t_start )) s, $([[ $failed -eq 0 ]] && echo 'all checks passed' || echo 'FAILED')"
exit "$failed"
