//! Stack memory: the trait the embedder implements, the stack ranges it declares, and two
//! ready-made implementations over byte slices (a snapshot of one or several stacks).

/// Reads stack memory for the unwinder.
///
/// The unwinder asks only for 8-byte words that lie entirely inside one of the
/// [`StackRange`]s it was given (it checks before asking), so an implementation over a copy of
/// those ranges never sees an address outside them. Return `None` for a word that cannot be
/// read; the unwinder then stops with [`crate::UnwindError::BadRead`].
pub trait Memory {
    /// The little-endian 64-bit word at `addr`.
    fn read_u64(&mut self, addr: u64) -> Option<u64>;
}

impl<F: FnMut(u64) -> Option<u64>> Memory for F {
    #[inline]
    fn read_u64(&mut self, addr: u64) -> Option<u64> {
        self(addr)
    }
}

/// One stack the unwinder may read: `[start, end)`.
///
/// The embedder lists every stack a trace may cross (for a kernel: the IRQ stack, the
/// exception stacks, the entry stack, the task stack). The order of the list does not matter;
/// the walk itself records which stacks it has left (see [`crate::UnwindError::StackRevisited`]).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct StackRange {
    /// Lowest address of the stack.
    pub start: u64,
    /// One past the highest address of the stack (the initial stack pointer of an empty stack).
    pub end: u64,
}

impl StackRange {
    /// `[start, end)`.
    pub const fn new(start: u64, end: u64) -> StackRange {
        StackRange { start, end }
    }

    /// True when `[addr, addr + len)` lies inside this stack. Never overflows.
    #[inline]
    pub const fn contains(&self, addr: u64, len: u64) -> bool {
        addr >= self.start && addr <= self.end && len <= self.end - addr
    }

    /// True when a stack pointer of value `sp` belongs to this stack: `start <= sp <= end`
    /// (the end itself is the stack pointer of an empty stack).
    #[inline]
    pub const fn holds_sp(&self, sp: u64) -> bool {
        sp >= self.start && sp <= self.end
    }
}

/// A copy of one stack: its bytes and the address of the first one.
///
/// Implements [`Memory`] over the copy; reads outside it return `None`.
#[derive(Clone, Copy, Debug)]
pub struct StackSnapshot<'a> {
    /// Address of `bytes[0]`.
    pub base: u64,
    /// The stack contents, lowest address first.
    pub bytes: &'a [u8],
}

impl<'a> StackSnapshot<'a> {
    /// A copy of the stack at `base`.
    pub const fn new(base: u64, bytes: &'a [u8]) -> Self {
        StackSnapshot { base, bytes }
    }

    /// The range this copy covers (empty if `base + len` overflows).
    pub fn range(&self) -> StackRange {
        match self.base.checked_add(self.bytes.len() as u64) {
            Some(end) => StackRange::new(self.base, end),
            None => StackRange::new(self.base, self.base),
        }
    }

    /// The word at `addr`, if all 8 bytes are in the copy.
    #[inline]
    pub fn word(&self, addr: u64) -> Option<u64> {
        let off = addr.checked_sub(self.base)?;
        if off.checked_add(8)? > self.bytes.len() as u64 {
            return None;
        }
        let off = off as usize;
        let bytes: [u8; 8] = self.bytes.get(off..off + 8)?.try_into().ok()?;
        Some(u64::from_le_bytes(bytes))
    }
}

impl Memory for StackSnapshot<'_> {
    #[inline]
    fn read_u64(&mut self, addr: u64) -> Option<u64> {
        self.word(addr)
    }
}

/// Several stack copies (an IRQ stack and a task stack, say) read as one memory.
#[derive(Clone, Copy, Debug)]
pub struct Snapshots<'s, 'a>(pub &'s [StackSnapshot<'a>]);

impl Memory for Snapshots<'_, '_> {
    #[inline]
    fn read_u64(&mut self, addr: u64) -> Option<u64> {
        self.0.iter().find_map(|s| s.word(addr))
    }
}
