#!/usr/bin/env bash
# Debian unstable's binutils (objdump --sframe, as --gsframe, readelf), extracted with their
# libraries and run through sid's own ld.so, as the 7.2 corpus runs sid's objtool. The SFrame tests
# and scripts/sframe-compare.sh use it as the oracle for the SFrame v3 orctool writes.
#
#   bash scripts/fetch-sid-binutils.sh        prints the directory of the wrappers (objdump, as, readelf, ld)
#
# Cached in $ORCTOOL_CACHE/sframe/sid-binutils (default ~/.cache/orctool); idempotent; the private apt
# configuration is the corpus's ($ORCTOOL_CACHE/apt-sid), never the system's sources or dpkg status.
set -euo pipefail
cache=${ORCTOOL_CACHE:-$HOME/.cache/orctool}
sid=$cache/apt-sid
out=$cache/sframe/sid-binutils
if [[ -x $out/bin/objdump && -x $out/bin/ld && -f $out/VERSIONS ]]; then echo "$out/bin"; exit 0; fi
start=$SECONDS
SID_MIRROR=${SID_MIRROR:-http://deb.debian.org/debian}
mkdir -p "$sid/lists/partial" "$sid/cache/archives/partial"
want="deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $SID_MIRROR sid main"
[[ -f $sid/sources.list && $(cat "$sid/sources.list") == "$want" ]] || printf '%s\n' "$want" > "$sid/sources.list"
opts=(-o "Dir::Etc::SourceList=$sid/sources.list" -o Dir::Etc::SourceParts=/dev/null
      -o "Dir::State::Lists=$sid/lists" -o "Dir::Cache=$sid/cache" -o Dir::State::status=/dev/null)
compgen -G "$sid/lists/*_Packages*" >/dev/null || apt-get -qq "${opts[@]}" update >&2
pkgs="binutils-x86-64-linux-gnu libbinutils binutils-common libsframe3 libctf0 libctf-nobfd0 libjansson4 libzstd1 zlib1g libc6"
mkdir -p "$cache/sframe"
stage=$(mktemp -d "$cache/sframe/.sid-binutils.XXXXXX")
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/debs"
(cd "$stage/debs" && apt-get -q "${opts[@]}" download $pkgs >&2)
for d in "$stage"/debs/*.deb; do
    dpkg-deb -x "$d" "$stage/root"
    basename "$d" >> "$stage/VERSIONS"
done
mkdir -p "$stage/bin"
for tool in objdump as readelf ld; do
    cat > "$stage/bin/$tool" <<EOS
#!/bin/sh
# sid's $tool, run with sid's ld.so and libraries (written by scripts/fetch-sid-binutils.sh).
d=\$(dirname "\$(dirname "\$(readlink -f "\$0")")")
lib=\$d/root/usr/lib/x86_64-linux-gnu
exec "\$lib/ld-linux-x86-64.so.2" --library-path "\$lib" "\$d/root/usr/bin/x86_64-linux-gnu-$tool" "\$@"
EOS
    chmod +x "$stage/bin/$tool"
done
rm -rf "$stage/debs"
rm -rf "$out"; mkdir -p "$(dirname "$out")"; mv "$stage" "$out"; trap - EXIT
echo "sid binutils in $out ($((SECONDS - start)) s)" >&2
echo "$out/bin"
