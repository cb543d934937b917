#!/usr/bin/env bash
# A busybox-static initramfs for booting a kernel under QEMU: shared by scripts/kernel-build.sh
# and scripts/make-vmcore.sh. Source it.
#
#   initramfs_root DIR INIT          a root under DIR: busybox as /bin/busybox, INIT as /init, the setup
#                                    every /init sources (/lib/guest-setup.sh: PATH, mounts), the usual
#                                    empty mount points and an empty /lib/modules/load.list
#   initramfs_add_module DIR KO      append KO (a .ko, or .ko.xz, decompressed) to DIR/lib/modules and
#                                    to load.list, which the /init scripts load in order
#   initramfs_module_deps KO         the `depends=` of a module's .modinfo, one per line
#   initramfs_pack DIR OUT           DIR as a reproducible gzip'd newc cpio at OUT (temp file + rename)

initramfs_root() {
    mkdir -p "$1/bin" "$1/lib/modules" "$1/proc" "$1/sys" "$1/dev" "$1/tmp"
    cp /bin/busybox "$1/bin/busybox"
    cp "$2" "$1/init"; chmod +x "$1/init"
    cp "$(dirname "${BASH_SOURCE[0]}")/guest-setup.sh" "$1/lib/guest-setup.sh"
    : > "$1/lib/modules/load.list"
}

initramfs_add_module() {
    local name
    name=$(basename "${2%.xz}")
    case $2 in
        *.xz) xz -dc "$2" > "$1/lib/modules/$name" ;;
        *) cp "$2" "$1/lib/modules/$name" ;;
    esac
    printf '%s\n' "$name" >> "$1/lib/modules/load.list"
}

initramfs_module_deps() {
    objcopy -O binary --only-section=.modinfo "$1" /dev/stdout 2> /dev/null | tr '\0' '\n' | sed -n 's/^depends=//p' | tr ',' '\n' | sed '/^$/d'
}

initramfs_pack() {
    (cd "$1" && find . | LC_ALL=C sort | cpio -o -H newc --owner 0:0 --quiet | gzip -9n) > "$2.tmp"
    mv "$2.tmp" "$2"
}
