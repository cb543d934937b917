#!/usr/bin/env bash
# Fetch the kernel-module corpora (Debian 12's 6.12 and 6.1 kernels, Debian unstable's 7.2) and
# their real objtool.
#
# usage: scripts/fetch-corpus.sh [--refresh] [--resolve] [-j N] [6.12|6.1|7.2|all]
#   (default: all)
#   --refresh   throw away an existing corpus and fetch it again (version resolved again)
#   --resolve   only print which packages/version would be fetched, then stop
#   -j N        parallel decompression jobs (default: number of CPUs)
#
# Idempotent: a corpus that is complete (corpus/<K>/corpus.env exists) is left as it is, and the
# script only prints its summary line. Cache: $ORCTOOL_CACHE (default $HOME/.cache/orctool); the
# layout is described in scripts/lib/corpus.sh. Environment: ORCTOOL_NO_PIN=1 ignores the pinned
# versions and takes the newest available pair (used to test the fallback).
#
# 7.2 comes from Debian unstable (sid), which this Debian 12 machine does not list: the script keeps
# a private apt configuration under $ORCTOOL_CACHE/apt-sid (its own sources.list, package lists and
# cache; the system's sources and dpkg status are never read or written). sid's objtool needs sid's
# libc and libelf: they are extracted beside it and corpus/7.2/objtool is a wrapper that starts it
# through sid's own ld.so with --library-path.
set -euo pipefail
export LC_ALL=C

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scripts/lib/corpus.sh
. "$here/lib/corpus.sh"

# Pinned versions: the ones the project's numbers were measured on.
PIN_612_IMAGE=linux-image-6.12.117+deb12-amd64-unsigned
PIN_612_KBUILD=linux-kbuild-6.12.117+deb12
PIN_612_VERSION=6.12.117-1~deb12u1
PIN_61_IMAGE=linux-image-6.1.0-57-amd64-unsigned
PIN_61_KBUILD=linux-kbuild-6.1
PIN_61_VERSION=6.1.192-3
PIN_72_IMAGE=linux-modules-7.2.13+deb14-amd64
PIN_72_KBUILD=linux-kbuild-7.2.13+deb14
PIN_72_VERSION=7.2.13-1
# sid's libraries objtool 7.2 runs with (each falls back to sid's newest version).
PIN_72_LIBS="libc6=2.43-7 libelf1t64=0.196-1 zlib1g=1:1.3.dfsg+really1.3.2-4 libzstd1=1.5.7+dfsg-4 liblzma5=5.8.4-1 libbz2-1.0=1.0.8-6+b2"
SID_MIRROR=http://deb.debian.org/debian

die()  { echo "fetch-corpus: error: $*" >&2; exit 1; }
note() { echo "fetch-corpus: $*" >&2; }

refresh=0 resolve_only=0 jobs=$(nproc 2>/dev/null || echo 2) what=all
while [[ $# -gt 0 ]]; do
    case $1 in
        --refresh) refresh=1 ;;
        --resolve) resolve_only=1 ;;
        -j|--jobs) [[ $# -ge 2 ]] || die "$1 needs a number"; jobs=$2; shift ;;
        -j*) jobs=${1#-j} ;;
        -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
        6.12|6.1|7.2|all) what=$1 ;;
        *) echo "usage: $0 [--refresh] [--resolve] [-j N] [6.12|6.1|7.2|all]" >&2; exit 2 ;;
    esac
    shift
done
[[ $jobs =~ ^[1-9][0-9]*$ ]] || die "-j wants a positive number, got '$jobs'"
kernels=$CORPUS_KERNELS
[[ $what == all ]] || kernels=$what

cache=$(corpus_cache)

# ---------------------------------------------------------------- apt helpers
as_root() {
    if [[ $(id -u) -eq 0 ]]; then "$@"
    elif command -v sudo >/dev/null; then sudo "$@"
    else die "need root for: $* (no sudo)"; fi
}

