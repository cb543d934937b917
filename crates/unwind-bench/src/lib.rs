//! The unwinder benchmark's fixture: a C program's real stacks, and four ways to unwind them.
//!
//! [`Fixture::load`] runs the C program (`c/chains.c`, built by `build.rs` with GCC `-O2
//! -fomit-frame-pointer`, static, with `.eh_frame`), which copies its own stack at the bottom
//! of call chains of the requested lengths; it reads the program's `.eh_frame` and converts
//! it to ORC ([`eh_frame_to_orc`]). Then the same [`Snapshot`] can be unwound by:
//!
//! - orctool's unwinder ([`Fixture::orc_walk`]) on the converted table,
//! - framehop 0.16 ([`Fixture::framehop_walk`]) on `.eh_frame` + `.eh_frame_hdr`,
//! - an uncached DWARF unwinder ([`DwarfUncached`]): for every frame, the FDE is found through
//!   `.eh_frame_hdr`'s binary-search table, its CIE parsed, and its CFI program evaluated in a
//!   fresh `gimli::UnwindContext` (allocated per frame), as a simple `.eh_frame` unwinder
//!   without caches does.

pub use orc_linked::eh_frame as eh_frame_to_orc;

use std::ops::Range;
use std::path::Path;

use framehop::x86_64::{CacheX86_64, UnwindRegsX86_64, UnwinderX86_64};
use framehop::{ExplicitModuleSectionInfo, FrameAddress, Module, Unwinder as _};
use gimli::{
    BaseAddresses, CfaRule, EhFrame, EhFrameHdr, EndianSlice, LittleEndian, ParsedEhFrameHdr, RegisterRule,
    UnwindContext, UnwindSection, X86_64,
};
use object::{Object, ObjectSection, ObjectSegment};
use orc_format::Layout;
use orc_unwind::{Frame, IndexKind, OrcTable, OwnedTable, StackRange, StackSnapshot, Trace, Unwinder};

/// Path of the C program built by `build.rs`.
pub const CHAINS_BIN: &str = env!("ORC_BENCH_CHAINS");

/// Frames below and above the chain: `capture`, `main`, `__libc_start_call_main`,
/// `__libc_start_main`, `_start`. A chain of length `n` gives a trace of `n + 5` frames.
pub const FIXED_FRAMES: usize = 5;

/// One captured stack: the registers at a point in `capture()` and a copy of the stack from
/// `rsp` to the top of the main thread's stack.
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// Number of chain functions between `main` and `capture`.
    pub chain_len: u64,
    /// Instruction pointer (exact: an instruction inside `capture`).
    pub rip: u64,
    /// Stack pointer.
    pub rsp: u64,
    /// Frame pointer register.
    pub rbp: u64,
    /// Address of `stack[0]`.
    pub base: u64,
    /// The stack bytes.
    pub stack: Vec<u8>,
}

impl Snapshot {
    /// The stack as unwinder memory.
    pub fn memory(&self) -> StackSnapshot<'_> {
        StackSnapshot::new(self.base, &self.stack)
    }

    /// Parses the records the C program writes (see `c/chains.c`).
    pub fn parse_all(mut bytes: &[u8]) -> Result<Vec<Snapshot>, String> {
        let mut out = Vec::new();
        let word = |b: &mut &[u8]| -> Result<u64, String> {
            let (w, rest) = b.split_first_chunk::<8>().ok_or("truncated snapshot")?;
            *b = rest;
            Ok(u64::from_le_bytes(*w))
        };
        while !bytes.is_empty() {
            let (magic, rest) = bytes.split_first_chunk::<8>().ok_or("truncated magic")?;
            if magic != b"ORCSNAP1" {
                return Err("bad snapshot magic".into());
            }
            bytes = rest;
            let chain_len = word(&mut bytes)?;
            let rip = word(&mut bytes)?;
            let rsp = word(&mut bytes)?;
            let rbp = word(&mut bytes)?;
            let base = word(&mut bytes)?;
            let len = usize::try_from(word(&mut bytes)?).map_err(|_| "length")?;
            if bytes.len() < len {
                return Err("truncated stack".into());
            }
            let (stack, rest) = bytes.split_at(len);
            bytes = rest;
            out.push(Snapshot { chain_len, rip, rsp, rbp, base, stack: stack.to_vec() });
        }
        Ok(out)
    }
}

