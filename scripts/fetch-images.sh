#!/usr/bin/env bash
# Fetch Debian's unstripped kernel images (vmlinux) of the corpus kernels, for the commands that
# read a linked kernel (verify-patching, annotate, dump, unwind --vmlinux).
#
# usage: scripts/fetch-images.sh [--resolve] [6.12|6.1|7.2|all]
#   (default: all)
#   --resolve   only print which package would be fetched, then stop
#
# Each image comes from the kernel's -dbg package (about 1 GB): 6.12 and 6.1 at the version of
# the module corpus of the same kernel (scripts/fetch-corpus.sh; its pinned version if that
# corpus is not fetched), 7.2 from Debian unstable through a private apt configuration under
# the cache (the system's apt sources are not touched). Only ./usr/lib/debug/boot/vmlinux-* is
# extracted; the .deb is deleted afterwards.
#
# Cache: $ORCTOOL_CACHE (default $HOME/.cache/orctool):
#   images/<K>/vmlinux      the image
#   images/<K>/image.env    written last: the image is complete iff this exists (sourceable)
# Idempotent: a complete image is left as it is and only its summary line is printed.
set -euo pipefail
export LC_ALL=C

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scripts/lib/corpus.sh
. "$here/lib/corpus.sh"

# Versions used when the module corpus of that kernel is not fetched (fetch-corpus.sh's pins).
PIN_612_VERSION=6.12.117-1~deb12u1
PIN_612_ABI=6.12.117+deb12-amd64
PIN_61_VERSION=6.1.192-3
PIN_61_ABI=6.1.0-57-amd64
SID_72_PKG=linux-image-7.2.13+deb14-amd64-dbg
SID_MIRROR=${ORCTOOL_SID_MIRROR:-http://deb.debian.org/debian}

die()  { echo "fetch-images: error: $*" >&2; exit 1; }
note() { echo "fetch-images: $*" >&2; }

resolve_only=0 what=all
while [[ $# -gt 0 ]]; do
    case $1 in
        --resolve) resolve_only=1 ;;
        -h|--help) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
        6.12|6.1|7.2|all) what=$1 ;;
        *) echo "usage: $0 [--resolve] [6.12|6.1|7.2|all]" >&2; exit 2 ;;
    esac
    shift
done
kernels="6.12 6.1 7.2"
[[ $what == all ]] || kernels=$what

cache=$(corpus_cache)
images=$cache/images
tmp=
trap '[[ -z $tmp ]] || rm -rf "$tmp"' EXIT

# apt-get with the private configuration for Debian unstable (lists and downloads under the
# cache; the system's sources.list and status are not read or written).
sid_dir=$cache/apt-sid
sid_apt() {
    apt-get -q -o Dir::Etc::SourceList="$sid_dir/sources.list" -o Dir::Etc::SourceParts=/dev/null \
        -o Dir::State::Lists="$sid_dir/lists" -o Dir::Cache="$sid_dir/cache" -o Dir::State::status=/dev/null \
        -o APT::Sandbox::User=root "$@"
}
sid_cache() {
    apt-cache -o Dir::Etc::SourceList="$sid_dir/sources.list" -o Dir::Etc::SourceParts=/dev/null \
        -o Dir::State::Lists="$sid_dir/lists" -o Dir::Cache="$sid_dir/cache" -o Dir::State::status=/dev/null "$@"
}
sid_update() {
    mkdir -p "$sid_dir/lists/partial" "$sid_dir/cache/archives/partial"
    echo "deb $SID_MIRROR sid main" > "$sid_dir/sources.list"
    if [[ ! -f $sid_dir/.updated ]] || [[ -n $(find "$sid_dir/.updated" -mmin +720) ]]; then
        note "7.2: apt-get update with a private configuration for sid ($sid_dir)"
        sid_apt update >&2 || die "apt-get update for sid failed"
        touch "$sid_dir/.updated"
    fi
}

# resolve K: prints "PACKAGE VERSION APT" (APT: system or sid).
resolve() {
    local k=$1 v abi
    case $k in
        6.12|6.1)
            if corpus_ready "$k"; then
                v=$(corpus_get "$k" CORPUS_VERSION); abi=$(corpus_get "$k" CORPUS_KVER)
            elif [[ $k == 6.12 ]]; then v=$PIN_612_VERSION abi=$PIN_612_ABI
            else v=$PIN_61_VERSION abi=$PIN_61_ABI; fi
            echo "linux-image-$abi-dbg $v system" ;;
        7.2)
            sid_update
            v=$(sid_cache show "$SID_72_PKG" 2>/dev/null | awk '/^Version:/ { print $2; exit }')
            [[ -n $v ]] || die "7.2: $SID_72_PKG is not in sid (any more?); see $sid_dir/lists"
            echo "$SID_72_PKG $v sid" ;;
    esac
}

