//! Reparse-point buffers (the `$REPARSE_POINT` attribute value), parsed without I/O.
//!
//! Layout (little-endian): `u32` tag at 0, `u16` data length at 4, 2 reserved bytes, then the
//! tag's data at 8. Symbolic links (`IO_REPARSE_TAG_SYMLINK`, 0xA000000C) and junctions
//! (`IO_REPARSE_TAG_MOUNT_POINT`, 0xA0000003) carry four `u16`s — substitute-name offset and
//! length, print-name offset and length, relative to the path buffer — then, for symlinks
//! only, a `u32` flags word (bit 0: relative target), then the UTF-16LE path buffer.
//!
//! Mapping to a guest link target ([`Reparse::link_target`]), from the substitute name:
//! - `\??\C:\x\y` (any drive letter) and `C:\x\y` → `/x/y`: the volume is taken as the guest
//!   root, as it is for the `C:` drive of a Windows guest;
//! - a relative symlink `..\x\y` → `../x/y`;
//! - a rooted `\x\y` → `/x/y`;
//! - other NT paths (`\??\Volume{guid}\...`, `\??\UNC\...`) name another volume or a network
//!   share and are refused as unsupported.
//!
//! Other tags (WOF-compressed files 0x80000017, deduplication 0x80000013, cloud files
//! 0x9000xxxA, ...) are reported as [`Reparse::Other`]; reading such a file is refused with the
//! tag named, since its data lives outside the `$DATA` stream.

use std::fmt;

/// `IO_REPARSE_TAG_SYMLINK`.
pub const TAG_SYMLINK: u32 = 0xA000_000C;
/// `IO_REPARSE_TAG_MOUNT_POINT` (junctions and volume mount points).
pub const TAG_MOUNT_POINT: u32 = 0xA000_0003;
/// `IO_REPARSE_TAG_WOF` (Windows Overlay Filter compressed files).
pub const TAG_WOF: u32 = 0x8000_0017;
/// `IO_REPARSE_TAG_DEDUP`.
pub const TAG_DEDUP: u32 = 0x8000_0013;
/// Largest reparse buffer NTFS allows (`MAXIMUM_REPARSE_DATA_BUFFER_SIZE`).
pub const MAX_REPARSE_SIZE: usize = 16 * 1024;

/// A parsed reparse point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reparse {
    /// A symbolic link.
    Symlink {
        /// The substitute name (what the link resolves to).
        substitute: String,
        /// The print name (what Windows shows).
        print: String,
        /// The `SYMLINK_FLAG_RELATIVE` flag.
        relative: bool,
    },
    /// A junction (mount point).
    MountPoint {
        /// The substitute name.
        substitute: String,
        /// The print name.
        print: String,
    },
    /// Any other tag.
    Other {
        /// The reparse tag.
        tag: u32,
    },
}

/// Why a reparse buffer could not be parsed or mapped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReparseError {
    /// Offset in the buffer of the faulty field.
    pub offset: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ReparseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "reparse data at byte {:#x}: {}",
            self.offset, self.message
        )
    }
}

impl std::error::Error for ReparseError {}

fn err(offset: usize, message: impl Into<String>) -> ReparseError {
    ReparseError {
        offset,
        message: message.into(),
    }
}

fn u16_at(b: &[u8], off: usize) -> Result<u16, ReparseError> {
    b.get(off..off + 2)
        .map(|s| u16::from_le_bytes([s[0], s[1]]))
        .ok_or_else(|| err(off, "field past the end of the buffer"))
}

