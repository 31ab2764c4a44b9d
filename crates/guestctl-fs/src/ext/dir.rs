//! Directory blocks: linear entries (`ext4_dir_entry_2`), the metadata_csum tail, and the
//! inline-data form. htree directories are read linearly: their index blocks look like one
//! empty entry spanning the block, so they contribute nothing.

use crate::bytes::{le16, le32};
use crate::{DirEntry, FileType, NodeId};

/// Size of the checksum tail at the end of a leaf directory block.
pub(crate) const TAIL_LEN: usize = 12;

/// Whether `block` ends with a directory checksum tail; returns the stored checksum.
pub(crate) fn tail_checksum(block: &[u8]) -> Option<u32> {
    let t = block.len().checked_sub(TAIL_LEN)?;
    (le32(block, t) == 0 && le16(block, t + 4) == 12 && block[t + 6] == 0 && block[t + 7] == 0xDE)
        .then(|| le32(block, t + 8))
}

/// Whether `block` is an htree interior node: one fake entry with inode 0 spanning the block.
pub(crate) fn is_dx_node(block: &[u8], block_size: usize) -> bool {
    le32(block, 0) == 0 && rec_len(le16(block, 4), block_size) == block_size
}

fn rec_len(raw: u16, block_size: usize) -> usize {
    let len = usize::from(raw);
    if block_size < 65536 {
        len
    } else if raw == 65535 || raw == 0 {
        65536
    } else {
        (len & 65532) | ((len & 3) << 16)
    }
}

fn entry_type(t: u8) -> FileType {
    match t {
        1 => FileType::Regular,
        2 => FileType::Directory,
        3 => FileType::CharDevice,
        4 => FileType::BlockDevice,
        5 => FileType::Fifo,
        6 => FileType::Socket,
        7 => FileType::Symlink,
        _ => FileType::Unknown,
    }
}

/// Parses the entries of one directory region (a block, or the inline area). Live entries
/// other than `.` and `..` are appended to `out`. `max_inode` bounds inode numbers. On a
/// malformed entry, returns its offset in `region` and what is wrong; the entries before it
/// are kept.
pub(crate) fn parse_entries(
    region: &[u8],
    block_size: usize,
    has_filetype: bool,
    max_inode: u64,
    out: &mut Vec<DirEntry>,
) -> Result<(), (usize, String)> {
    let mut off = 0usize;
    while off + 8 <= region.len() {
        let ino = u64::from(le32(region, off));
        let rl = rec_len(le16(region, off + 4), block_size);
        let (name_len, ftype) = if has_filetype {
            (usize::from(region[off + 6]), region[off + 7])
        } else {
            (usize::from(le16(region, off + 6)), 0)
        };
        if rl < 8 || rl % 4 != 0 || off + rl > region.len() {
            return Err((off, format!("directory entry length {rl} is invalid")));
        }
        if ino != 0 {
            if name_len == 0 || 8 + name_len > rl {
                return Err((
                    off,
                    format!("name length {name_len} does not fit entry length {rl}"),
                ));
            }
            if ino > max_inode {
                return Err((
                    off,
                    format!("entry points at inode {ino}, beyond the last inode {max_inode}"),
                ));
            }
            let name = &region[off + 8..off + 8 + name_len];
            if name != b"." && name != b".." {
                out.push(DirEntry {
                    name: name.to_vec(),
                    node: NodeId(ino),
                    file_type: if has_filetype {
                        entry_type(ftype)
                    } else {
                        FileType::Unknown
                    },
                });
            }
        }
        off += rl;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(ino: u32, name: &[u8], ft: u8, rl: u16) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&ino.to_le_bytes());
        v.extend_from_slice(&rl.to_le_bytes());
        v.push(name.len() as u8);
        v.push(ft);
        v.extend_from_slice(name);
        v.resize(usize::from(rl), 0);
        v
    }

    #[test]
    fn parses_entries_and_skips_dots_and_deleted() {
        let mut b = entry(2, b".", 2, 12);
        b.extend(entry(2, b"..", 2, 12));
        b.extend(entry(0, b"gone", 1, 16));
        b.extend(entry(12, b"hello.txt", 1, 1024 - 40));
        let mut out = Vec::new();
        parse_entries(&b, 1024, true, 100, &mut out).expect("parse");
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].name, b"hello.txt");
        assert_eq!(out[0].node, NodeId(12));
        assert_eq!(out[0].file_type, FileType::Regular);
    }

    #[test]
    fn rejects_bad_lengths_without_panicking() {
        let mut b = entry(12, b"a", 1, 12);
        b.extend(entry(13, b"b", 1, 3));
        b.resize(1024, 0);
        let mut out = Vec::new();
        let e = parse_entries(&b, 1024, true, 100, &mut out).expect_err("bad");
        assert_eq!(e.0, 12);
        assert_eq!(out.len(), 1);
        let b = entry(500, b"x", 1, 1024);
        assert!(parse_entries(&b, 1024, true, 100, &mut Vec::new()).is_err());
    }

    #[test]
    fn big_block_rec_len_encoding() {
        assert_eq!(rec_len(0, 65536), 65536);
        assert_eq!(rec_len(65535, 65536), 65536);
        assert_eq!(rec_len(12, 65536), 12);
        assert_eq!(rec_len(12, 4096), 12);
    }
}
