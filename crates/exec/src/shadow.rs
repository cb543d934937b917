//! The shadow stack of one thread: what its stack must hold, from the calls and signal
//! deliveries it has executed, independently of any unwind table.
//!
//! Rules (see `docs/verify-exec.md`):
//! - a `call` that executed pushes (slot = the new rsp, return address = the call's end);
//! - a signal delivered to a handler pushes two entries at the handler's first instruction:
//!   the signal frame (slot = rsp + 8, the interrupted ip, exact) and above it the handler's
//!   return address (slot = rsp, the `sa_restorer` trampoline), so that after the handler's
//!   `ret` the trampoline still has the interrupted context below it until `rt_sigreturn`;
//! - after every step, entries on the current stack whose slot is below rsp are dead (a `ret`,
//!   `longjmp`, C++ unwinding, `rt_sigreturn`), and entries on another stack are dead once
//!   the thread is back on a stack that holds older entries (leaving a signal alternate stack).

/// An identifier of one stack (a mapping holding stack pointers), process-wide.
pub type StackId = u32;

/// What the stack holds at an entry's slot.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Saved {
    /// A return address pushed by a call.
    ReturnAddress(u64),
    /// A signal frame: the interrupted context resumes at this exact ip.
    SignalFrame(u64),
}

/// One entry of the shadow stack.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Entry {
    /// Address of the stack slot (the return address, or the `ucontext` of a signal frame).
    pub slot: u64,
    /// The stack the slot is on.
    pub stack: StackId,
    /// What is saved there.
    pub saved: Saved,
}

/// One frame of a call chain: its ip and whether the ip is exact (the first frame, a frame
/// interrupted by a signal) or a return address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, serde::Serialize)]
pub struct ChainFrame {
    /// The instruction pointer.
    pub ip: u64,
    /// `ip` is the address of an instruction about to execute, not a return address.
    pub exact: bool,
}

/// The shadow stack of one thread.
#[derive(Clone, Debug, Default)]
pub struct ShadowStack {
    entries: Vec<Entry>,
}

impl ShadowStack {
    /// An empty shadow stack (a thread at exec, or a new thread).
    pub fn new() -> Self {
        ShadowStack::default()
    }

    /// The entries, oldest first.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Forgets everything (exec).
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// A call executed: the return address `ra` is now at `slot` (the new rsp).
    pub fn push_call(&mut self, slot: u64, stack: StackId, ra: u64) {
        self.entries.push(Entry { slot, stack, saved: Saved::ReturnAddress(ra) });
    }

    /// A signal handler was entered with rsp = `slot`, holding the return address
    /// `restorer`; the interrupted context resumes at `interrupted_ip`.
    pub fn push_signal(&mut self, slot: u64, stack: StackId, restorer: u64, interrupted_ip: u64) {
        self.entries.push(Entry { slot: slot.wrapping_add(8), stack, saved: Saved::SignalFrame(interrupted_ip) });
        self.entries.push(Entry { slot, stack, saved: Saved::ReturnAddress(restorer) });
    }

    /// Drops the entries that are dead now that rsp is `rsp` on stack `stack`.
    #[inline]
    pub fn retire(&mut self, rsp: u64, stack: StackId) {
        while let Some(top) = self.entries.last() {
            let dead = if top.stack == stack {
                top.slot < rsp
            } else {
                // Back on an older stack (returned or jumped out of an alternate signal
                // stack): everything pushed since is gone. A stack that holds no entry yet is
                // a new one (a fresh context); the older entries stay.
                self.entries.iter().any(|e| e.stack == stack)
            };
            if !dead {
                break;
            }
            self.entries.pop();
        }
    }

    /// The chain an unwind from `ip` must give: `ip` (exact), then the saved frames from the
    /// most recent down.
    pub fn expected_chain(&self, ip: u64, out: &mut Vec<ChainFrame>) {
        out.clear();
        out.push(ChainFrame { ip, exact: true });
        out.extend(self.entries.iter().rev().map(|e| match e.saved {
            Saved::ReturnAddress(ra) => ChainFrame { ip: ra, exact: false },
            Saved::SignalFrame(ip) => ChainFrame { ip, exact: true },
        }));
    }

    /// The stacks the entries are on, each once, into `out` (after what it holds).
    pub fn stacks(&self, out: &mut Vec<StackId>) {
        for e in &self.entries {
            if !out.contains(&e.stack) {
                out.push(e.stack);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ips(s: &ShadowStack, ip: u64) -> Vec<(u64, bool)> {
        let mut out = Vec::new();
        s.expected_chain(ip, &mut out);
        out.iter().map(|f| (f.ip, f.exact)).collect()
    }

    #[test]
    fn call_and_return() {
        let mut s = ShadowStack::new();
        s.push_call(0x7f00, 0, 0x1005);
        s.retire(0x7f00, 0);
        s.push_call(0x7ee0, 0, 0x2005);
        s.retire(0x7ee0, 0);
        assert_eq!(ips(&s, 0x3000), [(0x3000, true), (0x2005, false), (0x1005, false)]);
        // ret from the inner call: rsp goes past its slot.
        s.retire(0x7ee8, 0);
        assert_eq!(ips(&s, 0x2005), [(0x2005, true), (0x1005, false)]);
        // pushes below the remaining slot keep it.
        s.retire(0x7e00, 0);
        assert_eq!(s.entries().len(), 1);
    }

    #[test]
    fn longjmp_drops_every_frame_below_the_target() {
        let mut s = ShadowStack::new();
        for (i, slot) in [0x7f00u64, 0x7e00, 0x7d00, 0x7c00].into_iter().enumerate() {
            s.push_call(slot, 0, 0x1000 + i as u64);
        }
        s.retire(0x7e08, 0);
        assert_eq!(ips(&s, 0x5000), [(0x5000, true), (0x1000, false)]);
    }

    #[test]
    fn signal_frame_outlives_the_handler_return() {
        let mut s = ShadowStack::new();
        s.push_call(0x7f00, 0, 0x1005);
        // Handler entered with rsp = 0x7a00 holding the trampoline's address.
        s.push_signal(0x7a00, 0, 0x9000, 0x2222);
        assert_eq!(ips(&s, 0x4000), [(0x4000, true), (0x9000, false), (0x2222, true), (0x1005, false)]);
        // The handler's ret: rsp = 0x7a08, in the trampoline.
        s.retire(0x7a08, 0);
        assert_eq!(ips(&s, 0x9000), [(0x9000, true), (0x2222, true), (0x1005, false)]);
        // rt_sigreturn restores the interrupted rsp, above the frame.
        s.retire(0x7e80, 0);
        assert_eq!(ips(&s, 0x2222), [(0x2222, true), (0x1005, false)]);
    }

    #[test]
    fn alternate_stack_entries_die_when_back_on_the_older_stack() {
        let mut s = ShadowStack::new();
        s.push_call(0x7f00, 0, 0x1005);
        // The alternate stack is at higher addresses than the thread's stack.
        s.push_signal(0xa000, 1, 0x9000, 0x2222);
        s.push_call(0x9ff0, 1, 0x3005);
        s.retire(0x9ff0, 1);
        assert_eq!(s.entries().len(), 4);
        s.retire(0x7e80, 0);
        assert_eq!(ips(&s, 0x2222), [(0x2222, true), (0x1005, false)]);
    }

    #[test]
    fn a_new_stack_keeps_the_old_entries() {
        let mut s = ShadowStack::new();
        s.push_call(0x7f00, 0, 0x1005);
        s.retire(0x1_0000, 2);
        assert_eq!(s.entries().len(), 1);
    }
}
