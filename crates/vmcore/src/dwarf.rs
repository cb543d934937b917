//! Structure layouts from the kernel image's DWARF (the `-dbg` vmlinux): member offsets and
//! sizes of `task_struct` and the other structures a dump is read through. Nothing about them
//! is hard-coded: configurations and versions move members around.

use std::collections::HashMap;

use gimli::{AttributeValue, EndianSlice, LittleEndian, UnitOffset};
use orc_elf::ElfFile;

use crate::VmcoreError;

type R<'d> = EndianSlice<'d, LittleEndian>;

/// A structure or union: its size and members (embedded structures and unions expanded).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Layout {
    /// `sizeof`.
    pub size: u64,
    /// The members in declaration order.
    pub members: Vec<Member>,
}

/// One member of a [`Layout`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// Its name; `None` for an anonymous structure or union, whose members are searched as if
    /// they were the parent's.
    pub name: Option<String>,
    /// Byte offset in the parent.
    pub offset: u64,
    /// Its size in bytes, when the type has one.
    pub size: Option<u64>,
    /// The layout of an embedded structure or union.
    pub layout: Option<Box<Layout>>,
}

impl Layout {
    /// The offset and member at a dotted path (`thread.sp`), through anonymous members.
    pub fn member(&self, path: &str) -> Option<(u64, &Member)> {
        let (first, rest) = match path.split_once('.') {
            Some((a, b)) => (a, Some(b)),
            None => (path, None),
        };
        let (off, m) = self.direct(first)?;
        match rest {
            None => Some((off, m)),
            Some(rest) => {
                let (inner, m) = m.layout.as_deref()?.member(rest)?;
                Some((off.wrapping_add(inner), m))
            }
        }
    }

    fn direct(&self, name: &str) -> Option<(u64, &Member)> {
        for m in &self.members {
            match &m.name {
                Some(n) if n == name => return Some((m.offset, m)),
                None => {
                    if let Some((off, inner)) = m.layout.as_deref().and_then(|l| l.direct(name)) {
                        return Some((m.offset.wrapping_add(off), inner));
                    }
                }
                _ => {}
            }
        }
        None
    }

    /// The offset of a member path, or an error naming the structure.
    pub fn offset(&self, structure: &str, path: &str) -> Result<u64, VmcoreError> {
        self.member(path)
            .map(|(o, _)| o)
            .ok_or_else(|| VmcoreError::Debug(format!("struct {structure} has no member {path}")))
    }
}

/// The layouts found, by structure name.
#[derive(Clone, Debug, Default)]
pub struct Types {
    layouts: HashMap<String, Layout>,
}

impl Types {
    /// A layout by its structure (or union) name.
    pub fn get(&self, name: &str) -> Option<&Layout> {
        self.layouts.get(name)
    }

    /// A layout that must exist.
    pub fn require(&self, name: &str) -> Result<&Layout, VmcoreError> {
        self.get(name).ok_or_else(|| VmcoreError::Debug(format!("no struct {name} in the debug info")))
    }

    /// Layouts built by hand (tests).
    pub fn from_layouts(layouts: impl IntoIterator<Item = (String, Layout)>) -> Types {
        Types { layouts: layouts.into_iter().collect() }
    }
}

/// Embedded structures deeper than this are not expanded (no kernel path needs more).
const MAX_DEPTH: usize = 6;

/// Reads the layouts of the `required` structures and of any `optional` one met on the way,
/// scanning compilation units in order and stopping once every required one is found.
pub fn read_types(file: &ElfFile<'_>, required: &[&str], optional: &[&str]) -> Result<Types, VmcoreError> {
    let section = |name: &str| -> R<'_> {
        let data = file.section_by_name(name).ok().flatten().map(|s| s.data).unwrap_or(&[]);
        EndianSlice::new(data, LittleEndian)
    };
    if file.section_by_name(".debug_info").ok().flatten().is_none_or(|s| s.data.is_empty()) {
        return Err(VmcoreError::Debug("the image has no debug info (.debug_info): give the -dbg vmlinux".into()));
    }
    let dwarf = gimli::Dwarf::load(|id| -> Result<R<'_>, gimli::Error> { Ok(section(id.name())) })
        .map_err(|e| VmcoreError::Debug(format!("DWARF: {e}")))?;
    let dw = |e: gimli::Error| VmcoreError::Debug(format!("DWARF: {e}"));
    let mut types = Types::default();
    let mut missing: Vec<&str> = required.to_vec();
    let mut units = dwarf.units();
    while let Some(header) = units.next().map_err(dw)? {
        if missing.is_empty() {
            break;
        }
        let unit = dwarf.unit(header).map_err(dw)?;
        let mut tree = unit.entries_tree(None).map_err(dw)?;
        let root = tree.root().map_err(dw)?;
        let mut children = root.children();
        while let Some(child) = children.next().map_err(dw)? {
            let e = child.entry();
            if !matches!(e.tag(), gimli::DW_TAG_structure_type | gimli::DW_TAG_union_type)
                || e.has_attr(gimli::DW_AT_declaration)
            {
                continue;
            }
            let Some(name) = e.attr_value(gimli::DW_AT_name).and_then(|v| dwarf.attr_string(&unit, v).ok()) else {
                continue;
            };
            let Ok(name) = name.to_string() else { continue };
            let wanted = missing.contains(&name) || (optional.contains(&name) && !types.layouts.contains_key(name));
            if !wanted {
                continue;
            }
            let layout = read_layout(&dwarf, &unit, e.offset(), 0).map_err(dw)?;
            missing.retain(|m| *m != name);
            types.layouts.insert(name.to_string(), layout);
        }
    }
    if let Some(m) = missing.first() {
        return Err(VmcoreError::Debug(format!("no struct {m} in the debug info")));
    }
    Ok(types)
}