/// The sections of the program the unwinders need.
pub struct Binary {
    /// The whole file.
    pub data: Vec<u8>,
    /// Address range of the executable segment(s).
    pub exec: Range<u64>,
    /// Address range of all loaded segments.
    pub mapped: Range<u64>,
    /// `.text`.
    pub text: (Range<u64>, Vec<u8>),
    /// `.eh_frame`.
    pub eh_frame: (Range<u64>, Vec<u8>),
    /// `.eh_frame_hdr`.
    pub eh_frame_hdr: (Range<u64>, Vec<u8>),
}

impl Binary {
    /// Reads the program at `path`.
    pub fn load(path: &Path) -> Result<Binary, String> {
        let data = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let file = object::File::parse(&*data).map_err(|e| e.to_string())?;
        let section = |name: &str| -> Result<(Range<u64>, Vec<u8>), String> {
            let s = file.section_by_name(name).ok_or_else(|| format!("no {name}"))?;
            let bytes = s.data().map_err(|e| e.to_string())?.to_vec();
            Ok((s.address()..s.address() + s.size(), bytes))
        };
        let (text, eh_frame, eh_frame_hdr) = (section(".text")?, section(".eh_frame")?, section(".eh_frame_hdr")?);
        let (mut exec, mut mapped) = ((u64::MAX, 0), (u64::MAX, 0));
        for seg in file.segments() {
            let (start, end) = (seg.address(), seg.address() + seg.size());
            mapped = (mapped.0.min(start), mapped.1.max(end));
            if let object::SegmentFlags::Elf { p_flags, .. } = seg.flags() {
                if p_flags.contains(object::elf::PF_X) {
                    exec = (exec.0.min(start), exec.1.max(end));
                }
            }
        }
        let (exec, mapped) = (exec.0..exec.1, mapped.0..mapped.1);
        drop(file);
        Ok(Binary { data, exec, mapped, text, eh_frame, eh_frame_hdr })
    }
}