# Extra options for apt-get/apt-cache: empty for the system's sources (6.12, 6.1), the private sid
# configuration for 7.2 (set by use_apt_for).
apt_opts=()
sid_dir=$cache/apt-sid
use_apt_for() {
    apt_opts=()
    [[ $1 == 7.2 ]] || return 0
    apt_opts=(-o "Dir::Etc::SourceList=$sid_dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
              -o "Dir::State::Lists=$sid_dir/lists" -o "Dir::Cache=$sid_dir/cache" -o Dir::State::status=/dev/null)
    mkdir -p "$sid_dir/lists/partial" "$sid_dir/cache/archives/partial"
    local want="deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $SID_MIRROR sid main"
    if [[ ! -f $sid_dir/sources.list ]] || [[ $(cat "$sid_dir/sources.list") != "$want" ]]; then
        printf '%s\n' "$want" > "$sid_dir/sources.list"
    fi
    # apt's _apt sandbox user must be able to write the lists.
    chmod -R a+rwX "$sid_dir" 2>/dev/null || true
    if ! compgen -G "$sid_dir/lists/*_Packages*" >/dev/null; then sid_update; fi
}
sid_updated=0
sid_update() {
    [[ $sid_updated -eq 0 ]] || return 1
    sid_updated=1
    note "7.2: updating the private package lists of Debian unstable in $sid_dir"
    apt-get -qq "${apt_opts[@]}" update >&2 || die "apt-get update of the private sid configuration failed"
}

# versions PKG: every version apt knows for PKG, one per line (empty if none).
versions() { apt-cache "${apt_opts[@]}" madison "$1" 2>/dev/null | awk -F'|' -v p="$1" '{gsub(/ /,""); if ($1 == p) print $2}' | sort -u; }
has_version() { local v; v=$(versions "$1"); grep -qxF -- "$2" <<< "$v"; }

# newest: the newest of the "VERSION rest..." lines on stdin, by Debian version order.
newest() {
    local best="" line v
    while read -r line; do
        v=${line%% *}
        if [[ -z $best ]] || dpkg --compare-versions "$v" gt "${best%% *}"; then best=$line; fi
    done
    [[ -n $best ]] && printf '%s\n' "$best"
}

apt_updated=0
dl_tmp=
trap '[[ -z $dl_tmp ]] || rm -rf "$dl_tmp"' EXIT
apt_update_once() {
    [[ ${#apt_opts[@]} -eq 0 ]] || { sid_update; return; }
    [[ $apt_updated -eq 0 ]] || return 1
    apt_updated=1
    note "package lists do not know the kernel packages; running apt-get update"
    as_root apt-get update -qq >&2 || die "apt-get update failed"
}

# resolve K: prints "VERSION IMAGE_PKG KBUILD_PKG" for the pinned pair, else the newest available pair.
resolve_candidates() {
    local k=$1 img abi kb v
    case $k in
        6.12)
            apt-cache search --names-only '^linux-image-6\.12\.[0-9]+\+deb12-amd64-unsigned$' | awk '{print $1}' |
            while read -r img; do
                abi=${img#linux-image-}; abi=${abi%-amd64-unsigned}; kb=linux-kbuild-$abi
                comm -12 <(versions "$img") <(versions "$kb") | while read -r v; do echo "$v $img $kb"; done
            done ;;
        6.1)
            local kbv; kbv=$(versions linux-kbuild-6.1)
            apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-amd64-unsigned$' | awk '{print $1}' |
            while read -r img; do
                comm -12 <(versions "$img") <(printf '%s\n' "$kbv") | while read -r v; do [[ -n $v ]] && echo "$v $img linux-kbuild-6.1"; done
            done ;;
        7.2)
            apt-cache "${apt_opts[@]}" search --names-only '^linux-modules-7\.[0-9]+\.[0-9]+\+deb[0-9]+-amd64$' | awk '{print $1}' |
            while read -r img; do
                abi=${img#linux-modules-}; abi=${abi%-amd64}; kb=linux-kbuild-$abi
                comm -12 <(versions "$img") <(versions "$kb") | while read -r v; do echo "$v $img $kb"; done
            done ;;
    esac
}
resolve() {
    local k=$1 pimg pkb pver best
    case $k in
        6.12) pimg=$PIN_612_IMAGE pkb=$PIN_612_KBUILD pver=$PIN_612_VERSION ;;
        6.1)  pimg=$PIN_61_IMAGE  pkb=$PIN_61_KBUILD  pver=$PIN_61_VERSION ;;
        7.2)  pimg=$PIN_72_IMAGE  pkb=$PIN_72_KBUILD  pver=$PIN_72_VERSION ;;
    esac
    while :; do
        if [[ ${ORCTOOL_NO_PIN:-0} != 1 ]] && has_version "$pimg" "$pver" && has_version "$pkb" "$pver"; then
            echo "$pver $pimg $pkb"; return 0
        fi
        best=$(resolve_candidates "$k" | newest || true)
        if [[ -n $best ]]; then
            [[ ${ORCTOOL_NO_PIN:-0} == 1 ]] || note "$k: pinned $pimg=$pver is not available; falling back to the newest pair: $best"
            echo "$best"; return 0
        fi
        apt_update_once || die "$k: no linux-image (linux-modules for 7.2)/linux-kbuild pair with equal versions is available from apt (6.x: check /etc/apt/sources.list: bookworm and bookworm-security; 7.2: $sid_dir)"
    done
}

