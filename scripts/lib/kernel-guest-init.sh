#!/bin/busybox sh
# /init of the initramfs scripts/kernel-build.sh boots (busybox-static). It makes the kernel's own ORC
# unwinder walk many stacks and prints what it found between markers for scripts/lib/kernel-console.py:
#   ORCTEST <phase> ...        a marker (phase begin/end, counts, results)
#   ORCFN <source> <name> <n>  a function name seen <n> times in the stack traces of <source>
#   ORCLAST <source> <name> <n> <n> traces of <source> ended at <name> (where the unwinder stopped)
# Kernel output (sysrq call traces, unwinder warnings) reaches the same console through printk.
# Every phase runs whatever the previous one did; the last line is `ORCTEST done`, then power off.
. /lib/guest-setup.sh
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
T=/sys/kernel/tracing

say() { echo "ORCTEST $*"; }
say init "$(uname -r)"

# A small workload: syscalls, page faults, fork and exec, pipes, timers, block I/O through a module.
workload() {
    i=0
    while [ $i -lt 3 ]; do
        ls -lR /proc/sys > /dev/null 2>&1
        cat /proc/cmdline /proc/meminfo /proc/interrupts > /dev/null
        dd if=/dev/zero of=/tmp/orc bs=4k count=64 2> /dev/null
        md5sum /tmp/orc > /dev/null
        rm -f /tmp/orc
        [ ! -b /dev/nullb0 ] || dd if=/dev/nullb0 of=/dev/null bs=4k count=64 iflag=direct 2> /dev/null
        echo hello | sh -c 'read x; echo $x' > /dev/null
        sleep 0.2
        i=$((i + 1))
    done
}

# summarize SOURCE: the stack traces in the trace buffer, as counts and function names.
summarize() {
    traces=$(grep -c '<stack trace>' $T/trace)
    entries=$(grep -c '^ => ' $T/trace)
    unresolved=$(grep -c '^ => 0x' $T/trace)
    grep '^ => ' $T/trace | sed 's/^ => //; s/ .*//' | grep -v '^0x' | sort | uniq -c | while read -r n f; do echo "ORCFN $1 $f $n"; done
    # The last entry of each trace: where the unwinder stopped (a stack's bottom, or where it gave up).
    awk '/<stack trace>/ { if (last != "") print last; last = ""; in_trace = 1; next }
         /^ => / { if (in_trace) last = $2; next }
         { if (last != "") print last; last = ""; in_trace = 0 }
         END { if (last != "") print last }' $T/trace | sed 's/^0x.*/(unresolved)/' | sort | uniq -c |
        while read -r n f; do echo "ORCLAST $1 $f $n"; done
    # An unresolved entry (an address kallsyms does not know): the trace line and the entries before it.
    grep -B3 '^ => 0x' $T/trace | head -n 12 | sed "s/^/ORCTEST $1-unresolved-context /"
    written=$(sed -n 's/^# entries-in-buffer\/entries-written: [0-9]*\/\([0-9]*\).*/\1/p' $T/trace)
    say "$1" traces=$traces entries=$entries unresolved=$unresolved written=$written
}

# Modules the checks load (dependencies first), listed by the host in /lib/modules/load.list.
while read -r m; do
    insmod "/lib/modules/$m" 2> /dev/null && say insmod "$m" ok || say insmod "$m" FAILED
done < /lib/modules/load.list

# 1. sysrq-t: every task's stack, unwound by ORC (printk); sysrq-l: every CPU's, from NMI context.
echo 1 > /proc/sys/kernel/sysrq
say sysrq-t begin
echo t > /proc/sysrq-trigger
sleep 1
say sysrq-t end
say sysrq-l begin
echo l > /proc/sysrq-trigger
sleep 1
say sysrq-l end

# 2. /proc/<pid>/stack of every task.
n=0
for d in /proc/[0-9]*; do
    [ -r "$d/stack" ] || continue
    say proc-stack "${d#/proc/}" "$(cat "$d/comm" 2> /dev/null)"
    cat "$d/stack" 2> /dev/null
    n=$((n + 1))
done
say proc-stacks "$n"