fn u32_at(b: &[u8], off: usize) -> Result<u32, ReparseError> {
    b.get(off..off + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or_else(|| err(off, "field past the end of the buffer"))
}

fn utf16_name(
    buf: &[u8],
    base: usize,
    off: u16,
    len: u16,
    field: usize,
) -> Result<String, ReparseError> {
    let start = base + usize::from(off);
    let end = start + usize::from(len);
    if len % 2 != 0 {
        return Err(err(field, "name length is odd"));
    }
    let bytes = buf.get(start..end).ok_or_else(|| {
        err(
            field,
            format!("name at {start:#x}..{end:#x} lies past the end of the buffer"),
        )
    })?;
    let units: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    String::from_utf16(&units).map_err(|_| err(field, "name is not valid UTF-16"))
}

/// Parses a reparse buffer.
pub fn parse(buf: &[u8]) -> Result<Reparse, ReparseError> {
    if buf.len() > MAX_REPARSE_SIZE {
        return Err(err(
            0,
            format!("buffer of {} bytes is larger than 16 KiB", buf.len()),
        ));
    }
    let tag = u32_at(buf, 0)?;
    let data_len = usize::from(u16_at(buf, 4)?);
    if 8 + data_len > buf.len() {
        return Err(err(
            4,
            format!(
                "data length {data_len} runs past the end of the {}-byte buffer",
                buf.len()
            ),
        ));
    }
    let data = &buf[..8 + data_len];
    match tag {
        TAG_SYMLINK | TAG_MOUNT_POINT => {
            let sub_off = u16_at(data, 8)?;
            let sub_len = u16_at(data, 10)?;
            let print_off = u16_at(data, 12)?;
            let print_len = u16_at(data, 14)?;
            let (base, relative) = if tag == TAG_SYMLINK {
                (20, u32_at(data, 16)? & 1 != 0)
            } else {
                (16, false)
            };
            if base > data.len() {
                return Err(err(4, "data too short for the path buffer"));
            }
            let substitute = utf16_name(data, base, sub_off, sub_len, 8)?;
            let print = utf16_name(data, base, print_off, print_len, 12)?;
            Ok(if tag == TAG_SYMLINK {
                Reparse::Symlink {
                    substitute,
                    print,
                    relative,
                }
            } else {
                Reparse::MountPoint { substitute, print }
            })
        }
        _ => Ok(Reparse::Other { tag }),
    }
}

/// A short name for a reparse tag, for error messages.
pub fn tag_name(tag: u32) -> &'static str {
    match tag {
        TAG_SYMLINK => "symbolic link",
        TAG_MOUNT_POINT => "junction",
        TAG_WOF => "WOF compressed file",
        TAG_DEDUP => "deduplicated file",
        t if t & 0xFFFF_0FFF == 0x9000_001A => "cloud file",
        _ => "unknown reparse tag",
    }
}

impl Reparse {
    /// The guest link target (see the module docs), or an error for targets outside the
    /// volume and for tags that are not links.
    pub fn link_target(&self) -> Result<String, ReparseError> {
        match self {
            Reparse::Symlink {
                substitute,
                relative: true,
                ..
            } => Ok(substitute.replace('\\', "/")),
            Reparse::Symlink { substitute, .. } | Reparse::MountPoint { substitute, .. } => {
                map_absolute(substitute)
            }
            Reparse::Other { tag } => Err(err(
                0,
                format!("reparse tag {tag:#010x} ({}) is not a link", tag_name(*tag)),
            )),
        }
    }
}