# download PKG VERSION: prints the path of the .deb in $cache/debs, downloading it if needed.
download() {
    local pkg=$1 ver=$2 debs=$cache/debs f tmp
    mkdir -p "$debs"
    # apt-get names files PKG_VERSION_ARCH.deb with ':' escaped as %3a.
    f=$(compgen -G "$debs/${pkg}_${ver//:/%3a}_*.deb" | head -n 1 || true)
    if [[ -n $f ]] && dpkg-deb --info "$f" >/dev/null 2>&1; then printf '%s\n' "$f"; return 0; fi
    [[ -z $f ]] || { note "removing unreadable $f"; rm -f "$f"; }
    tmp=$(mktemp -d "$debs/.download.XXXXXX")
    dl_tmp=$tmp   # removed by the EXIT trap if we are interrupted
    note "downloading $pkg=$ver"
    # apt's _apt sandbox user must be able to write into the directory.
    chmod 0777 "$tmp"
    if ! (cd "$tmp" && apt-get "${apt_opts[@]}" download -q "$pkg=$ver" >&2); then rm -rf "$tmp"; die "apt-get download $pkg=$ver failed"; fi
    f=$(compgen -G "$tmp/${pkg}_*.deb" | head -n 1 || true)
    [[ -n $f ]] || { rm -rf "$tmp"; die "apt-get download $pkg=$ver produced no .deb"; }
    mv "$f" "$debs/"
    rm -rf "$tmp"; dl_tmp=
    printf '%s\n' "$debs/$(basename "$f")"
}

# -------------------------------------------------------------- building a corpus
# Decompress/copy one module: args SRC_ROOT DST_ROOT REL...
# shellcheck disable=SC2016
unpack_worker='
src=$1 dst=$2; shift 2
for rel in "$@"; do
    case $rel in
        *.ko)     cp "$src/$rel" "$dst/$rel" ;;
        *.ko.xz)  xz -dc   "$src/$rel" > "$dst/${rel%.xz}" ;;
        *.ko.zst) zstd -qdc "$src/$rel" > "$dst/${rel%.zst}" ;;
        *.ko.gz)  gzip -dc "$src/$rel" > "$dst/${rel%.gz}" ;;
    esac || { echo "fetch-corpus: cannot unpack $src/$rel" >&2; exit 255; }
done'

