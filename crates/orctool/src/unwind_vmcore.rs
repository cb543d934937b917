//! `orctool unwind --vmcore FILE --vmlinux F`: every task's kernel stack in a crash dump
//! (orc-vmcore does the reading and walking; this file parses arguments and prints).

use std::path::Path;

use orc_unwind::{End, Frame};
use orc_vmcore::{unwind_task, Image, Kernel, StackKind, Start, Tables, TaskTrace, Vmcore};
use serde::Serialize;

use super::{emit, JsonFrame, UnwindArgs};
use crate::input::{read_input, FileError};

/// The dump and image, opened and checked against each other.
pub(crate) struct Opened {
    pub dump_bytes: crate::input::InputBytes,
    pub image_bytes: crate::input::InputBytes,
}

/// Maps both files (errors name the file at fault).
pub(crate) fn open(vmcore: &Path, vmlinux: Option<&Path>) -> Result<Opened, FileError> {
    let vmlinux = vmlinux.ok_or_else(|| {
        FileError::new(vmcore, "--vmcore needs --vmlinux (the -dbg image the dump's kernel was built as)")
    })?;
    Ok(Opened { dump_bytes: read_input(vmcore)?, image_bytes: read_input(vmlinux)? })
}

/// The error of a dump, on the file responsible for it.
pub(crate) fn error(vmcore: &Path, vmlinux: &Path, e: orc_vmcore::VmcoreError) -> FileError {
    use orc_vmcore::VmcoreError as E;
    match e {
        E::Image(_) | E::Debug(_) => FileError::new(vmlinux, e),
        _ => FileError::new(vmcore, e),
    }
}

fn state_letter(state: u32) -> char {
    // TASK_RUNNING 0, INTERRUPTIBLE 1, UNINTERRUPTIBLE 2, __TASK_STOPPED 4, __TASK_TRACED 8,
    // TASK_PARKED 0x40, TASK_DEAD 0x80, TASK_NOLOAD|UNINTERRUPTIBLE = idle (0x402).
    match state {
        0 => 'R',
        s if s & 0x400 != 0 => 'I',
        s if s & 1 != 0 => 'S',
        s if s & 2 != 0 => 'D',
        s if s & 0xc != 0 => 'T',
        s if s & 0x40 != 0 => 'P',
        s if s & 0x80 != 0 => 'X',
        _ => '?',
    }
}

fn end_text(end: &End) -> String {
    match end {
        End::EndOfStack => "end of stack".into(),
        End::UserMode => "user-mode registers".into(),
        End::Error(e) => format!("error: {e}"),
        End::NotText => "the last address is not in any text".into(),
        End::FrameLimit => "frame limit".into(),
        End::BufferFull => "buffer full".into(),
    }
}

#[derive(Serialize)]
struct JsonTask {
    pid: i32,
    tgid: i32,
    comm: String,
    state: String,
    task: String,
    cpu: Option<usize>,
    start: &'static str,
    frames: Vec<JsonFrame>,
    end: String,
    reliable: bool,
    unreliable: Option<String>,
}

fn start_name(s: &Start) -> &'static str {
    match s {
        Start::Blocked { .. } => "blocked",
        Start::Running { .. } => "running",
        Start::User { .. } => "user",
    }
}

fn frame_name(kernel: &Kernel<'_, '_>, tables: &Tables, f: &Frame) -> Option<String> {
    if f.user_mode && f.ip < 0xffff_8000_0000_0000 {
        return None;
    }
    // A return address may point just past a call to a noreturn function: the function is
    // found at ip - 1; the offset printed is of ip itself, as the kernel prints it.
    let at = if f.signal { f.ip } else { f.ip.wrapping_sub(1) };
    if let Some((func, off)) = kernel.image.function_at(at.wrapping_sub(kernel.kaslr)) {
        return Some(format!("{}+{:#x}/{:#x}", func.name, off + (f.ip - at), func.size));
    }
    let (module, func, off, size) = tables.module_function(at)?;
    Some(format!("{func}+{:#x}/{size:#x} [{module}]", off + (f.ip - at)))
}

/// The name of a frame, `(user)` for a user-mode ip, `?` when no symbol covers it.
fn frame_label(kernel: &Kernel<'_, '_>, tables: &Tables, f: &Frame) -> String {
    frame_name(kernel, tables, f).unwrap_or_else(|| if f.user_mode { "(user)".into() } else { "?".into() })
}

