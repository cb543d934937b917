//! The dead kernel: its memory by virtual address (KASLR from VMCOREINFO, the page tables from
//! `init_top_pgt`), its per-CPU data, its tasks and the stacks they may be on.

use std::cell::Cell;

use orc_unwind::{Memory, StackRange};

use crate::dump::{CpuRegs, Vmcore};
use crate::dwarf::{read_types, Types};
use crate::image::{Image, Sym};
use crate::vmcoreinfo::VmcoreInfo;
use crate::VmcoreError;

/// `__START_KERNEL_map`: where x86-64 maps the kernel image (virtual = physical - phys_base +
/// this), fixed by the architecture's memory layout (Documentation/arch/x86/x86_64/mm.rst).
pub const START_KERNEL_MAP: u64 = 0xffff_ffff_8000_0000;

/// Structures the task list and stacks are read through.
const REQUIRED_TYPES: &[&str] = &["task_struct", "signal_struct", "inactive_task_frame"];
/// Read when met (the per-CPU data changed shape between versions).
const OPTIONAL_TYPES: &[&str] = &[
    "thread_union",
    "pcpu_hot",
    "cea_exception_stacks",
    "tss_struct",
    "entry_stack",
    "module",
    "module_memory",
    "mod_kallsyms",
];

/// Member offsets, resolved once from the DWARF layouts.
#[derive(Clone, Debug)]
pub struct Offsets {
    /// `task_struct.tasks` (list of group leaders).
    pub tasks: u64,
    /// `task_struct.pid`, `.tgid`.
    pub pid: u64,
    /// `task_struct.tgid`.
    pub tgid: u64,
    /// `task_struct.comm` (16 bytes).
    pub comm: u64,
    /// `task_struct.__state`.
    pub state: u64,
    /// `task_struct.stack`.
    pub stack: u64,
    /// `task_struct.thread.sp`: the stack pointer saved by the last context switch.
    pub thread_sp: u64,
    /// `task_struct.signal`.
    pub signal: u64,
    /// `task_struct.thread_node` (in `signal_struct.thread_head`).
    pub thread_node: u64,
    /// `signal_struct.thread_head`.
    pub thread_head: u64,
    /// `sizeof(struct inactive_task_frame)`, `.bp`, `.ret_addr`.
    pub frame_size: u64,
    /// `inactive_task_frame.bp`.
    pub frame_bp: u64,
    /// `inactive_task_frame.ret_addr`.
    pub frame_ret: u64,
    /// THREAD_SIZE: `sizeof(union thread_union)`, or the size of the boot task's stack
    /// between the linker's symbols around it.
    pub thread_size: u64,
}

/// THREAD_SIZE: from DWARF when some unit uses `union thread_union` (few do), else from the
/// linker symbols around the boot stack (6.12: `__start_init_stack`..`__end_init_stack`; 6.1:
/// `__start_init_task`..`__end_init_task`).
fn thread_size(types: &Types, image: &Image<'_>) -> Result<u64, VmcoreError> {
    if let Some(u) = types.get("thread_union") {
        return Ok(u.size);
    }
    for (start, end) in [("__start_init_stack", "__end_init_stack"), ("__start_init_task", "__end_init_task")] {
        if let (Some(s), Some(e)) = (image.symbol(start), image.symbol(end)) {
            if e.value > s.value && e.value - s.value <= 1 << 20 {
                return Ok(e.value - s.value);
            }
        }
    }
    Err(VmcoreError::Debug("cannot tell THREAD_SIZE: no union thread_union, no __start/__end_init_stack".into()))
}