build_corpus() {
    local k=$1 ver=$2 img=$3 kb=$4 dir stage img_deb kb_deb kroot kver n objtool_rel first
    dir=$(corpus_dir "$k")
    img_deb=$(download "$img" "$ver")
    kb_deb=$(download "$kb" "$ver")

    stage=$cache/corpus/.$k.staging
    rm -rf "$stage"               # left over from an interrupted run (we hold the lock)
    mkdir -p "$stage/img" "$stage/modules"
    note "$k: extracting $(basename "$img_deb")"
    dpkg-deb -x "$img_deb" "$stage/img"
    dpkg-deb -x "$kb_deb" "$stage/kbuild"

    kroot=$(compgen -G "$stage/img/lib/modules/*/kernel" || compgen -G "$stage/img/usr/lib/modules/*/kernel" || true)
    kroot=$(head -n 1 <<< "$kroot")
    [[ -n $kroot ]] || die "$k: no lib/modules/*/kernel in $img_deb"
    kver=$(basename "$(dirname "$kroot")")

    note "$k: unpacking modules ($jobs jobs)"
    (cd "$kroot" && find . -mindepth 1 -type d -printf '%P\0') | (cd "$stage/modules" && xargs -0 -r mkdir -p)
    (cd "$kroot" && find . -type f \( -name '*.ko' -o -name '*.ko.xz' -o -name '*.ko.zst' -o -name '*.ko.gz' \) -printf '%P\0') |
        xargs -0 -r -n 64 -P "$jobs" bash -c "$unpack_worker" unpack "$kroot" "$stage/modules" ||
        die "$k: unpacking the modules failed"
    find "$stage/modules" -type d -empty -delete
    [[ -d $stage/img/boot ]] && mv "$stage/img/boot" "$stage/boot"
    rm -rf "$stage/img"

    (cd "$stage/modules" && find . -type f -name '*.ko' -printf '%P\n' | LC_ALL=C sort) > "$stage/modules.list"
    n=$(wc -l < "$stage/modules.list")
    [[ $n -gt 0 ]] || die "$k: no modules found in $img_deb"

    # Modules without .orc_unwind: one readelf over many files ("File: X" headers separate them).
    # readelf prints those headers only when given more than one file: a batch of one (a
    # module count of 256k+1) names its file twice, and sort -u folds the repeat.
    # shellcheck disable=SC2016
    (cd "$stage/modules" && xargs -d '\n' -n 256 sh -c '[ $# -gt 1 ] || set -- "$1" "$1"; exec readelf -S -W "$@"' readelf < ../modules.list) 2>/dev/null |
        awk '/^File: /{ if (f != "" && !has) print f; f = substr($0, 7); has = 0; next }
             / \.orc_unwind /{ has = 1 }
             END { if (f != "" && !has) print f }' | LC_ALL=C sort -u > "$stage/no-orc.list"

    # The real objtool binary (6.12 ships a SRCARCH dispatcher called objtool beside objtool.real-x86).
    objtool_rel=$(cd "$stage" && { compgen -G 'kbuild/usr/lib/*/tools/objtool/objtool.real-x86' || compgen -G 'kbuild/usr/lib/*/tools/objtool/objtool'; } | head -n 1 || true)
    [[ -n $objtool_rel ]] || die "$k: no tools/objtool/objtool in $kb_deb"
    if [[ $k == 7.2 ]]; then
        sid_runtime "$stage" "$kver" "$ver" "$img"
        write_objtool_wrapper "$stage/objtool" "$objtool_rel"
    else
        ln -s "$objtool_rel" "$stage/objtool"
    fi
    first=$(grep -m 1 -vxF -f "$stage/no-orc.list" "$stage/modules.list")
    "$stage/objtool" --dump=orc "$stage/modules/$first" > "$stage/.probe" ||
        die "$k: $stage/objtool --dump=orc $first failed (missing libelf?)"
    grep -Eq '^\.text\+[0-9a-f]+:' "$stage/.probe" || die "$k: $stage/objtool --dump=orc $first printed no ORC table"
    rm -f "$stage/.probe"

    {
        printf '# written by scripts/fetch-corpus.sh on %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
        printf 'CORPUS_KERNEL=%q\n' "$k"
        printf 'CORPUS_VERSION=%q\n' "$ver"
        printf 'CORPUS_IMAGE_PKG=%q\n' "$img"
        printf 'CORPUS_KBUILD_PKG=%q\n' "$kb"
        printf 'CORPUS_KVER=%q\n' "$kver"
        printf 'CORPUS_MODULE_COUNT=%q\n' "$n"
        printf 'CORPUS_NO_ORC_COUNT=%q\n' "$(wc -l < "$stage/no-orc.list")"
        printf 'CORPUS_OBJTOOL_REL=%q\n' "$objtool_rel"
    } > "$stage/corpus.env.tmp"
    mv "$stage/corpus.env.tmp" "$stage/corpus.env"
    rm -rf "$dir"
    mv "$stage" "$dir"
}