/// Runs `unwind --vmcore`.
pub(crate) fn run(args: &UnwindArgs, vmcore: &Path) -> Result<i32, FileError> {
    if let Some(m) = args.modules.first() {
        return Err(FileError::new(
            Path::new(m),
            "--module is for --snapshot: with --vmcore, modules' tables and names are read from the dump",
        ));
    }
    let vmlinux = args.vmlinux.as_deref();
    let opened = open(vmcore, vmlinux)?;
    let vmlinux = vmlinux.expect("open checked it");
    let dump = Vmcore::parse(&opened.dump_bytes).map_err(|e| error(vmcore, vmlinux, e))?;
    let image = Image::parse(&opened.image_bytes).map_err(|e| error(vmcore, vmlinux, e))?;
    let kernel = Kernel::new(&dump, &image).map_err(|e| error(vmcore, vmlinux, e))?;
    let tables = Tables::new(&kernel).map_err(|e| error(vmcore, vmlinux, e))?;
    let tasks = kernel.tasks().map_err(|e| error(vmcore, vmlinux, e))?;
    let config = orc_vmcore::walk::config(&kernel, args.max_frames);
    let mut out = String::new();
    let mut failed = 0usize;
    let mut frames_total = 0usize;
    for task in &tasks {
        let trace = match unwind_task(&kernel, &tables, config, task) {
            Ok(t) => t,
            Err(e) => {
                failed += 1;
                if args.json {
                    out += &serde_json::json!({"pid": task.pid, "comm": task.comm, "task": format!("{:#x}", task.address), "error": e.to_string()}).to_string();
                    out.push('\n');
                } else {
                    out += &format!("task {} ({}) {:#x}: {e}\n\n", task.pid, task.comm, task.address);
                }
                continue;
            }
        };
        frames_total += trace.frames.len();
        if matches!(trace.end, End::Error(_)) {
            failed += 1;
        }
        if args.json {
            out += &serde_json::to_string(&json_task(&kernel, &tables, &trace)).expect("plain data serializes");
            out.push('\n');
        } else {
            text_task(&kernel, &tables, &trace, &mut out);
        }
    }
    if !args.json {
        out += &format!(
            "{} tasks, {frames_total} frames, {failed} walks ended in an error (kernel {}, KASLR offset {:#x}, {} modules)\n",
            tasks.len(),
            image.release.as_deref().unwrap_or("?"),
            kernel.kaslr,
            tables.modules.len()
        );
    }
    emit(&out);
    Ok(if failed > 0 { 1 } else { 0 })
}

fn json_task(kernel: &Kernel<'_, '_>, tables: &Tables, t: &TaskTrace) -> JsonTask {
    JsonTask {
        pid: t.task.pid,
        tgid: t.task.tgid,
        comm: t.task.comm.clone(),
        state: state_letter(t.task.state).to_string(),
        task: format!("{:#x}", t.task.address),
        cpu: t.task.cpu,
        start: start_name(&t.start),
        frames: t.frames.iter().map(|f| JsonFrame::of(f, frame_label(kernel, tables, f))).collect(),
        end: end_text(&t.end),
        reliable: t.unreliable.is_none(),
        unreliable: t.unreliable.map(|u| format!("{u:?}")),
    }
}

fn text_task(kernel: &Kernel<'_, '_>, tables: &Tables, t: &TaskTrace, out: &mut String) {
    let cpu = t.task.cpu.map(|c| format!(" on CPU {c}")).unwrap_or_default();
    *out += &format!(
        "task {} ({}) {} {:#x}{cpu}, {}\n",
        t.task.pid,
        t.task.comm,
        state_letter(t.task.state),
        t.task.address,
        start_name(&t.start)
    );
    if t.stacks.len() > 1 {
        let list: Vec<String> = t
            .stacks
            .iter()
            .map(|(kind, r)| {
                let name = match kind {
                    StackKind::Task => "task".to_string(),
                    StackKind::Irq => "irq".to_string(),
                    StackKind::Exception(n) => n.clone(),
                    StackKind::Entry => "entry".to_string(),
                };
                format!("{name} {:#x}-{:#x}", r.start, r.end)
            })
            .collect();
        *out += &format!("  stacks: {}\n", list.join(", "));
    }
    for (i, f) in t.frames.iter().enumerate() {
        let name = frame_label(kernel, tables, f);
        *out += &format!("  #{i:<3} {:#018x} {name}{}\n", f.ip, if f.signal && i > 0 { " (exact)" } else { "" });
    }
    *out += &format!(
        "  end: {}; {}\n\n",
        end_text(&t.end),
        match &t.unreliable {
            None => "reliable".to_string(),
            Some(u) => format!("unreliable ({u:?})"),
        }
    );
}
