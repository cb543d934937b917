#!/bin/busybox sh
# /init of the initramfs scripts/make-vmcore.sh boots (busybox-static). It leaves tasks in the states
# a crash dump should show, prints `VMCORE ready`, and waits: the host then dumps the guest's memory.
#   sleeping          sleep 100000 (nanosleep, in the scheduler)
#   spinning (user)   a shell loop that never makes a system call
#   blocked in pipes  cat reading an empty pipe; yes writing a full one
#   in a system call  dd from /dev/zero to /dev/null (mostly kernel time), and cat /dev/urandom
#   blocked on a fifo a shell opening a FIFO nobody writes
#   in a module       cat reading the keyboard's evdev node: blocked in evdev_read (evdev.ko)
. /lib/guest-setup.sh
say() { echo "VMCORE $*"; }
say init "$(uname -r)"
# Modules the host put in the initramfs (qemu_fw_cfg first: it tells QEMU where VMCOREINFO is).
while read -r m; do
    insmod "/lib/modules/$m" 2> /dev/null && say insmod "$m" ok || say insmod "$m" FAILED
done < /lib/modules/load.list
sleep 100000 &
sh -c 'while :; do :; done' &
sleep 100000 | cat > /dev/null &
yes | sleep 100000 &
dd if=/dev/zero of=/dev/null bs=64k 2> /dev/null &
cat /dev/urandom > /dev/null &
mkfifo /tmp/fifo
sh -c 'read x < /tmp/fifo' &
for e in /dev/input/event*; do [ -c "$e" ] && { cat "$e" > /dev/null & break; }; done
sleep 2
say tasks "$(ls -d /proc/[0-9]* | wc -l)"
say ready
# Wait for the dump (the host quits QEMU afterwards).
sleep 100000
