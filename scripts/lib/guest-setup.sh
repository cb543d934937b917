# Sourced first by the /init scripts of the QEMU guests (scripts/lib/kernel-guest-init.sh,
# scripts/lib/vmcore-guest-init.sh); scripts/lib/initramfs.sh puts it at /lib/guest-setup.sh.
# busybox's applets as commands, and the file systems every guest uses.
export PATH=/bin:/sbin
/bin/busybox mkdir -p /proc /sys /dev /tmp /sbin
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t tmpfs tmpfs /tmp
