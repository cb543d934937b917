//! Every task's stack: the image's ORC table moved by KASLR, each task's start, the stacks it
//! may cross, one walk with `orc-unwind`.

use orc_unwind::{Config, End, Frame, IndexKind, ModuleTables, OwnedTable, StackRange, Unreliable, Unwinder};

use crate::kernel::{Kernel, Start, Task};
use crate::VmcoreError;

/// The unwind tables of a dump: the image's, at runtime addresses.
pub struct Tables {
    owned: Vec<OwnedTable>,
}

impl Tables {
    /// The image's table moved by the KASLR offset.
    pub fn new(kernel: &Kernel<'_, '_>) -> Result<Tables, VmcoreError> {
        let (mut pairs, layout) = kernel.image.orc_pairs()?;
        for p in &mut pairs {
            p.0 = p.0.wrapping_add(kernel.kaslr);
        }
        let lo = pairs.iter().map(|p| p.0).min().unwrap_or(0);
        let hi = pairs.iter().map(|p| p.0).max().unwrap_or(0).saturating_add(1);
        let table = OwnedTable::build(pairs, layout, lo..hi, IndexKind::default())
            .map_err(|e| VmcoreError::Image(format!("cannot index the ORC table: {e:?}")))?;
        Ok(Tables { owned: vec![table] })
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
}

/// The unwinder's rules for the image's kernel version.
pub fn config(kernel: &Kernel<'_, '_>, max_frames: usize) -> Config {
    let (major, minor) = kernel.image.version.unwrap_or((6, 12));
    Config { max_frames: max_frames.max(1), ..Config::for_kernel(major, minor) }
}

/// Walks one task's stack.
pub fn unwind_task(kernel: &Kernel<'_, '_>, tables: &Tables, config: Config, task: &Task) -> Result<TaskTrace, VmcoreError> {
    let start = kernel.start(task)?;
    let mut stacks: Vec<StackRange> = vec![task.stack];
    let (ip, sp, bp, exact) = match start {
        Start::Blocked { ip, sp, bp, exact } => (ip, sp, bp, exact),
        Start::Running { cpu, ip, sp, bp } => {
            stacks.extend(kernel.cpu_stacks(cpu).into_iter().map(|(_, r)| r));
            (ip, sp, bp, true)
        }
        Start::User { ip, .. } => {
            // Nothing of the kernel is on this CPU: the trace is the user-mode ip.
            let frame = Frame { ip, sp: 0, bp: 0, signal: true, regs: None, user_mode: true };
            return Ok(TaskTrace { task: task.clone(), start, frames: vec![frame], end: End::UserMode, unreliable: None });
        }
    };
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
    Ok(TaskTrace { task: task.clone(), start, frames, end: trace.end, unreliable: trace.unreliable })
}