/// Runs the C program for the given chain lengths and returns its snapshots.
pub fn capture(chain_lens: &[usize]) -> Result<Vec<Snapshot>, String> {
    let dir = std::env::temp_dir().join(format!("orc-unwind-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let out = dir.join("snapshots.bin");
    let status = std::process::Command::new(CHAINS_BIN)
        .arg(&out)
        .args(chain_lens.iter().map(|n| n.to_string()))
        .status()
        .map_err(|e| format!("{CHAINS_BIN}: {e}"))?;
    if !status.success() {
        return Err(format!("{CHAINS_BIN} failed: {status}"));
    }
    let bytes = std::fs::read(&out).map_err(|e| e.to_string())?;
    let _ = std::fs::remove_dir_all(&dir);
    Snapshot::parse_all(&bytes)
}

/// An uncached `.eh_frame` unwinder: every frame pays for the FDE search, CIE parse, CFI
/// evaluation and a fresh context allocation.
pub struct DwarfUncached<'a> {
    eh_frame: EhFrame<EndianSlice<'a, LittleEndian>>,
    hdr: ParsedEhFrameHdr<EndianSlice<'a, LittleEndian>>,
    bases: BaseAddresses,
}

impl<'a> DwarfUncached<'a> {
    /// Over a binary's `.eh_frame` and `.eh_frame_hdr`.
    pub fn new(bin: &'a Binary) -> Result<Self, gimli::Error> {
        let bases = BaseAddresses::default()
            .set_eh_frame_hdr(bin.eh_frame_hdr.0.start)
            .set_eh_frame(bin.eh_frame.0.start)
            .set_text(bin.text.0.start);
        let mut eh_frame = EhFrame::new(&bin.eh_frame.1, LittleEndian);
        eh_frame.set_address_size(8);
        let hdr = EhFrameHdr::new(&bin.eh_frame_hdr.1, LittleEndian).parse(&bases, 8)?;
        Ok(DwarfUncached { eh_frame, hdr, bases })
    }

    /// Unwinds a snapshot; pushes the frames' ips to `out`. Ends at an undefined return
    /// address (`_start`) or the first error.
    pub fn walk(&self, snap: &Snapshot, out: &mut Vec<u64>) -> Result<(), String> {
        let mem = snap.memory();
        let (mut ip, mut sp, mut bp) = (snap.rip, snap.rsp, snap.rbp);
        let mut first = true;
        let table = self.hdr.table().ok_or("no .eh_frame_hdr table")?;
        for _ in 0..1024 {
            out.push(ip);
            let pc = if first { ip } else { ip - 1 };
            first = false;
            let fde = table
                .fde_for_address(&self.eh_frame, &self.bases, pc, EhFrame::cie_from_offset)
                .map_err(|e| format!("{pc:#x}: {e}"))?;
            let mut ctx = Box::new(UnwindContext::new());
            let row = fde
                .unwind_info_for_address(&self.eh_frame, &self.bases, &mut ctx, pc)
                .map_err(|e| format!("{pc:#x}: {e}"))?;
            let cfa = match row.cfa() {
                CfaRule::RegisterAndOffset { register, offset } => {
                    let base = match *register {
                        X86_64::RSP => sp,
                        X86_64::RBP => bp,
                        r => return Err(format!("{pc:#x}: CFA on register {}", r.0)),
                    };
                    base.wrapping_add(*offset as u64)
                }
                CfaRule::Expression(e) => {
                    let e = e.get(&self.eh_frame).map_err(|e| e.to_string())?;
                    let off = eh_frame_to_orc::deref_rbp_plus(e.0.slice()).ok_or("unsupported CFA expression")?;
                    mem.word(bp.wrapping_add(off as u64)).ok_or("bad read")?
                }
            };
            let ra = match row.register(X86_64::RA) {
                Some(RegisterRule::Undefined) => return Ok(()),
                Some(RegisterRule::Offset(o)) => mem.word(cfa.wrapping_add(o as u64)).ok_or("bad read")?,
                r => return Err(format!("{pc:#x}: return address rule {r:?}")),
            };
            match row.register(X86_64::RBP) {
                None | Some(RegisterRule::SameValue) | Some(RegisterRule::Undefined) => {}
                Some(RegisterRule::Offset(o)) => bp = mem.word(cfa.wrapping_add(o as u64)).ok_or("bad read")?,
                r => return Err(format!("{pc:#x}: rbp rule {r:?}")),
            }
            sp = cfa;
            ip = ra;
        }
        Err("too many frames".into())
    }
}

/// The program, its snapshots, and every unwinder set up over it.
pub struct Fixture {
    /// The program.
    pub binary: Binary,
    /// Snapshots, one per requested chain length.
    pub snapshots: Vec<Snapshot>,
    /// The ORC table converted from `.eh_frame`, with the default index.
    pub orc: OwnedTable,
    /// What the conversion could not express.
    pub stats: eh_frame_to_orc::Stats,
    /// The converted pairs, unsorted (to build tables with other indexes).
    pub pairs: Vec<(u64, orc_format::RawEntry)>,
    /// framehop, with the program as its one module.
    pub framehop: UnwinderX86_64<Vec<u8>>,
}

impl Fixture {
    /// Builds the fixture for traces of `depths` frames each (at least [`FIXED_FRAMES`] + 1).
    pub fn load(depths: &[usize]) -> Result<Fixture, String> {
        let chain_lens: Vec<usize> = depths.iter().map(|d| d.saturating_sub(FIXED_FRAMES)).collect();
        let snapshots = capture(&chain_lens)?;
        let binary = Binary::load(Path::new(CHAINS_BIN))?;
        let conv = eh_frame_to_orc::convert(&binary.eh_frame.1, binary.eh_frame.0.start, binary.text.0.start, Layout::V3)
            .map_err(|e| e.to_string())?;
        let orc = OwnedTable::build(conv.pairs.iter().copied(), Layout::V3, binary.exec.clone(), IndexKind::default())
            .map_err(|e| format!("{e:?}"))?;

        let mut framehop = UnwinderX86_64::new();
        let info = ExplicitModuleSectionInfo {
            base_svma: 0,
            text_svma: Some(binary.text.0.clone()),
            text: Some(binary.text.1.clone()),
            eh_frame_svma: Some(binary.eh_frame.0.clone()),
            eh_frame: Some(binary.eh_frame.1.clone()),
            eh_frame_hdr_svma: Some(binary.eh_frame_hdr.0.clone()),
            eh_frame_hdr: Some(binary.eh_frame_hdr.1.clone()),
            ..Default::default()
        };
        framehop.add_module(Module::new("chains".into(), binary.mapped.clone(), 0, info));
        Ok(Fixture { binary, snapshots, orc, stats: conv.stats, pairs: conv.pairs, framehop })
    }

    /// A table over the converted entries with another index.
    pub fn orc_table_with(&self, index: IndexKind) -> OwnedTable {
        OwnedTable::build(self.pairs.iter().copied(), Layout::V3, self.binary.exec.clone(), index).unwrap()
    }

    /// orctool's walk of `snap` with `table` into `out` (whole frames).
    #[inline]
    pub fn orc_walk(table: &OrcTable<'_>, snap: &Snapshot, out: &mut [Frame]) -> Trace {
        let mut mem = snap.memory();
        let stacks = [mem.range()];
        let unwinder = Unwinder::new(table, &stacks);
        let mut state = unwinder.start(snap.rip, snap.rsp, snap.rbp, true);
        unwinder.walk(&mut state, &mut mem, out)
    }

    /// [`Fixture::orc_walk_ips`] through a lookup cache (see `orc_unwind::CachedLookup`).
    #[inline]
    pub fn orc_walk_ips_cached<L: orc_unwind::OrcLookup>(lookup: &L, snap: &Snapshot, out: &mut Vec<u64>) -> Trace {
        out.clear();
        let mut mem = snap.memory();
        let stacks = [mem.range()];
        let unwinder = Unwinder::new(lookup, &stacks);
        let mut state = unwinder.start(snap.rip, snap.rsp, snap.rbp, true);
        unwinder.walk_with(&mut state, &mut mem, |f| {
            out.push(f.ip);
            true
        })
    }

    /// orctool's walk of `snap` with `table`, keeping only the ips (what the framehop and
    /// DWARF walks produce too) in `out`, which is cleared first.
    #[inline]
    pub fn orc_walk_ips(table: &OrcTable<'_>, snap: &Snapshot, out: &mut Vec<u64>) -> Trace {
        out.clear();
        let mut mem = snap.memory();
        let stacks = [mem.range()];
        let unwinder = Unwinder::new(table, &stacks);
        let mut state = unwinder.start(snap.rip, snap.rsp, snap.rbp, true);
        unwinder.walk_with(&mut state, &mut mem, |f| {
            out.push(f.ip);
            true
        })
    }

    /// The stack range of a snapshot.
    pub fn stack_range(snap: &Snapshot) -> StackRange {
        snap.memory().range()
    }

    /// framehop's walk of `snap`; pushes the frames' addresses (return addresses as they are,
    /// not minus one) to `out`.
    #[inline]
    pub fn framehop_walk(&self, cache: &mut CacheX86_64, snap: &Snapshot, out: &mut Vec<u64>) -> Result<(), String> {
        let mem = snap.memory();
        let mut read = |addr: u64| mem.word(addr).ok_or(());
        let mut iter = self.framehop.iter_frames(
            snap.rip,
            UnwindRegsX86_64::new(snap.rip, snap.rsp, snap.rbp),
            cache,
            &mut read,
        );
        loop {
            match iter.next() {
                Ok(Some(FrameAddress::InstructionPointer(ip))) => out.push(ip),
                Ok(Some(FrameAddress::ReturnAddress(ra))) => out.push(ra.get()),
                Ok(None) => return Ok(()),
                Err(e) => return Err(e.to_string()),
            }
        }
    }
}