if [ -d $T/events ]; then
    echo 4096 > $T/buffer_size_kb
    # 3. Trace events with a stack trace each: interrupts, softirqs, timers, the scheduler, block I/O,
    #    and kprobes (one in vmlinux, one in the null_blk module).
    echo 0 > $T/tracing_on
    echo > $T/trace
    echo 'p:orc_vfs_read vfs_read' >> $T/kprobe_events 2> /dev/null || say kprobe vfs_read FAILED
    echo 'p:orc_null_queue_rq null_queue_rq' >> $T/kprobe_events 2> /dev/null || say kprobe null_queue_rq FAILED
    echo 1 > $T/events/kprobes/enable 2> /dev/null
    for e in irq/irq_handler_entry irq/softirq_entry timer/hrtimer_expire_entry timer/timer_expire_entry \
             sched/sched_switch sched/sched_wakeup sched/sched_process_fork block/block_rq_issue; do
        echo 1 > $T/events/$e/enable 2> /dev/null || say event "$e" FAILED
    done
    echo 1 > $T/options/stacktrace
    echo 1 > $T/tracing_on
    workload
    echo 0 > $T/tracing_on
    # Read the buffer first: removing the kprobe events or changing the tracer empties it.
    summarize events
    echo 0 > $T/options/stacktrace
    echo 0 > $T/events/enable
    echo > $T/kprobe_events
    echo > $T/trace

    # 4. The function tracer with a stack trace at each traced function's entry (from the ftrace
    #    trampoline), over a few hundred functions of vmlinux and all of null_blk.
    for f in 'vfs_*' 'ksys_*' 'do_sys_open*' 'do_filp_open' 'path_openat' 'handle_mm_fault' 'do_exit' \
             'kernel_clone' 'do_execveat_common*' 'schedule_timeout' 'hrtimer_interrupt' 'run_timer_softirq' \
             'rcu_core' 'submit_bio' 'blk_mq_*' 'pipe_*' '*:mod:null_blk'; do
        echo "$f" >> $T/set_ftrace_filter 2> /dev/null || say ftrace-filter "$f" none
    done
    say ftrace-filter functions=$(wc -l < $T/set_ftrace_filter)
    echo function > $T/current_tracer
    echo 1 > $T/options/func_stack_trace
    echo 1 > $T/tracing_on
    workload
    echo 0 > $T/tracing_on
    summarize function
    echo 0 > $T/options/func_stack_trace
    echo nop > $T/current_tracer
    echo > $T/set_ftrace_filter
    echo > $T/trace

    # 5. The stack tracer: the deepest stack seen while it runs, unwound at every traced function.
    if [ -w /proc/sys/kernel/stack_tracer_enabled ]; then
        echo 1 > /proc/sys/kernel/stack_tracer_enabled
        workload
        echo 0 > /proc/sys/kernel/stack_tracer_enabled
        say stack-tracer begin
        cat $T/stack_trace
        say stack-tracer end
    fi
else
    say tracefs missing
fi

# 6. Livepatch: the transition needs a reliable stack trace of every task (the ORC unwinder's
#    reliable mode); enable, check the patched /proc/cmdline, disable, unload.
lp=/sys/kernel/livepatch/livepatch_sample
wait_transition() {
    i=0
    while [ "$(cat $lp/transition 2> /dev/null)" = 1 ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
    # A disabled patch is freed once its transition is over: its directory goes away.
    if [ -d $lp ]; then t=$(cat $lp/transition 2> /dev/null); else t=gone; fi
    echo "transition=$t waited_ms=$((i * 100))"
}
insmod /lib/modules/livepatch-sample.ko 2> /dev/null && say insmod livepatch-sample.ko ok || say insmod livepatch-sample.ko FAILED
if [ -d $lp ]; then
    say livepatch enable "$(wait_transition)"
    say livepatch cmdline "$(cat /proc/cmdline)"
    echo 0 > $lp/enabled
    say livepatch disable "$(wait_transition)"
    rmmod livepatch_sample 2> /dev/null && say livepatch rmmod ok || say livepatch rmmod FAILED
    say livepatch cmdline-after "$(cat /proc/cmdline)"
else
    say livepatch missing
fi

say done
sync
poweroff -f
echo o > /proc/sysrq-trigger
sleep 10