# lib_version PKG PIN: PIN if sid has it, else sid's newest version of PKG.
lib_version() {
    local pkg=$1 pin=$2 v
    if [[ ${ORCTOOL_NO_PIN:-0} != 1 ]] && has_version "$pkg" "$pin"; then echo "$pin"; return 0; fi
    v=$(versions "$pkg" | while read -r v; do echo "$v"; done | newest || true)
    [[ -n $v ]] || die "7.2: sid has no $pkg"
    [[ ${ORCTOOL_NO_PIN:-0} == 1 ]] || note "7.2: pinned $pkg=$pin is not available; using $v"
    echo "$v"
}

# sid_runtime STAGE KVER VERSION MODULES_PKG: sid's libraries objtool needs (STAGE/sidlibs), the
# kernel's orc_types.h and .config (from the headers packages of the same version).
sid_runtime() {
    local stage=$1 kver=$2 ver=$3 img=$4 spec pkg pin v abi hdr
    mkdir -p "$stage/sidlibs" "$stage/boot"
    for spec in $PIN_72_LIBS; do
        pkg=${spec%%=*} pin=${spec#*=}
        v=$(lib_version "$pkg" "$pin")
        dpkg-deb -x "$(download "$pkg" "$v")" "$stage/sidlibs"
        printf '%s=%s\n' "$pkg" "$v" >> "$stage/sidlibs/VERSIONS"
    done
    abi=${img#linux-modules-}; abi=${abi%-amd64}
    hdr=$(mktemp -d "$stage/.headers.XXXXXX")
    dpkg-deb --fsys-tarfile "$(download "linux-headers-$abi-common" "$ver")" |
        tar -x -C "$hdr" --wildcards './usr/src/*/arch/x86/include/asm/orc_types.h' ||
        die "7.2: no orc_types.h in linux-headers-$abi-common"
    mv "$(compgen -G "$hdr/usr/src/*/arch/x86/include/asm/orc_types.h" | head -n 1)" "$stage/orc_types.h"
    dpkg-deb --fsys-tarfile "$(download "linux-headers-$abi-amd64" "$ver")" |
        tar -x -C "$hdr" --wildcards './usr/src/*/.config' || die "7.2: no .config in linux-headers-$abi-amd64"
    mv "$(compgen -G "$hdr/usr/src/*/.config" | head -n 1)" "$stage/boot/config-$kver"
    rm -rf "$hdr"
}

# write_objtool_wrapper FILE OBJTOOL_REL: a script that runs the corpus's objtool with sid's
# ld.so and libraries, found relative to the script itself (the corpus directory can move).
write_objtool_wrapper() {
    local f=$1 rel=$2
    cat > "$f" <<EOS
#!/bin/sh
# objtool of Debian unstable's kernel, run with the sid libraries beside it (written by fetch-corpus.sh).
d=\$(dirname "\$(readlink -f "\$0")")
lib=\$d/sidlibs/usr/lib/x86_64-linux-gnu
exec "\$lib/ld-linux-x86-64.so.2" --library-path "\$lib" "\$d/$rel" "\$@"
EOS
    chmod +x "$f"
}

fetch_one() {
    local k=$1 lock r ver img kb
    mkdir -p "$cache/corpus"
    lock=$cache/corpus/.$k.lock
    exec 9>"$lock"
    flock 9 || die "cannot lock $lock"
    if [[ $resolve_only -eq 1 ]] || ! corpus_ready "$k" || [[ $refresh -eq 1 ]]; then use_apt_for "$k"; fi
    if [[ $resolve_only -eq 1 ]]; then
        r=$(resolve "$k"); read -r ver img kb <<< "$r"
        echo "corpus $k: would fetch $img=$ver and $kb=$ver"
    else
        if [[ $refresh -eq 1 ]] && corpus_ready "$k"; then
            note "$k: --refresh: removing $(corpus_dir "$k")"
            rm -rf "$(corpus_dir "$k")"
        fi
        if ! corpus_ready "$k"; then
            r=$(resolve "$k"); read -r ver img kb <<< "$r"
            build_corpus "$k" "$ver" "$img" "$kb"
        fi
        corpus_summary "$k"
    fi
    exec 9>&-
}

start=$SECONDS
for k in $kernels; do fetch_one "$k"; done
note "done in $((SECONDS - start)) s"