summary() {
    local k=$1
    (
        # shellcheck disable=SC1090
        . "$images/$k/image.env"
        printf 'image %s: %s=%s, %s (%s bytes), %s\n' "$k" "$IMAGE_PKG" "$IMAGE_VERSION" "$images/$k/vmlinux" \
            "$(stat -c %s "$images/$k/vmlinux")" "$IMAGE_BANNER"
    )
}

fetch_one() {
    local k=$1 r pkg ver apt deb start banner
    mkdir -p "$images"
    exec 9>"$images/.$k.lock"
    flock 9 || die "cannot lock $images/.$k.lock"
    if [[ $resolve_only -eq 1 ]]; then
        r=$(resolve "$k"); read -r pkg ver apt <<< "$r"
        echo "image $k: would fetch $pkg=$ver ($apt apt)"
        exec 9>&-; return
    fi
    if [[ ! -f $images/$k/image.env ]]; then
        start=$(date +%s)
        r=$(resolve "$k"); read -r pkg ver apt <<< "$r"
        tmp=$(mktemp -d "$images/.$k.XXXXXX")
        chmod 0777 "$tmp"   # apt's _apt sandbox user writes the download
        note "$k: downloading $pkg=$ver"
        if [[ $apt == sid ]]; then
            (cd "$tmp" && sid_apt download "$pkg=$ver" >&2) || die "$k: apt-get download $pkg=$ver failed"
        else
            if ! apt-cache madison "$pkg" 2>/dev/null | awk -F'|' -v v="$ver" '{ gsub(/ /, "", $2) } $2 == v { f = 1 } END { exit !f }'; then
                note "$k: apt does not know $pkg=$ver; running apt-get update"
                apt-get update -qq >&2 || die "apt-get update failed"
            fi
            (cd "$tmp" && apt-get download -q "$pkg=$ver" >&2) || die "$k: apt-get download $pkg=$ver failed"
        fi
        deb=$(compgen -G "$tmp/${pkg}_*.deb" | head -n 1 || true)
        [[ -n $deb ]] || die "$k: the download produced no .deb"
        note "$k: extracting the vmlinux from $(basename "$deb") ($(stat -c %s "$deb") bytes)"
        # ./usr/lib/debug/boot/vmlinux-* is the file in 6.x's packages and a symbolic link to
        # ./usr/lib/debug/lib/modules/<abi>/vmlinux in sid's: extract both paths.
        (cd "$tmp" && dpkg-deb --fsys-tarfile "$deb" | tar -x --wildcards './usr/lib/debug/*vmlinux*') ||
            die "$k: extracting ./usr/lib/debug/*vmlinux* from $deb failed"
        rm -f "$deb"
        local found link
        found=$(compgen -G "$tmp/usr/lib/debug/boot/vmlinux-*" | head -n 1 || true)
        [[ -n $found ]] || die "$k: $pkg has no usr/lib/debug/boot/vmlinux-*"
        if [[ -L $found ]]; then
            link=$(readlink "$found")
            if [[ $link == /* ]]; then found=$tmp$link; else found=$(dirname "$found")/$link; fi
            [[ -f $found && ! -L $found ]] || die "$k: usr/lib/debug/boot/vmlinux-* links to $link, which the package does not have"
        fi
        banner=$(strings -n 20 "$found" | grep -m 1 '^Linux version ' || true)
        [[ -n $banner ]] || die "$k: $found has no 'Linux version' banner"
        rm -rf "${images:?}/$k"
        mkdir -p "$images/$k"
        mv "$found" "$images/$k/vmlinux"
        {
            printf '# written by scripts/fetch-images.sh on %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
            printf 'IMAGE_KERNEL=%q\n' "$k"
            printf 'IMAGE_PKG=%q\n' "$pkg"
            printf 'IMAGE_VERSION=%q\n' "$ver"
            printf 'IMAGE_BANNER=%q\n' "${banner%% (*}"
        } > "$images/$k/image.env.tmp"
        mv "$images/$k/image.env.tmp" "$images/$k/image.env"
        rm -rf "$tmp"; tmp=
        note "$k: done in $(( $(date +%s) - start )) s"
    fi
    summary "$k"
    exec 9>&-
}

t0=$(date +%s)
for k in $kernels; do fetch_one "$k"; done
echo "fetch-images: $kernels in $(( $(date +%s) - t0 )) s"
