//! Sharing identical states: most instructions of a function have the same state as their
//! neighbour, and objtool stores one copy of each distinct state.

use core::num::NonZeroU32;

use rustc_hash::FxHashMap;

use crate::state::CfiState;

/// A handle to an interned [`CfiState`]: equal handles mean equal states (all fields).
///
/// Stored as index + 1, so that `Option<CfiId>` takes four bytes: `orc-check` keeps one per
/// instruction.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct CfiId(NonZeroU32);

impl CfiId {
    /// The handle's index in interning order.
    pub const fn index(self) -> usize {
        (self.0.get() - 1) as usize
    }

    const fn from_index(index: u32) -> CfiId {
        match NonZeroU32::new(index.wrapping_add(1)) {
            Some(n) => CfiId(n),
            None => panic!("fewer than 2^32 - 1 distinct states"),
        }
    }
}

/// A set of distinct states, each stored once.
///
/// [`CfiState::UNKNOWN`] and [`CfiState::FUNCTION_ENTRY`] are interned first, as
/// [`Interner::UNKNOWN`] and [`Interner::FUNCTION_ENTRY`].
#[derive(Clone, Debug)]
pub struct Interner {
    /// Fx hashing: states are small plain records hashed once per instruction visited, and
    /// SipHash (std's default, built against hash flooding, which is no concern here) was a
    /// fifth of `orctool check`'s instructions.
    ids: FxHashMap<CfiState, CfiId>,
    states: Vec<CfiState>,
}

impl Default for Interner {
    fn default() -> Interner {
        Interner::new()
    }
}

impl Interner {
    /// The handle of [`CfiState::UNKNOWN`].
    pub const UNKNOWN: CfiId = CfiId::from_index(0);
    /// The handle of [`CfiState::FUNCTION_ENTRY`].
    pub const FUNCTION_ENTRY: CfiId = CfiId::from_index(1);

    /// An interner holding the two predefined states.
    pub fn new() -> Interner {
        let mut interner = Interner {
            ids: FxHashMap::default(),
            states: Vec::new(),
        };
        interner.intern(&CfiState::UNKNOWN);
        interner.intern(&CfiState::FUNCTION_ENTRY);
        interner
    }

    /// The handle of `state`, adding it if it is new.
    pub fn intern(&mut self, state: &CfiState) -> CfiId {
        if let Some(&id) = self.ids.get(state) {
            return id;
        }
        let id = CfiId::from_index(u32::try_from(self.states.len()).expect("fewer than 2^32 distinct states"));
        self.states.push(*state);
        self.ids.insert(*state, id);
        id
    }

    /// The state behind a handle from this interner.
    ///
    /// # Panics
    /// If `id` came from another interner and is out of range.
    pub fn get(&self, id: CfiId) -> &CfiState {
        &self.states[id.index()]
    }

    /// The number of distinct states.
    pub fn len(&self) -> usize {
        self.states.len()
    }

    /// Always false: the predefined states are there from the start.
    pub fn is_empty(&self) -> bool {
        self.states.is_empty()
    }
}
