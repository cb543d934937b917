//! Every task's stack: the image's ORC table moved by KASLR, each task's start, the stacks it
//! may cross, one walk with `orc-unwind`.

use orc_unwind::{Config, End, Frame, IndexKind, ModuleTables, OwnedTable, StackRange, Unreliable, Unwinder};

use crate::kernel::{Kernel, StackKind, Start, Task};
use crate::modules::Module;
use crate::VmcoreError;

/// The unwind tables of a dump: the image's, at runtime addresses, and each loaded module's.
pub struct Tables {
    owned: Vec<OwnedTable>,
    /// The modules found in the dump.
    pub modules: Vec<Module>,
}

impl Tables {
    /// The image's table moved by the KASLR offset, and the tables of the modules in the dump.
    pub fn new(kernel: &Kernel<'_, '_>) -> Result<Tables, VmcoreError> {
        let (mut pairs, layout) = kernel.image.orc_pairs()?;
        for p in &mut pairs {
            p.0 = p.0.wrapping_add(kernel.kaslr);
        }
        let lo = pairs.iter().map(|p| p.0).min().unwrap_or(0);
        let hi = pairs.iter().map(|p| p.0).max().unwrap_or(0).saturating_add(1);
        let table = OwnedTable::build(pairs, layout, lo..hi, IndexKind::default())
            .map_err(|e| VmcoreError::Image(format!("cannot index the ORC table: {e:?}")))?;
        let mut owned = vec![table];
        let modules = kernel.modules()?;
        for m in &modules {
            if m.orc.is_empty() || m.text.start >= m.text.end {
                continue;
            }
            // A module whose table does not index (garbage in the dump) is left without one.
            if let Ok(t) = OwnedTable::build(m.orc.clone(), layout, m.text.clone(), IndexKind::default()) {
                owned.push(t);
            }
        }
        owned.sort_by_key(|t| t.table().text.start);
        Ok(Tables { owned, modules })
    }

    /// The function of a runtime address in a module: (module, function, offset, size).
    pub fn module_function(&self, addr: u64) -> Option<(&str, &str, u64, u64)> {
        let m = self.modules.iter().find(|m| m.text.contains(&addr))?;
        let i = m.functions.partition_point(|f| f.0 <= addr);
        let f = m.functions[..i].iter().rev().find(|f| addr < f.0.saturating_add(f.1.max(1)))?;
        Some((&m.name, &f.2, addr - f.0, f.1))
    }
}

/// One task's walk.
#[derive(Clone, Debug)]
pub struct TaskTrace {
    /// The task.
    pub task: Task,
    /// Where the walk started.
    pub start: Start,
    /// The frames, innermost first.
    pub frames: Vec<Frame>,
    /// How the walk ended.
    pub end: End,
    /// Why the trace is not reliable, if it is not.
    pub unreliable: Option<Unreliable>,
    /// The stacks the walk could read (the task's; for a running task also its CPU's).
    pub stacks: Vec<(StackKind, StackRange)>,
}

/// The unwinder's rules for the image's kernel version.
pub fn config(kernel: &Kernel<'_, '_>, max_frames: usize) -> Config {
    let (major, minor) = kernel.image.version.unwrap_or((6, 12));
    Config { max_frames: max_frames.max(1), ..Config::for_kernel(major, minor) }
}

/// Walks one task's stack.
pub fn unwind_task(
    kernel: &Kernel<'_, '_>,
    tables: &Tables,
    config: Config,
    task: &Task,
) -> Result<TaskTrace, VmcoreError> {
    let start = kernel.start(task)?;
    let mut named: Vec<(StackKind, StackRange)> = vec![(StackKind::Task, task.stack)];
    let (ip, sp, bp, exact) = match start {
        Start::Blocked { ip, sp, bp, exact } => (ip, sp, bp, exact),
        Start::Running { cpu, ip, sp, bp } => {
            named.extend(kernel.cpu_stacks(cpu));
            (ip, sp, bp, true)
        }
        Start::User { ip, .. } => {
            // Nothing of the kernel is on this CPU: the trace is the user-mode ip.
            let frame = Frame { ip, sp: 0, bp: 0, signal: true, regs: None, user_mode: true };
            return Ok(TaskTrace {
                task: task.clone(),
                start,
                frames: vec![frame],
                end: End::UserMode,
                unreliable: None,
                stacks: named,
            });
        }
    };
    let stacks: Vec<StackRange> = named.iter().map(|(_, r)| *r).collect();
    let views: Vec<_> = tables.owned.iter().map(OwnedTable::table).collect();
    let modules = ModuleTables::new(&views);
    let unwinder = Unwinder::new(&modules, &stacks).with_config(config);
    let mut mem = kernel.memory();
    let mut state = unwinder.start(ip, sp, bp, exact);
    let mut frames = Vec::new();
    let trace = unwinder.walk_with(&mut state, &mut mem, |f| {
        frames.push(*f);
        true
    });
    Ok(TaskTrace { task: task.clone(), start, frames, end: trace.end, unreliable: trace.unreliable, stacks: named })
}
