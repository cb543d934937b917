//! The snapshot format of `orctool unwind --snapshot` (docs/unwinder.md), parsed from text.
//! Its own module, with no other dependency than `serde_json` and `orc-elf`, so that the fuzz
//! target `snapshot_json` compiles this very file.

use serde_json::Value;

/// The snapshot, read and checked.
#[derive(Debug)]
pub struct Snapshot {
    pub rip: u64,
    pub rsp: u64,
    pub rbp: u64,
    pub exact: bool,
    pub pt_regs: Option<u64>,
    /// Name, base address and bytes of each stack.
    pub stacks: Vec<(String, u64, Vec<u8>)>,
    pub version: Option<(u32, u32)>,
}

/// A number written as `0x` hex or decimal.
pub fn parse_number(s: &str) -> Option<u64> {
    let s = s.trim();
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

fn parse_u64(v: &Value) -> Option<u64> {
    match v {
        Value::String(s) => parse_number(s),
        Value::Number(n) => n.as_u64(),
        _ => None,
    }
}

fn hex_bytes(s: &str) -> Option<Vec<u8>> {
    // Digit pairs as bytes, not as string slices: a non-ASCII character must be an error,
    // not a slice through the middle of it.
    let digits: Vec<u8> = s.bytes().filter(|c| !c.is_ascii_whitespace()).collect();
    if digits.len() % 2 != 0 {
        return None;
    }
    let nibble = |c: u8| char::from(c).to_digit(16).map(|d| d as u8);
    digits.chunks_exact(2).map(|p| Some(nibble(p[0])? << 4 | nibble(p[1])?)).collect()
}

/// Parses a snapshot; the error says what is wrong (the caller names the file).
pub fn parse(text: &str) -> Result<Snapshot, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("not a snapshot: {e}"))?;
    let bad = |what: &str| format!("snapshot: {what}");
    let regs = v.get("regs").ok_or_else(|| bad("no \"regs\""))?;
    let reg = |name: &str| regs.get(name).and_then(parse_u64).ok_or_else(|| bad(&format!("regs.{name} missing or not a number")));
    let mut stacks = Vec::new();
    for (i, s) in v.get("stacks").and_then(Value::as_array).ok_or_else(|| bad("no \"stacks\" array"))?.iter().enumerate() {
        let base = s.get("base").and_then(parse_u64).ok_or_else(|| bad(&format!("stacks[{i}].base missing")))?;
        let bytes = s
            .get("bytes")
            .and_then(Value::as_str)
            .and_then(hex_bytes)
            .ok_or_else(|| bad(&format!("stacks[{i}].bytes missing or not hex")))?;
        // A stack must lie inside the address space (the unwinder would see an empty one).
        base.checked_add(bytes.len() as u64)
            .ok_or_else(|| bad(&format!("stacks[{i}] runs past the end of the address space")))?;
        let name = s.get("name").and_then(Value::as_str).unwrap_or("stack").to_string();
        stacks.push((name, base, bytes));
    }
    let version = v
        .get("kernel")
        .and_then(|k| k.get("version"))
        .and_then(Value::as_str)
        .and_then(orc_elf::modinfo::parse_release)
        .map(|k| (k.major, k.minor));
    Ok(Snapshot {
        rip: reg("rip")?,
        rsp: reg("rsp")?,
        rbp: reg("rbp")?,
        exact: v.get("ip_is_exact").and_then(Value::as_bool).unwrap_or(true),
        pt_regs: v.get("pt_regs").and_then(parse_u64),
        stacks,
        version,
    })
}
