#!/usr/bin/env bash
# Build the gold set (oracle 2 of docs/corpus.md): objtool's real inputs, rebuilt from Debian's source.
#
# usage: scripts/build-gold.sh [--list] [-j N] [--only REGEX]
#   --list       print the gold modules (module, folder, shipped .ko, built or not) and stop
#   -j N         make jobs (default: number of CPUs)
#   --only REGEX build only the modules whose name matches (the others stay as they are)
#
# For the 6.12 corpus version (scripts/fetch-corpus.sh 6.12 is run first if needed) it downloads
# linux-source-6.12, linux-headers-<kver>, linux-headers-<abi>-common and linux-kbuild-<abi> with
# apt-get, extracts the headers and only the source folders it builds, and builds those folders as
# external modules with gcc-12 (`make -C <headers> M=<folder> objtool=<wrapper> modules`). A
# generated Kbuild in each folder keeps only the wanted modules (Debian's config would also compile
# the folder's built-in objects). The objtool wrapper saves each module object just before the real
# objtool runs on it (the linked <module>.o, which still carries the .discard.* annotations), with
# debug info and any objtool output sections removed, and records the exact objtool flags.
#
# Results, in $ORCTOOL_CACHE/gold (default ~/.cache/orctool/gold):
#   <module>.o           the pre-objtool input (objcopy --strip-debug, objtool's sections removed)
#   <module>.flags       objtool's arguments for it, one line (without the file name)
#   <module>.objtool.err what the real objtool printed on stderr during the build
#   gold.tsv             written last: module, folder, shipped .ko path (relative to the corpus
#                        modules/ tree), flags; one line per gold module
# Build trees: $ORCTOOL_CACHE/gold-build/<version>/ (headers, kbuild, extracted source folders).
# Idempotent: modules whose <module>.o and .flags exist are not built again; when all exist the
# script only prints its summary line. Delete gold/<module>.o (or all of gold/) to rebuild.
#
# Prints one summary line on stdout:
#   gold 6.12.117-1~deb12u1: 48 modules in ~/.cache/orctool/gold (48 built now, 0 reused), 600 s, objtool warnings: 0
set -euo pipefail
export LC_ALL=C

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scripts/lib/corpus.sh
. "$here/lib/corpus.sh"

die()  { echo "build-gold: error: $*" >&2; exit 1; }
note() { echo "build-gold: $*" >&2; }

# The gold modules, one folder per line: FOLDER MODULE...
# Extra source folders a folder's build needs are in EXTRA_SRC.
TARGETS=(
    "arch/x86/kvm kvm kvm-intel kvm-amd"
    "drivers/block/null_blk null_blk"
    "drivers/block loop"
    "fs/ext4 ext4"
    "fs/xfs xfs"
    "fs/fat fat vfat msdos"
    "drivers/xen xen-privcmd xen-evtchn xen-gntdev xen-gntalloc"
    "drivers/vhost vhost vhost_net vhost_iotlb"
    "drivers/net/wireguard wireguard"
    "arch/x86/kernel msr cpuid"
    "lib/raid6 raid6_pq"
    "arch/x86/crypto crc32c-intel crc32-pclmul crct10dif-pclmul aesni-intel chacha-x86_64 poly1305-x86_64 sha1-ssse3 sha256-ssse3 sha512-ssse3 ghash-clmulni-intel curve25519-x86_64 blowfish-x86_64 twofish-x86_64 twofish-x86_64-3way twofish-avx-x86_64 des3_ede-x86_64 camellia-x86_64 camellia-aesni-avx-x86_64 camellia-aesni-avx2 cast5-avx-x86_64 cast6-avx-x86_64 serpent-sse2-x86_64 serpent-avx-x86_64 serpent-avx2 nhpoly1305-sse2 nhpoly1305-avx2 aegis128-aesni"
)
declare -A EXTRA_SRC=(
    [arch/x86/kvm]="virt/kvm"
)
OBJTOOL_SECTIONS=".orc_unwind .orc_unwind_ip .return_sites .call_sites .retpoline_sites .static_call_sites .ibt_endbr_seal"

