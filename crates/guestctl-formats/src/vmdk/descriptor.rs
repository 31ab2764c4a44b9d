//! The VMDK text descriptor ("# Disk DescriptorFile"), parsed from text. I/O-free.
//!
//! Keys are `name = value` lines (`CID`, `parentCID`, `createType`, `parentFileNameHint`;
//! the DDB and unknown keys are ignored; the first occurrence of a key wins, as with qemu's
//! substring search). Extent lines are `ACCESS SECTORS TYPE ["FILE" [OFFSET]]`.
//!
//! Where this differs from qemu's parser, on purpose:
//! - ZERO extents and RDONLY extents are read (qemu silently drops every line that is not
//!   `RW` with a file name, which shifts the extents after it).
//! - NOACCESS extents and unknown extent types are errors (qemu drops those lines too).
//! - FLAT extents without an offset start at sector 0, and VMFS extents may carry an offset
//!   (qemu requires and forbids it, respectively).
//!
//! Like qemu, extent lines of 0 sectors are skipped.

use guestctl_block::{Error, Result};

/// Largest descriptor we read (embedded or standalone).
pub const MAX_DESCRIPTOR_BYTES: u64 = 1 << 20;
/// Most extent lines we accept.
pub const MAX_EXTENTS: usize = 4096;

/// How an extent may be accessed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Read-write.
    ReadWrite,
    /// Read-only.
    ReadOnly,
    /// No access: an image with such an extent is refused ([`guestctl_block::ErrorKind::Unsupported`])
    /// rather than read as zeros, because its data exists but must not be read. (qemu drops
    /// the line, which silently shifts every later extent.)
    NoAccess,
}

/// The kinds of extent a descriptor can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtentType {
    /// Raw data in a file, from a sector offset.
    Flat,
    /// A hosted sparse (KDMV) file.
    Sparse,
    /// Reads as zeros; no file.
    Zero,
    /// ESX raw data (read like FLAT).
    Vmfs,
    /// ESX COWD sparse: not read.
    VmfsSparse,
    /// ESX seSparse: not read.
    SeSparse,
    /// ESX raw device mappings: not read.
    VmfsRdm,
}

impl ExtentType {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "FLAT" => ExtentType::Flat,
            "SPARSE" => ExtentType::Sparse,
            "ZERO" => ExtentType::Zero,
            "VMFS" => ExtentType::Vmfs,
            "VMFSSPARSE" => ExtentType::VmfsSparse,
            "SESPARSE" => ExtentType::SeSparse,
            "VMFSRDM" | "VMFSRAW" => ExtentType::VmfsRdm,
            _ => return None,
        })
    }
    /// The keyword as written in descriptors.
    pub fn name(self) -> &'static str {
        match self {
            ExtentType::Flat => "FLAT",
            ExtentType::Sparse => "SPARSE",
            ExtentType::Zero => "ZERO",
            ExtentType::Vmfs => "VMFS",
            ExtentType::VmfsSparse => "VMFSSPARSE",
            ExtentType::SeSparse => "SESPARSE",
            ExtentType::VmfsRdm => "VMFSRDM",
        }
    }
}

/// One extent line: `ACCESS SECTORS TYPE ["FILE" [OFFSET]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtentLine {
    /// Access mode.
    pub access: Access,
    /// Guest sectors the extent covers.
    pub sectors: u64,
    /// Extent type.
    pub kind: ExtentType,
    /// File name (absent for ZERO).
    pub file: Option<String>,
    /// Start sector inside the file (FLAT/VMFS).
    pub offset: u64,
}

/// A parsed descriptor.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Descriptor {
    /// `CID`.
    pub cid: Option<u32>,
    /// `parentCID` (`ffffffff` when the disk has no parent).
    pub parent_cid: Option<u32>,
    /// `createType`.
    pub create_type: Option<String>,
    /// `parentFileNameHint`.
    pub parent_hint: Option<String>,
    /// Extent lines, in order.
    pub extents: Vec<ExtentLine>,
}