fn udata(v: Option<AttributeValue<R<'_>>>) -> Option<u64> {
    v.and_then(|v| v.udata_value())
}

/// The layout of the structure or union at `offset`.
fn read_layout(
    dwarf: &gimli::Dwarf<R<'_>>,
    unit: &gimli::Unit<R<'_>>,
    offset: UnitOffset,
    depth: usize,
) -> gimli::Result<Layout> {
    let mut tree = unit.entries_tree(Some(offset))?;
    let root = tree.root()?;
    let size = udata(root.entry().attr_value(gimli::DW_AT_byte_size)).unwrap_or(0);
    let mut members = Vec::new();
    let mut children = root.children();
    while let Some(child) = children.next()? {
        let e = child.entry();
        if e.tag() != gimli::DW_TAG_member {
            continue;
        }
        let name = e
            .attr_value(gimli::DW_AT_name)
            .and_then(|v| dwarf.attr_string(unit, v).ok())
            .and_then(|s| s.to_string().ok().map(str::to_string));
        // Bit fields have no byte offset of their own; a union's members have none either (0).
        let offset = udata(e.attr_value(gimli::DW_AT_data_member_location)).unwrap_or(0);
        let (size, layout) = match e.attr_value(gimli::DW_AT_type) {
            Some(AttributeValue::UnitRef(t)) => type_info(dwarf, unit, t, depth)?,
            _ => (None, None),
        };
        members.push(Member { name, offset, size, layout: layout.map(Box::new) });
    }
    Ok(Layout { size, members })
}

/// A type's size, and its layout when it is an embedded structure or union.
fn type_info(
    dwarf: &gimli::Dwarf<R<'_>>,
    unit: &gimli::Unit<R<'_>>,
    mut t: UnitOffset,
    depth: usize,
) -> gimli::Result<(Option<u64>, Option<Layout>)> {
    for _ in 0..16 {
        let e = unit.entry(t)?;
        match e.tag() {
            gimli::DW_TAG_typedef
            | gimli::DW_TAG_const_type
            | gimli::DW_TAG_volatile_type
            | gimli::DW_TAG_atomic_type => match e.attr_value(gimli::DW_AT_type) {
                Some(AttributeValue::UnitRef(next)) => t = next,
                _ => return Ok((None, None)),
            },
            gimli::DW_TAG_structure_type | gimli::DW_TAG_union_type => {
                let size = udata(e.attr_value(gimli::DW_AT_byte_size));
                if depth >= MAX_DEPTH || e.has_attr(gimli::DW_AT_declaration) {
                    return Ok((size, None));
                }
                return Ok((size, Some(read_layout(dwarf, unit, t, depth + 1)?)));
            }
            gimli::DW_TAG_array_type => {
                if let Some(size) = udata(e.attr_value(gimli::DW_AT_byte_size)) {
                    return Ok((Some(size), None));
                }
                let elem = match e.attr_value(gimli::DW_AT_type) {
                    Some(AttributeValue::UnitRef(el)) => type_info(dwarf, unit, el, MAX_DEPTH)?.0,
                    _ => None,
                };
                let mut count = 1u64;
                let mut tree = unit.entries_tree(Some(t))?;
                let root = tree.root()?;
                let mut dims = root.children();
                while let Some(d) = dims.next()? {
                    let d = d.entry();
                    if d.tag() != gimli::DW_TAG_subrange_type {
                        continue;
                    }
                    let n = match (
                        udata(d.attr_value(gimli::DW_AT_count)),
                        udata(d.attr_value(gimli::DW_AT_upper_bound)),
                    ) {
                        (Some(c), _) => c,
                        (None, Some(u)) => u + 1,
                        (None, None) => 0,
                    };
                    count = count.saturating_mul(n);
                }
                return Ok((elem.map(|s| s.saturating_mul(count)), None));
            }
            gimli::DW_TAG_pointer_type => {
                return Ok((Some(udata(e.attr_value(gimli::DW_AT_byte_size)).unwrap_or(8)), None))
            }
            _ => return Ok((udata(e.attr_value(gimli::DW_AT_byte_size)), None)),
        }
    }
    Ok((None, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(name: Option<&str>, offset: u64, size: u64, layout: Option<Layout>) -> Member {
        Member { name: name.map(str::to_string), offset, size: Some(size), layout: layout.map(Box::new) }
    }

    #[test]
    fn member_paths_through_embedded_and_anonymous_members() {
        // struct task { int a; struct { long b; union { long c; int d; }; }; struct thread { long x; long sp; } thread; }
        let inner_union = Layout { size: 8, members: vec![m(Some("c"), 0, 8, None), m(Some("d"), 0, 4, None)] };
        let anon = Layout { size: 16, members: vec![m(Some("b"), 0, 8, None), m(None, 8, 8, Some(inner_union))] };
        let thread = Layout { size: 16, members: vec![m(Some("x"), 0, 8, None), m(Some("sp"), 8, 8, None)] };
        let task = Layout {
            size: 48,
            members: vec![
                m(Some("a"), 0, 4, None),
                m(None, 8, 16, Some(anon)),
                m(Some("thread"), 24, 16, Some(thread)),
            ],
        };
        assert_eq!(task.offset("task", "a").unwrap(), 0);
        assert_eq!(task.offset("task", "b").unwrap(), 8);
        assert_eq!(task.offset("task", "d").unwrap(), 16);
        assert_eq!(task.offset("task", "thread.sp").unwrap(), 32);
        assert_eq!(task.member("thread.sp").unwrap().1.size, Some(8));
        assert!(matches!(task.offset("task", "thread.bp"), Err(VmcoreError::Debug(m)) if m.contains("thread.bp")));
        assert!(task.member("nothing").is_none());
    }
}