impl Offsets {
    /// Resolves every offset the task walk needs.
    pub fn from_types(types: &Types, image: &Image<'_>) -> Result<Offsets, VmcoreError> {
        let task = types.require("task_struct")?;
        let t = |p: &str| task.offset("task_struct", p);
        let signal = types.require("signal_struct")?;
        let frame = types.require("inactive_task_frame")?;
        Ok(Offsets {
            tasks: t("tasks")?,
            pid: t("pid")?,
            tgid: t("tgid")?,
            comm: t("comm")?,
            state: t("__state")?,
            stack: t("stack")?,
            thread_sp: t("thread.sp")?,
            signal: t("signal")?,
            thread_node: t("thread_node")?,
            thread_head: signal.offset("signal_struct", "thread_head")?,
            frame_size: frame.size,
            frame_bp: frame.offset("inactive_task_frame", "bp")?,
            frame_ret: frame.offset("inactive_task_frame", "ret_addr")?,
            thread_size: thread_size(types, image)?,
        })
    }
}

/// Which stack a range is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StackKind {
    /// A task's own stack (THREAD_SIZE).
    Task,
    /// A CPU's hard-IRQ stack.
    Irq,
    /// A CPU's exception stack (`DF`, `NMI`, `DB`, `MCE`, ...).
    Exception(String),
    /// A CPU's entry stack (the trampoline stack of system-call and interrupt entry).
    Entry,
}

/// One task of the dump.
#[derive(Clone, Debug)]
pub struct Task {
    /// Address of its `task_struct`.
    pub address: u64,
    /// Thread id.
    pub pid: i32,
    /// Process id.
    pub tgid: i32,
    /// `comm`.
    pub comm: String,
    /// `__state` (0 running, 1 interruptible, 2 uninterruptible, ...).
    pub state: u32,
    /// The CPU it was running on when the dump was taken, if it was some CPU's current task.
    pub cpu: Option<usize>,
    /// Its stack `[stack, stack + THREAD_SIZE)`.
    pub stack: StackRange,
}

/// Where a task's walk starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// A task that is not running: the frame `__switch_to_asm` left at `thread.sp`.
    Blocked {
        /// `inactive_task_frame.ret_addr`.
        ip: u64,
        /// `thread.sp + sizeof(inactive_task_frame)`.
        sp: u64,
        /// `inactive_task_frame.bp`.
        bp: u64,
        /// The ip is `ret_from_fork_asm` (a task that has not run yet): looked up exactly.
        exact: bool,
    },
    /// A task running in the kernel on a CPU: that CPU's registers.
    Running {
        /// The CPU.
        cpu: usize,
        /// Its registers' ip, sp, bp.
        ip: u64,
        /// Stack pointer.
        sp: u64,
        /// Frame pointer.
        bp: u64,
    },
    /// A task running in user mode on a CPU: no kernel stack to walk.
    User {
        /// The CPU.
        cpu: usize,
        /// The user-mode ip.
        ip: u64,
    },
}

/// The dead kernel: a dump read through an image.
pub struct Kernel<'a, 'd> {
    /// The dump.
    pub dump: &'a Vmcore<'d>,
    /// The image it ran.
    pub image: &'a Image<'a>,
    /// Its VMCOREINFO.
    pub info: VmcoreInfo,
    /// KASLR offset of the image (runtime = link + this).
    pub kaslr: u64,
    /// `phys_base`: physical = virtual - [`START_KERNEL_MAP`] + this, in the image's mapping.
    pub phys_base: u64,
    /// Physical address of the top-level page table (`init_top_pgt`).
    root: u64,
    levels: u32,
    /// The structure layouts read from DWARF.
    pub types: Types,
    /// The offsets used.
    pub offsets: Offsets,
}