impl Descriptor {
    /// True when the descriptor names a parent (a delta disk): a non-empty
    /// `parentFileNameHint`. Like qemu, `parentCID` does not decide this; it is checked
    /// against the parent's `CID` before any data is read from the parent.
    pub fn has_parent(&self) -> bool {
        self.parent_hint.as_deref().is_some_and(|h| !h.is_empty())
    }
}

fn unquote(s: &str) -> &str {
    let s = s.trim();
    s.strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .unwrap_or(s)
}

/// Parses descriptor text. Unknown keys and DDB entries are ignored; a malformed extent line
/// is an error naming the line. Text after a NUL byte is ignored.
pub fn parse(text: &str) -> Result<Descriptor> {
    parse_with(text, true)
}

/// Parses only the keys of a descriptor, ignoring its extent lines: for the descriptor
/// embedded in a monolithic sparse file, whose extent line only names the file itself.
pub fn parse_keys(text: &str) -> Descriptor {
    // Never fails: extent lines are not looked at.
    parse_with(text, false).unwrap_or_default()
}

fn parse_with(text: &str, extents: bool) -> Result<Descriptor> {
    let text = text.split('\0').next().unwrap_or("");
    let mut d = Descriptor::default();
    let bad = |n: usize, msg: String| {
        Error::corrupt(format!("line {}: {msg}", n + 1)).structure("vmdk descriptor")
    };
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim_matches(|c: char| c.is_whitespace() || c == '\0');
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let first = line.split_whitespace().next().unwrap_or("");
        if matches!(first, "RW" | "RDONLY" | "NOACCESS") {
            if !extents {
                continue;
            }
            let e = parse_extent(line).map_err(|m| bad(n, m))?;
            if e.sectors == 0 {
                continue;
            }
            if d.extents.len() >= MAX_EXTENTS {
                return Err(bad(n, format!("more than {MAX_EXTENTS} extents")));
            }
            d.extents.push(e);
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            let (k, v) = (k.trim(), unquote(v));
            let hex = |v: &str| u32::from_str_radix(v, 16).ok();
            match k {
                "CID" if d.cid.is_none() => d.cid = hex(v),
                "parentCID" if d.parent_cid.is_none() => d.parent_cid = hex(v),
                "createType" if d.create_type.is_none() => d.create_type = Some(v.to_string()),
                "parentFileNameHint" if d.parent_hint.is_none() => {
                    d.parent_hint = Some(v.to_string())
                }
                _ => {}
            }
        }
    }
    Ok(d)
}