list_only=0 jobs=$(nproc 2>/dev/null || echo 2) only=
while [[ $# -gt 0 ]]; do
    case $1 in
        --list) list_only=1 ;;
        -j|--jobs) [[ $# -ge 2 ]] || die "$1 needs a number"; jobs=$2; shift ;;
        -j*) jobs=${1#-j} ;;
        --only) [[ $# -ge 2 ]] || die "--only needs a regular expression"; only=$2; shift ;;
        -h|--help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
        *) echo "usage: $0 [--list] [-j N] [--only REGEX]" >&2; exit 2 ;;
    esac
    shift
done
[[ $jobs =~ ^[1-9][0-9]*$ ]] || die "-j wants a positive number, got '$jobs'"

cache=$(corpus_cache)
gold=$cache/gold

# ------------------------------------------------------------------ the module list
# wanted: "MODULE FOLDER" lines, in TARGETS order.
wanted=()
for line in "${TARGETS[@]}"; do
    read -r folder mods <<< "$line"
    for m in $mods; do
        if [[ -z $only || $m =~ $only ]]; then wanted+=("$m $folder"); fi
    done
done
[[ ${#wanted[@]} -gt 0 ]] || die "--only '$only' matches no gold module"

have() { [[ -s $gold/$1.o && -s $gold/$1.flags ]]; }

if [[ $list_only -eq 1 ]]; then
    printf '%-22s %-24s %-40s %s\n' MODULE FOLDER SHIPPED STATE
    for w in "${wanted[@]}"; do
        read -r m folder <<< "$w"
        state=missing; have "$m" && state="built ($(du -h "$gold/$m.o" | cut -f1))"
        printf '%-22s %-24s %-40s %s\n' "$m" "$folder" "$folder/$m.ko" "$state"
    done
    exit 0
fi

t0=$(date +%s)

# ------------------------------------------------------------------ packages
corpus_ready 6.12 || { note "the 6.12 corpus is missing: running scripts/fetch-corpus.sh 6.12"; "$here/fetch-corpus.sh" 6.12 >&2; }
version=$(corpus_get 6.12 CORPUS_VERSION)
kver=$(corpus_get 6.12 CORPUS_KVER)            # 6.12.117+deb12-amd64
kbuild_pkg=$(corpus_get 6.12 CORPUS_KBUILD_PKG) # linux-kbuild-6.12.117+deb12
abi=${kver%-amd64}
objtool_real=$(readlink -f "$(corpus_objtool 6.12)")
[[ -x $objtool_real ]] || die "no objtool at $objtool_real"

build=$cache/gold-build/$version
root=$build/root
headers=$root/usr/src/linux-headers-$kver
common=$root/usr/src/linux-headers-$abi-common
wrapper=$build/objtool-wrapper

missing=()
for w in "${wanted[@]}"; do read -r m _ <<< "$w"; have "$m" || missing+=("$w"); done

as_root() {
    if [[ $(id -u) -eq 0 ]]; then "$@"
    elif command -v sudo >/dev/null; then sudo "$@"
    else die "need root for: $* (no sudo)"; fi
}
apt_updated=0
dl_tmp=
trap '[[ -z $dl_tmp ]] || rm -rf "$dl_tmp"' EXIT

# download PKG VERSION: prints the path of the .deb in $cache/debs, downloading it if needed.
download() {
    local pkg=$1 ver=$2 debs=$cache/debs f tmp
    mkdir -p "$debs"
    f=$(compgen -G "$debs/${pkg}_${ver//:/%3a}_*.deb" | head -n 1 || true)
    if [[ -n $f ]] && dpkg-deb --info "$f" >/dev/null 2>&1; then printf '%s\n' "$f"; return 0; fi
    [[ -z $f ]] || { note "removing unreadable $f"; rm -f "$f"; }
    if ! apt-cache madison "$pkg" 2>/dev/null | awk -F'|' '{gsub(/ /,"",$2); print $2}' | grep -qxF -- "$ver"; then
        if [[ $apt_updated -eq 0 ]]; then
            apt_updated=1
            note "apt does not know $pkg=$ver; running apt-get update"
            as_root apt-get update -qq >&2 || die "apt-get update failed"
        fi
    fi
    tmp=$(mktemp -d "$debs/.download.XXXXXX")
    dl_tmp=$tmp
    chmod 0777 "$tmp"   # apt's _apt sandbox user writes there
    note "downloading $pkg=$ver"
    if ! (cd "$tmp" && apt-get download -q "$pkg=$ver" >&2); then rm -rf "$tmp"; die "apt-get download $pkg=$ver failed"; fi
    f=$(compgen -G "$tmp/${pkg}_*.deb" | head -n 1 || true)
    [[ -n $f ]] || { rm -rf "$tmp"; die "apt-get download $pkg=$ver produced no .deb"; }
    mv "$f" "$debs/"
    rm -rf "$tmp"; dl_tmp=
    printf '%s\n' "$debs/$(basename "$f")"
}

if [[ ${#missing[@]} -gt 0 ]]; then
    command -v x86_64-linux-gnu-gcc-12 >/dev/null || {
        note "installing gcc-12 (the compiler Debian built this kernel with)"
        as_root apt-get install -y -q gcc-12 >&2 || die "apt-get install gcc-12 failed"
    }
    for tool in make perl bc objcopy; do command -v "$tool" >/dev/null || die "$tool is needed (apt-get install make perl bc binutils)"; done

    # Headers + kbuild, extracted once into one root (the headers' symlinks point into the kbuild tree).
    if [[ ! -f $root/.done ]]; then
        rm -rf "$root"; mkdir -p "$root"
        for pkg in "linux-headers-$kver" "linux-headers-$abi-common" "$kbuild_pkg"; do
            deb=$(download "$pkg" "$version")
            note "extracting $(basename "$deb")"
            dpkg-deb -x "$deb" "$root"
        done
        [[ -f $headers/Makefile && -f $common/Makefile ]] || die "unexpected headers layout under $root/usr/src"
        # The arch headers' Makefile includes the common one by its absolute /usr/src path: use ours.
        sed -i "s|^include /usr/src/|include $root/usr/src/|" "$headers/Makefile"
        grep -qxF "include $common/Makefile" "$headers/Makefile" || die "cannot point $headers/Makefile at $common/Makefile"
        touch "$root/.done"
    fi

    # The source tarball, taken out of linux-source-6.12 once.
    tarball=$build/linux-source-6.12.tar.xz
    if [[ ! -s $tarball ]]; then
        deb=$(download linux-source-6.12 "$version")
        note "taking linux-source-6.12.tar.xz out of $(basename "$deb")"
        dpkg-deb --fsys-tarfile "$deb" | tar -xO ./usr/src/linux-source-6.12.tar.xz > "$tarball.tmp"
        mv "$tarball.tmp" "$tarball"
    fi

    # Source folders into the headers' source tree (srctree), so that $(srctree)/<folder> paths in
    # the folders' Makefiles and the trace headers' relative includes resolve as in a kernel build.
    need=()
    declare -A seen=()
    for w in "${missing[@]}"; do
        read -r _ folder <<< "$w"
        for d in "$folder" ${EXTRA_SRC[$folder]-}; do
            [[ -n ${seen[$d]-} ]] && continue
            seen[$d]=1
            grep -qxF -- "$d" "$root/.extracted.list" 2>/dev/null || need+=("$d")
        done
    done
    if [[ ${#need[@]} -gt 0 ]]; then
        note "extracting ${need[*]} from linux-source-6.12.tar.xz"
        members=()
        for d in "${need[@]}"; do members+=("linux-source-6.12/$d"); done
        tar -xJf "$tarball" -C "$common" --strip-components=1 "${members[@]}"
        for d in "${need[@]}"; do
            # A folder's own Kbuild file would hide the generated one: keep it as Kbuild.orig.
            if [[ -f $common/$d/Kbuild ]] && ! grep -q 'orctool build-gold' "$common/$d/Kbuild"; then
                mv "$common/$d/Kbuild" "$common/$d/Kbuild.orig"
            fi
            echo "$d" >> "$root/.extracted.list"
        done
    fi

    # The objtool wrapper: save the input, record the flags, run the real objtool.
    mkdir -p "$gold" "$build/logs"
    remove=""
    for s in $OBJTOOL_SECTIONS; do remove+=" --remove-section=$s --remove-section=.rela$s"; done
    cat > "$wrapper.tmp" <<EOF
#!/bin/sh
# Generated by orctool scripts/build-gold.sh: make's objtool=. Saves objtool's input object (debug
# info and objtool's own sections removed) and its flags into the gold directory, then runs objtool.
gold='$gold'
real='$objtool_real'
for f; do :; done
m=\$(basename "\$f" .o)
n=\$((\$# - 1))
flags=\$(for a; do [ \$n -gt 0 ] && printf '%s ' "\$a"; n=\$((n - 1)); done)
objcopy --strip-debug$remove "\$f" "\$gold/.\$m.o.tmp" || exit 1
printf '%s\n' "\${flags% }" > "\$gold/.\$m.flags.tmp"
"\$real" "\$@" 2> "\$gold/\$m.objtool.err"
rc=\$?
cat "\$gold/\$m.objtool.err" >&2
mv "\$gold/.\$m.o.tmp" "\$gold/\$m.o"
mv "\$gold/.\$m.flags.tmp" "\$gold/\$m.flags"
exit \$rc
EOF
    chmod +x "$wrapper.tmp"
    if ! cmp -s "$wrapper.tmp" "$wrapper"; then mv "$wrapper.tmp" "$wrapper"; else rm -f "$wrapper.tmp"; fi

    # Build folder by folder.
    for line in "${TARGETS[@]}"; do
        read -r folder mods <<< "$line"
        todo=()
        for m in $mods; do
            for w in "${missing[@]}"; do [[ $w == "$m $folder" ]] && todo+=("$m"); done
        done
        [[ ${#todo[@]} -gt 0 ]] || continue
        dir=$common/$folder
        kfile=$dir/Makefile; [[ -f $dir/Kbuild.orig ]] && kfile=$dir/Kbuild.orig
        objs=$(for m in $mods; do printf '%s.o ' "$m"; done)
        cat > "$dir/Kbuild.tmp" <<EOF
# Generated by orctool build-gold.sh: the folder's own rules, but only the gold modules.
include $kfile
obj-y :=
lib-y :=
extra-y :=
always-y :=
obj-m := \$(filter ${objs% },\$(obj-m))
EOF
        mv "$dir/Kbuild.tmp" "$dir/Kbuild"
        # A module object built before (its gold copy since deleted) must be linked again so
        # that objtool runs on it again.
        for m in "${todo[@]}"; do rm -f "$dir/$m.o" "$dir/$m.ko" "$dir/$m.mod.o"; done
        log=$build/logs/${folder//\//_}.log
        note "building ${todo[*]} in $folder (log: $log)"
        ts=$(date +%s)
        if ! make -C "$headers" M="$dir" objtool="$wrapper" CONFIG_DEBUG_INFO_BTF_MODULES= \
                -j "$jobs" modules > "$log" 2>&1; then
            tail -n 20 "$log" >&2
            die "make failed in $folder (full log: $log)"
        fi
        note "$folder: $(( $(date +%s) - ts )) s"
        for m in "${todo[@]}"; do
            have "$m" || die "$folder: make succeeded but objtool never ran on $m.o (is $m.ko built by $kfile?)"
        done
    done
fi

# ------------------------------------------------------------------ manifest and summary
warn=0
{
    for line in "${TARGETS[@]}"; do
        read -r folder mods <<< "$line"
        for m in $mods; do
            have "$m" || continue
            printf '%s\t%s\t%s\t%s\n' "$m" "$folder" "$folder/$m.ko" "$(cat "$gold/$m.flags")"
        done
    done
} > "$gold/gold.tsv.tmp"
mv "$gold/gold.tsv.tmp" "$gold/gold.tsv"
for w in "${wanted[@]}"; do
    read -r m _ <<< "$w"
    [[ -f $gold/$m.objtool.err ]] || continue
    n=$(grep -c 'warning: objtool:' "$gold/$m.objtool.err" || true)
    warn=$((warn + n))
done
n_all=${#wanted[@]} n_new=${#missing[@]}
printf 'gold %s: %d modules in %s (%d built now, %d reused), %d s, objtool warnings: %d\n' \
    "$version" "$n_all" "$gold" "$n_new" $((n_all - n_new)) $(( $(date +%s) - t0 )) "$warn"