fn map_absolute(name: &str) -> Result<String, ReparseError> {
    let rest = name.strip_prefix("\\??\\").unwrap_or(name);
    let b = rest.as_bytes();
    if b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':' {
        let tail = &rest[2..];
        let mapped = tail.replace('\\', "/");
        return Ok(if mapped.starts_with('/') {
            mapped
        } else {
            format!("/{mapped}")
        });
    }
    if rest.len() == name.len() && rest.starts_with('\\') {
        return Ok(rest.replace('\\', "/"));
    }
    Err(err(
        8,
        format!("target {name:?} is outside this volume (not a drive-letter path)"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(tag: u32, sub: &str, print: &str, flags: Option<u32>) -> Vec<u8> {
        let s: Vec<u8> = sub.encode_utf16().flat_map(u16::to_le_bytes).collect();
        let p: Vec<u8> = print.encode_utf16().flat_map(u16::to_le_bytes).collect();
        let mut data = Vec::new();
        data.extend_from_slice(&0u16.to_le_bytes());
        data.extend_from_slice(&(s.len() as u16).to_le_bytes());
        data.extend_from_slice(&(s.len() as u16).to_le_bytes());
        data.extend_from_slice(&(p.len() as u16).to_le_bytes());
        if let Some(f) = flags {
            data.extend_from_slice(&f.to_le_bytes());
        }
        data.extend_from_slice(&s);
        data.extend_from_slice(&p);
        let mut buf = tag.to_le_bytes().to_vec();
        buf.extend_from_slice(&(data.len() as u16).to_le_bytes());
        buf.extend_from_slice(&[0, 0]);
        buf.extend_from_slice(&data);
        buf
    }

    #[test]
    fn junction_maps_drive_path_to_guest_root() {
        let b = build(TAG_MOUNT_POINT, "\\??\\C:\\x\\y", "C:\\x\\y", None);
        let r = parse(&b).expect("valid");
        assert_eq!(r.link_target().expect("target"), "/x/y");
    }

    #[test]
    fn relative_symlink_swaps_separators() {
        let b = build(TAG_SYMLINK, "..\\a\\b", "..\\a\\b", Some(1));
        let r = parse(&b).expect("valid");
        assert!(matches!(r, Reparse::Symlink { relative: true, .. }));
        assert_eq!(r.link_target().expect("target"), "../a/b");
    }

    #[test]
    fn volume_guid_target_is_refused() {
        let b = build(TAG_SYMLINK, "\\??\\Volume{1234}\\x", "x", Some(0));
        assert!(parse(&b).expect("valid").link_target().is_err());
    }

    #[test]
    fn lengths_past_the_end_are_errors() {
        let mut b = build(TAG_SYMLINK, "abc", "abc", Some(1));
        b[10] = 0xF0; // substitute length
        assert!(parse(&b).is_err());
        let mut b = build(TAG_SYMLINK, "abc", "abc", Some(1));
        b[4] = 0xFF; // data length
        b[5] = 0x7F;
        assert!(parse(&b).is_err());
        assert!(parse(&[0x0C, 0, 0, 0xA0, 4, 0]).is_err());
    }

    #[test]
    fn other_tags_are_named() {
        let b = [0x17, 0, 0, 0x80, 0, 0, 0, 0];
        let r = parse(&b).expect("valid");
        assert_eq!(r, Reparse::Other { tag: TAG_WOF });
        assert!(r
            .link_target()
            .expect_err("not a link")
            .message
            .contains("WOF"));
    }

    /// The reparse values of dissect.ntfs's `tests/test_attr.py` (whole resident attributes;
    /// the value starts 0x18 bytes in), with its expected names and relativity.
    #[test]
    fn dissect_ntfs_test_attr_vectors() {
        let hex = |s: &str| -> Vec<u8> {
            (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
                .collect()
        };
        // The first two hex strings stop 2 bytes short of the value length their attribute
        // header declares (a terminating NUL): padded back with zeros.
        let value = |attr: &[u8]| {
            let len = u32::from_le_bytes([attr[16], attr[17], attr[18], attr[19]]) as usize;
            let mut v = attr[0x18..].to_vec();
            v.resize(len, 0);
            v
        };
        let mount = hex(concat!(
            "c00000005800000000000000000004004000000018000000030000a038000000",
            "00001a001c0012005c003f003f005c0043003a005c0054006100720067006500",
            "7400000043003a005c00540061007200670065007400"
        ));
        let r = parse(&value(&mount)).expect("mount point");
        assert_eq!(
            r,
            Reparse::MountPoint {
                substitute: "\\??\\C:\\Target".into(),
                print: "C:\\Target".into()
            }
        );
        assert_eq!(r.link_target().expect("target"), "/Target");
        let abs = hex(concat!(
            "c000000058000000000000000000040040000000180000000c0000a038000000",
            "12001a00000012000000000043003a005c005400610072006700650074005c00",
            "3f003f005c0043003a005c00540061007200670065007400"
        ));
        let r = parse(&value(&abs)).expect("symlink");
        assert_eq!(
            r,
            Reparse::Symlink {
                substitute: "\\??\\C:\\Target".into(),
                print: "C:\\Target".into(),
                relative: false
            }
        );
        assert_eq!(r.link_target().expect("target"), "/Target");
        let rel = hex(concat!(
            "c00000004800000000000000000004002c000000180000000c0000a024000000",
            "0c000c0000000c00010000005400610072006700650074005400610072006700",
            "6500740000000000"
        ));
        let r = parse(&value(&rel)).expect("symlink");
        assert_eq!(
            r,
            Reparse::Symlink {
                substitute: "Target".into(),
                print: "Target".into(),
                relative: true
            }
        );
        assert_eq!(r.link_target().expect("target"), "Target");
    }
}