impl std::fmt::Debug for Kernel<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kernel").field("kaslr", &self.kaslr).field("levels", &self.levels).finish()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl<'a, 'd> Kernel<'a, 'd> {
    /// Checks that the dump is of this image (build ID, else release), reads VMCOREINFO and
    /// the layouts.
    pub fn new(dump: &'a Vmcore<'d>, image: &'a Image<'a>) -> Result<Kernel<'a, 'd>, VmcoreError> {
        let text = dump.vmcoreinfo_text().ok_or_else(|| {
            VmcoreError::NotVmcore("no VMCOREINFO note: not a kernel crash dump (QEMU needs -device vmcoreinfo)".into())
        })?;
        let info = VmcoreInfo::parse(text);
        // Before the (slower) debug info: a dump of another kernel is told at once.
        check_identity(&info, image)?;
        let types = read_types(&image.file, REQUIRED_TYPES, OPTIONAL_TYPES)?;
        Kernel::with_types(dump, image, info, types)
    }

    /// As [`Kernel::new`], with layouts given (tests build them by hand).
    pub fn with_types(
        dump: &'a Vmcore<'d>,
        image: &'a Image<'a>,
        info: VmcoreInfo,
        types: Types,
    ) -> Result<Kernel<'a, 'd>, VmcoreError> {
        check_identity(&info, image)?;
        let kaslr = info.kernel_offset()?;
        let phys_base = info.phys_base()?;
        let top = match info.symbol("init_top_pgt") {
            Some(a) => a,
            None => image.require("init_top_pgt")?.value.wrapping_add(kaslr),
        };
        let root = top.wrapping_sub(START_KERNEL_MAP).wrapping_add(phys_base);
        let levels = if info.five_level() { 5 } else { 4 };
        let offsets = Offsets::from_types(&types, image)?;
        let kernel = Kernel { dump, image, info, kaslr, phys_base, root, levels, types, offsets };
        // The image's own symbol, read through the page tables, must be where KASLR says.
        if let Some(stext) = kernel.info.symbol("_stext") {
            let ours = image.require("_stext")?.value.wrapping_add(kaslr);
            if ours != stext {
                return Err(VmcoreError::Mismatch(format!(
                    "_stext is at {stext:#x} in the dump, {ours:#x} by the image and KERNELOFFSET"
                )));
            }
        }
        Ok(kernel)
    }

    /// Physical address of a virtual one, by the page tables.
    pub fn translate(&self, va: u64) -> Option<u64> {
        translate(self.dump, self.root, self.levels, va)
    }

    /// Copies kernel virtual memory; false if some page is not mapped or not in the dump.
    pub fn read(&self, va: u64, buf: &mut [u8]) -> bool {
        let mut done = 0;
        while done < buf.len() {
            let at = va.wrapping_add(done as u64);
            let chunk = (4096 - (at & 4095) as usize).min(buf.len() - done);
            match self.translate(at) {
                Some(pa) if self.dump.read_phys(pa, &mut buf[done..done + chunk]) => {}
                _ => return false,
            }
            done += chunk;
        }
        true
    }

    /// `N` bytes at `va`, or an error naming what was being read.
    fn bytes_at<const N: usize>(&self, va: u64, what: &str) -> Result<[u8; N], VmcoreError> {
        let mut b = [0u8; N];
        if self.read(va, &mut b) {
            Ok(b)
        } else {
            Err(VmcoreError::Memory(format!("cannot read {what} at {va:#x}")))
        }
    }

    /// The word at `va`, or an error naming what was being read.
    pub fn u64_at(&self, va: u64, what: &str) -> Result<u64, VmcoreError> {
        self.bytes_at(va, what).map(u64::from_le_bytes)
    }

    /// The 32-bit word at `va`, or an error naming what was being read.
    pub fn u32_at(&self, va: u64, what: &str) -> Result<u32, VmcoreError> {
        self.bytes_at(va, what).map(u32::from_le_bytes)
    }

    /// Runtime address of a (non-per-CPU) image symbol.
    pub fn address_of(&self, name: &str) -> Result<u64, VmcoreError> {
        let s = self.image.require(name)?;
        Ok(s.value.wrapping_add(self.kaslr))
    }

    /// Runtime address of per-CPU symbol `sym` on `cpu`.
    fn percpu(&self, sym: Sym, cpu: usize) -> Result<u64, VmcoreError> {
        let offsets = self.address_of("__per_cpu_offset")?;
        let base = self.u64_at(offsets.wrapping_add(8 * cpu as u64), "__per_cpu_offset")?;
        Ok(sym.value.wrapping_add(base))
    }

    /// The online CPUs (`__cpu_online_mask`), at most `nr_cpu_ids`.
    pub fn online_cpus(&self) -> Result<Vec<usize>, VmcoreError> {
        let nr = self.u32_at(self.address_of("nr_cpu_ids")?, "nr_cpu_ids")? as usize;
        if nr == 0 || nr > 8192 {
            return Err(VmcoreError::Memory(format!("nr_cpu_ids is {nr}")));
        }
        let mask = self.address_of("__cpu_online_mask")?;
        let mut cpus = Vec::new();
        for word in 0..nr.div_ceil(64) {
            let bits = self.u64_at(mask.wrapping_add(8 * word as u64), "__cpu_online_mask")?;
            cpus.extend((0..64).filter(|b| bits >> b & 1 != 0).map(|b| word * 64 + b).filter(|&c| c < nr));
        }
        Ok(cpus)
    }

    /// A per-CPU variable that moved into `pcpu_hot` (6.2+) or is its own symbol (before).
    fn percpu_hot(&self, member: &str, cpu: usize) -> Result<u64, VmcoreError> {
        if let (Some(sym), Some(layout)) = (self.image.symbol("pcpu_hot"), self.types.get("pcpu_hot")) {
            let off = layout.offset("pcpu_hot", member)?;
            return self.u64_at(self.percpu(sym, cpu)? + off, member);
        }
        let sym = self.image.require(member)?;
        self.u64_at(self.percpu(sym, cpu)?, member)
    }

    /// The task running on `cpu` (`current`).
    pub fn current(&self, cpu: usize) -> Result<u64, VmcoreError> {
        self.percpu_hot("current_task", cpu)
    }

    /// The stacks of `cpu` a walk may cross besides the task's own: IRQ, exception, entry.
    pub fn cpu_stacks(&self, cpu: usize) -> Vec<(StackKind, StackRange)> {
        let mut out = Vec::new();
        // hardirq_stack_ptr points at the top word of the IRQ stack (IRQ_STACK_SIZE is
        // `irq_stack_backing_store`'s size, else THREAD_SIZE, which it equals on x86-64).
        if let Ok(top) = self.percpu_hot("hardirq_stack_ptr", cpu) {
            let size = self
                .image
                .symbol("irq_stack_backing_store")
                .map(|s| s.size)
                .filter(|&s| s > 0)
                .unwrap_or(self.offsets.thread_size);
            let end = top.wrapping_add(8);
            out.push((StackKind::Irq, StackRange::new(end.wrapping_sub(size), end)));
        }
        if let (Some(sym), Some(layout)) =
            (self.image.symbol("cea_exception_stacks"), self.types.get("cea_exception_stacks"))
        {
            if let Ok(base) = self.percpu(sym, cpu).and_then(|a| self.u64_at(a, "cea_exception_stacks")) {
                for m in &layout.members {
                    let (Some(name), Some(size)) = (&m.name, m.size) else { continue };
                    if let Some(kind) = name.strip_suffix("_stack") {
                        let start = base.wrapping_add(m.offset);
                        out.push((
                            StackKind::Exception(kind.to_string()),
                            StackRange::new(start, start.wrapping_add(size)),
                        ));
                    }
                }
            }
        }
        // The entry stack: TSS.sp0 is its top on x86-64 (the trampoline stack).
        if let (Some(sym), Some(tss), Some(entry)) =
            (self.image.symbol("cpu_tss_rw"), self.types.get("tss_struct"), self.types.get("entry_stack"))
        {
            if let Ok(off) = tss.offset("tss_struct", "x86_tss.sp0") {
                if let Ok(top) =
                    self.percpu(sym, cpu).and_then(|a| self.u64_at(a.wrapping_add(off), "cpu_tss_rw.x86_tss.sp0"))
                {
                    out.push((StackKind::Entry, StackRange::new(top.wrapping_sub(entry.size), top)));
                }
            }
        }
        out
    }

    fn task_at(&self, address: u64) -> Result<Task, VmcoreError> {
        let o = &self.offsets;
        let mut comm = [0u8; 16];
        if !self.read(address.wrapping_add(o.comm), &mut comm) {
            return Err(VmcoreError::Memory(format!("cannot read the task_struct at {address:#x}")));
        }
        let comm = String::from_utf8_lossy(&comm[..comm.iter().position(|&c| c == 0).unwrap_or(16)]).into_owned();
        let stack = self.u64_at(address.wrapping_add(o.stack), "task_struct.stack")?;
        Ok(Task {
            address,
            pid: self.u32_at(address.wrapping_add(o.pid), "task_struct.pid")? as i32,
            tgid: self.u32_at(address.wrapping_add(o.tgid), "task_struct.tgid")? as i32,
            comm,
            state: self.u32_at(address.wrapping_add(o.state), "task_struct.__state")?,
            cpu: None,
            stack: StackRange::new(stack, stack.wrapping_add(o.thread_size)),
        })
    }

    /// Follows a `list_head` ring from `head`, returning the nodes (not the head).
    fn list(&self, head: u64, what: &str) -> Result<Vec<u64>, VmcoreError> {
        let mut nodes = Vec::new();
        let mut node = self.u64_at(head, what)?;
        while node != head {
            if nodes.len() > 1 << 22 {
                return Err(VmcoreError::Memory(format!("{what}: the list does not come back to its head")));
            }
            nodes.push(node);
            node = self.u64_at(node, what)?;
        }
        Ok(nodes)
    }

    /// Every task: each thread of each process on `init_task.tasks`, then the idle task of
    /// each online CPU; each running task marked with its CPU.
    pub fn tasks(&self) -> Result<Vec<Task>, VmcoreError> {
        let o = &self.offsets;
        let init = self.address_of("init_task")?;
        let mut leaders = vec![init];
        leaders.extend(
            self.list(init.wrapping_add(o.tasks), "init_task.tasks")?.into_iter().map(|n| n.wrapping_sub(o.tasks)),
        );
        let mut addresses = Vec::new();
        for leader in leaders {
            let signal = self.u64_at(leader.wrapping_add(o.signal), "task_struct.signal")?;
            let threads = self.list(signal.wrapping_add(o.thread_head), "signal_struct.thread_head")?;
            if threads.is_empty() {
                addresses.push(leader);
            }
            addresses.extend(threads.into_iter().map(|n| n.wrapping_sub(o.thread_node)));
        }
        let cpus = self.online_cpus()?;
        if let Some(idle) = self.image.symbol("idle_threads") {
            for &cpu in &cpus {
                let t = self.u64_at(self.percpu(idle, cpu)?, "idle_threads")?;
                if t != 0 {
                    addresses.push(t);
                }
            }
        }
        let mut seen = std::collections::HashSet::new();
        addresses.retain(|a| seen.insert(*a));
        let mut tasks = addresses.into_iter().map(|a| self.task_at(a)).collect::<Result<Vec<_>, _>>()?;
        for &cpu in &cpus {
            let cur = self.current(cpu)?;
            if let Some(t) = tasks.iter_mut().find(|t| t.address == cur) {
                t.cpu = Some(cpu);
            }
        }
        Ok(tasks)
    }

    /// Where `task`'s walk starts: its CPU's registers if it was running (and the dump has
    /// them), else the frame of its last context switch.
    pub fn start(&self, task: &Task) -> Result<Start, VmcoreError> {
        if let Some(cpu) = task.cpu {
            if let Some(regs) = self.dump.cpus().get(cpu) {
                return Ok(running(cpu, regs));
            }
        }
        let o = &self.offsets;
        let sp = self.u64_at(task.address.wrapping_add(o.thread_sp), "thread.sp")?;
        let ip = self.u64_at(sp.wrapping_add(o.frame_ret), "inactive_task_frame.ret_addr")?;
        let bp = self.u64_at(sp.wrapping_add(o.frame_bp), "inactive_task_frame.bp")?;
        let fork = self.image.symbol("ret_from_fork_asm").map(|s| s.value.wrapping_add(self.kaslr));
        Ok(Start::Blocked { ip, sp: sp.wrapping_add(o.frame_size), bp, exact: Some(ip) == fork })
    }

    /// Memory for the unwinder: the dump read by virtual address.
    pub fn memory(&self) -> DumpMemory<'_, 'a, 'd> {
        DumpMemory { kernel: self, page: Cell::new((u64::MAX, 0)) }
    }
}