fn parse_extent(line: &str) -> std::result::Result<ExtentLine, String> {
    // ACCESS SECTORS TYPE ["FILE NAME" [OFFSET]]: the name is quoted and may hold spaces.
    let (head, rest) = match line.find('"') {
        Some(q) => (&line[..q], Some(&line[q..])),
        None => (line, None),
    };
    let mut words = head.split_whitespace();
    let access = match words.next() {
        Some("RW") => Access::ReadWrite,
        Some("RDONLY") => Access::ReadOnly,
        Some("NOACCESS") => Access::NoAccess,
        other => return Err(format!("bad extent access {other:?}")),
    };
    let sectors: u64 = words
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or("bad extent size")?;
    let kind_word = words.next().ok_or("missing extent type")?;
    let kind = ExtentType::parse(kind_word).ok_or(format!("unknown extent type {kind_word:?}"))?;
    let (file, offset) = match rest {
        Some(r) => {
            let r = &r[1..];
            let end = r.find('"').ok_or("unterminated file name")?;
            let name = &r[..end];
            let tail = r[end + 1..].trim();
            let offset = if tail.is_empty() {
                0
            } else {
                tail.split_whitespace()
                    .next()
                    .and_then(|s| s.parse().ok())
                    .ok_or("bad extent offset")?
            };
            (Some(name.to_string()), offset)
        }
        None => (None, 0),
    };
    if kind != ExtentType::Zero && file.is_none() {
        return Err(format!("{} extent without a file name", kind.name()));
    }
    Ok(ExtentLine {
        access,
        sectors,
        kind,
        file,
        offset,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_qemu_style_descriptor() {
        let d = parse(
            "# Disk DescriptorFile\nversion=1\nCID=52b4bd3c\nparentCID=ffffffff\n\
             createType=\"twoGbMaxExtentFlat\"\n\n# Extent description\n\
             RW 4194304 FLAT \"my disk-f001.vmdk\" 0\nRDONLY 100 FLAT \"b.vmdk\" 7\nRW 64 ZERO\n\
             \n# The Disk Data Base\n#DDB\nddb.virtualHWVersion = \"4\"\n",
        )
        .expect("valid");
        assert_eq!(d.cid, Some(0x52b4_bd3c));
        assert!(!d.has_parent());
        assert_eq!(d.create_type.as_deref(), Some("twoGbMaxExtentFlat"));
        assert_eq!(d.extents.len(), 3);
        assert_eq!(d.extents[0].file.as_deref(), Some("my disk-f001.vmdk"));
        assert_eq!(d.extents[1].offset, 7);
        assert_eq!(d.extents[1].access, Access::ReadOnly);
        assert_eq!(d.extents[2].kind, ExtentType::Zero);
    }

    #[test]
    fn parent_hint() {
        let d = parse("parentCID=1234abcd\nparentFileNameHint=\"base.vmdk\"\n").expect("ok");
        assert!(d.has_parent());
        assert_eq!(d.parent_hint.as_deref(), Some("base.vmdk"));
    }

    #[test]
    fn rejects_bad_extents() {
        assert!(parse("RW x FLAT \"a\"").is_err());
        assert!(parse("RW 10 BOGUS \"a\"").is_err());
        assert!(parse("RW 10 FLAT").is_err());
        assert!(parse("RW 10 FLAT \"a").is_err());
        assert!(parse("RW 10 FLAT \"a\" zz").is_err());
        let many = "RW 1 ZERO\n".repeat(MAX_EXTENTS + 1);
        assert!(parse(&many).is_err());
    }

    #[test]
    fn first_key_wins_and_nul_ends_the_text() {
        let d =
            parse("CID=1\nCID=2\ncreateType=\"a\"\ncreateType=\"b\"\n\0RW 5 ZERO\n").expect("ok");
        assert_eq!(d.cid, Some(1));
        assert_eq!(d.create_type.as_deref(), Some("a"));
        assert!(d.extents.is_empty());
    }

    #[test]
    fn zero_sector_lines_are_skipped_and_keys_only_mode_ignores_extents() {
        let d = parse("RW 0 FLAT \"a\" 0\nRW 3 ZERO\n").expect("ok");
        assert_eq!(d.extents.len(), 1);
        assert_eq!(d.extents[0].sectors, 3);
        let d = parse_keys("CID=fffffffe\nRW nonsense\nparentFileNameHint=\"p.vmdk\"\n");
        assert_eq!(d.cid, Some(0xffff_fffe));
        assert!(d.has_parent());
        assert!(d.extents.is_empty());
        // An empty hint names no parent; parentCID alone does not decide.
        assert!(!parse_keys("parentFileNameHint=\"\"\n").has_parent());
        assert!(parse_keys("parentCID=ffffffff\nparentFileNameHint=\"x\"\n").has_parent());
    }

    #[test]
    fn crlf_quotes_and_offsets() {
        let d =
            parse("createType=\"vmfs\"\r\nRW 8 VMFS \"a b.bin\"\r\nNOACCESS 4 FLAT \"c\" 9\r\n")
                .expect("ok");
        assert_eq!(d.create_type.as_deref(), Some("vmfs"));
        assert_eq!(d.extents[0].file.as_deref(), Some("a b.bin"));
        assert_eq!(d.extents[0].kind, ExtentType::Vmfs);
        assert_eq!(d.extents[1].access, Access::NoAccess);
        assert_eq!(d.extents[1].offset, 9);
        for t in ["SESPARSE", "VMFSSPARSE", "VMFSRDM", "VMFSRAW"] {
            let d = parse(&format!("RW 8 {t} \"x\"\n")).expect("parses; refused when opened");
            assert_eq!(d.extents.len(), 1);
        }
        assert!(parse("RW -1 FLAT \"a\" 0").is_err());
        assert!(parse("RW 99999999999999999999 FLAT \"a\" 0").is_err());
        assert!(parse("RW 1 FLAT \"a\" -5").is_err());
    }
}