/// The dump must be of this image: the same GNU build ID, else (a dump or image without one)
/// the same release.
pub fn check_identity(info: &VmcoreInfo, image: &Image<'_>) -> Result<(), VmcoreError> {
    match (info.build_id(), &image.build_id) {
        (Some(dump_id), Some(id)) if !dump_id.eq_ignore_ascii_case(&hex(id)) => {
            return Err(VmcoreError::Mismatch(format!(
                "the dump is of kernel {} (build ID {dump_id}), the image is {} (build ID {})",
                info.osrelease().unwrap_or("?"),
                image.release.as_deref().unwrap_or("?"),
                hex(id)
            )))
        }
        (Some(_), Some(_)) => {}
        _ => {
            if let (Some(a), Some(b)) = (info.osrelease(), image.release.as_deref()) {
                if a != b {
                    return Err(VmcoreError::Mismatch(format!("the dump is of kernel {a}, the image is {b}")));
                }
            }
        }
    }
    Ok(())
}

/// Physical address of virtual `va` by the page tables at physical `root` (4 or 5 levels;
/// 1 GiB and 2 MiB pages); `None` when some level is not present or not in the dump.
pub fn translate(dump: &Vmcore<'_>, root: u64, levels: u32, va: u64) -> Option<u64> {
    const ADDR: u64 = 0x000f_ffff_ffff_f000;
    let mut table = root & ADDR;
    let mut shift = if levels == 5 { 48 } else { 39 };
    loop {
        let index = (va >> shift) & 0x1ff;
        let entry = dump.phys_u64(table + index * 8)?;
        if entry & 1 == 0 {
            return None;
        }
        // PS: a 1 GiB page at level 3 (shift 30), a 2 MiB page at level 2 (shift 21).
        if shift == 12 || ((shift == 30 || shift == 21) && entry & 0x80 != 0) {
            let mask = (1u64 << shift) - 1;
            return Some((entry & ADDR & !mask) | (va & mask));
        }
        table = entry & ADDR;
        shift -= 9;
    }
}

fn running(cpu: usize, regs: &CpuRegs) -> Start {
    if regs.cs() & 3 != 0 {
        Start::User { cpu, ip: regs.rip() }
    } else {
        Start::Running { cpu, ip: regs.rip(), sp: regs.rsp(), bp: regs.rbp() }
    }
}

/// The dump as the unwinder's [`Memory`], with the last translated page remembered (a walk
/// reads a few words of the same pages).
pub struct DumpMemory<'k, 'a, 'd> {
    kernel: &'k Kernel<'a, 'd>,
    page: Cell<(u64, u64)>,
}

impl Memory for DumpMemory<'_, '_, '_> {
    fn read_u64(&mut self, addr: u64) -> Option<u64> {
        if addr & 4095 > 4096 - 8 {
            let mut b = [0u8; 8];
            return self.kernel.read(addr, &mut b).then(|| u64::from_le_bytes(b));
        }
        let (va_page, pa_page) = self.page.get();
        let pa = if addr & !4095 == va_page {
            pa_page
        } else {
            let pa = self.kernel.translate(addr & !4095)?;
            self.page.set((addr & !4095, pa));
            pa
        };
        self.kernel.dump.phys_u64(pa | (addr & 4095))
    }
}
