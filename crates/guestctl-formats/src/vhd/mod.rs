//! VHD reader (qemu's `vpc`): fixed disks (the data, then a 512-byte footer; also the 511-byte
//! footer of images made before Virtual PC 2004), dynamic disks (footer copy, dynamic disk
//! header, BAT, blocks of any power-of-two size each behind its sector bitmap) and
//! differencing disks, whose parent is found through the header's parent locators under the
//! backing-file policy.
//!
//! The guest-visible size follows qemu 10 (see [`header::Footer::size_from_chs`]): the CHS
//! geometry for images made by Virtual PC and older qemu, `current_size` for everything
//! else, so `virtual-size` is what `qemu-img info` prints. Footer and dynamic-header
//! checksums are verified (qemu checks only the footer's).
//!
//! Like qemu: a dynamic disk's sector bitmaps are not consulted (an allocated block is read
//! whole: qemu sets every bit when it allocates, and Hyper-V's unwritten sectors hold zeros);
//! blocks that end past the end of the file make the image "truncated"; a fixed disk reads
//! the file's bytes from offset 0, zeros past its end. Unlike qemu (which reads a
//! differencing disk as if it had no parent): a differencing disk's bitmaps decide sector by
//! sector between its blocks and the parent; the parent must be a VHD whose unique id is the
//! child's parent UUID, otherwise reads that fall through to it fail with an error naming
//! both ids (the image still opens, for `info`). A fixed disk is detected by the footer at
//! its end (qemu's probe looks only at offset 0 and calls it raw; `-f raw` reads it so).
//!
//! Parent candidates, in order: the relative Windows path (`W2ru`), the parent's file name
//! from the header, beside the child, the file name of the absolute Windows path (`W2ku`)
//! beside the child, then the Mac OS X file URL (`MacX`, an absolute path: followed only
//! under `--allow-backing`). Each goes through [`crate::backing::resolve`].

pub mod header;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use guestctl_block::{BlockDevice, Error, ErrorKind, Result, Slice, ZeroExtended};
use serde_json::json;

use crate::blocktable::{load_entries, BlockTable, Layout, MAX_ENTRIES};
use crate::bytes::uuid_string;
use crate::parent::Parent;
use crate::{Ctx, Format, FormatSpecific, Image, ImageInfo};
use header::{DiskType, DynHeader, Footer, DYN_LEN, FOOTER_LEN, FOOTER_MAGIC};

/// Largest block accepted (256 MiB: bitmaps of 64 KiB).
const MAX_BLOCK_SIZE: u32 = 1 << 28;
/// Longest parent locator read.
const MAX_LOCATOR_BYTES: u32 = 8192;

/// Where the footer of a file is, if anywhere: a dynamic disk's copy at offset 0, or a fixed
/// disk's at the end (512 or 511 bytes). Bytes and offset.
fn find_footer(file: &dyn BlockDevice, path: &Path) -> Result<(Footer, u64, usize)> {
    let size = file.size();
    if size < (FOOTER_LEN - 1) as u64 {
        return Err(Error::corrupt(format!(
            "file of {size} bytes is too small for a VHD footer"
        ))
        .path(path)
        .structure("vhd footer"));
    }
    let mut head = vec![0u8; FOOTER_LEN.min(size as usize)];
    file.read_exact_at(0, &mut head)?;
    if head.starts_with(FOOTER_MAGIC) && head.len() == FOOTER_LEN {
        let f = Footer::parse(&head, 0).map_err(|e| e.path(path))?;
        // A fixed disk's guest data may itself start with a footer: its own is at the end.
        if f.disk_type() != Some(DiskType::Fixed) {
            return Ok((f, 0, FOOTER_LEN));
        }
    }
    let tail_len = FOOTER_LEN.min(size as usize);
    let mut tail = vec![0u8; tail_len];
    let tail_at = size - tail_len as u64;
    file.read_exact_at(tail_at, &mut tail)?;
    let (bytes, at) = if tail.starts_with(FOOTER_MAGIC) {
        (&tail[..], tail_at)
    } else if tail.len() == FOOTER_LEN && tail[1..].starts_with(FOOTER_MAGIC) {
        (&tail[1..], tail_at + 1)
    } else {
        return Err(Error::corrupt(
            "no VHD footer: neither the first nor the last 512 bytes start with \"conectix\"",
        )
        .path(path)
        .structure("vhd footer"));
    };
    let f = Footer::parse(bytes, at).map_err(|e| e.path(path))?;
    Ok((f, at, bytes.len()))
}

pub(crate) fn open(
    file: Arc<dyn BlockDevice>,
    path: &Path,
    allocated: u64,
    ctx: &Ctx<'_>,
) -> Result<Image> {
    let (footer, footer_at, footer_len) = find_footer(file.as_ref(), path)?;
    let kind = footer.disk_type().ok_or_else(|| {
        Error::unsupported(format!(
            "VHD disk type {} (only fixed 2, dynamic 3 and differencing 4 exist)",
            footer.disk_type_code
        ))
        .path(path)
        .structure("vhd footer")
        .at(footer_at + 60)
    })?;
    let size = footer.virtual_size();
    if size > header::MAX_DISK_BYTES {
        return Err(Error::unsupported(format!(
            "disk of {size} bytes is larger than 2040 GiB, the VHD limit"
        ))
        .path(path)
        .structure("vhd footer")
        .at(footer_at + 48));
    }
    let mut info = ImageInfo::new(path, Format::Vpc, size, allocated);
    info.subformat = Some(kind.name().to_string());
    let mut data = BTreeMap::new();
    data.insert("disk-type".to_string(), json!(kind.name()));
    data.insert("creator-app".to_string(), json!(footer.creator()));
    data.insert(
        "unique-id".to_string(),
        json!(uuid_string(&footer.unique_id, false)),
    );
    data.insert("current-size".to_string(), json!(footer.current_size));
    data.insert(
        "geometry".to_string(),
        json!(format!(
            "{}/{}/{}",
            footer.cylinders, footer.heads, footer.sectors
        )),
    );
    data.insert(
        "size-from".to_string(),
        json!(if footer.size_from_chs() {
            "chs"
        } else {
            "current-size"
        }),
    );
    if footer_len != FOOTER_LEN {
        data.insert("footer-bytes".to_string(), json!(footer_len));
    }
    let device: Arc<dyn BlockDevice> = if kind == DiskType::Fixed {
        if size <= file.size() {
            Arc::new(Slice::new(file, 0, size)?)
        } else {
            Arc::new(ZeroExtended::new(file, size))
        }
    } else {
        let (table, dynh) = open_dynamic(file.clone(), path, &footer, size, kind)?;
        info.cluster_size = Some(table.block_size());
        data.insert(
            "allocated-blocks".to_string(),
            json!(table.allocated_blocks()),
        );
        let parent = if kind == DiskType::Differencing {
            data.insert(
                "parent-unique-id".to_string(),
                json!(uuid_string(&dynh.parent_uuid, false)),
            );
            info.backing_format = Some("vpc".into());
            info.backing_filename = Some(dynh.parent_name.clone());
            if ctx.follow_backing() {
                let (name, img) = open_parent(file.as_ref(), path, &dynh, ctx)?;
                info.backing_filename = Some(name);
                info.full_backing_filename = Some(img.info().filename.clone());
                let refuse = parent_mismatch(&dynh, img.info());
                info.backing = Some(Box::new(img.info().clone()));
                Some(Parent {
                    refuse,
                    ..Parent::new(img.device(), path.to_path_buf(), "vhd dynamic disk header")
                })
            } else {
                None
            }
        } else {
            None
        };
        Arc::new(table.with_parent(parent))
    };
    info.format_specific = Some(FormatSpecific {
        kind: "vpc".into(),
        data,
    });
    Ok(Image { device, info })
}

/// Loads the dynamic disk header and the BAT.
fn open_dynamic(
    file: Arc<dyn BlockDevice>,
    path: &Path,
    footer: &Footer,
    size: u64,
    kind: DiskType,
) -> Result<(BlockTable, DynHeader)> {
    let file_size = file.size();
    let at = footer.data_offset;
    if at.checked_add(DYN_LEN as u64).is_none_or(|e| e > file_size) {
        return Err(Error::corrupt(format!(
            "dynamic disk header offset {at:#x} lies past the end of the file"
        ))
        .path(path)
        .structure("vhd footer")
        .at(16));
    }
    let mut raw = vec![0u8; DYN_LEN];
    file.read_exact_at(at, &mut raw)?;
    let h = DynHeader::parse(&raw, at).map_err(|e| e.path(path))?;
    let herr = |msg: String, field: u64| {
        Error::corrupt(msg)
            .path(path)
            .structure("vhd dynamic disk header")
            .at(at + field)
    };
    let bs = h.block_size;
    if !bs.is_power_of_two() || !(512..=MAX_BLOCK_SIZE).contains(&bs) {
        return Err(herr(
            format!("block size {bs} is not a power of two from 512 B to 256 MiB"),
            32,
        ));
    }
    let entries = u64::from(h.max_table_entries);
    if entries > MAX_ENTRIES {
        return Err(herr(
            format!("{entries} BAT entries are more than the {MAX_ENTRIES} accepted"),
            28,
        ));
    }
    if entries * u64::from(bs) < size {
        return Err(herr(
            format!(
                "the BAT's {entries} blocks of {bs} bytes do not cover the disk's {size} bytes"
            ),
            28,
        ));
    }
    let t = h.table_offset;
    let bat = load_entries(
        file.as_ref(),
        path,
        t,
        entries,
        true,
        "vhd BAT",
        ("vhd dynamic disk header", at + 16),
    )?;
    let table = BlockTable::new(
        path.to_path_buf(),
        file,
        size,
        bs.trailing_zeros(),
        bat,
        Layout::Vhd {
            bitmap_bytes: header::bitmap_bytes(u64::from(bs)),
            bitmaps: kind == DiskType::Differencing,
        },
        t,
        "vhd BAT",
    )?;
    Ok((table, h))
}

/// The names the header offers for the parent, in the order they are tried.
fn parent_candidates(file: &dyn BlockDevice, h: &DynHeader) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut push = |s: String| {
        if !s.is_empty() && !out.contains(&s) {
            out.push(s);
        }
    };
    let by_code = |code: u32| -> Vec<String> {
        let mut v = Vec::new();
        for l in h.locators.iter().filter(|l| l.code == code) {
            if l.data_len == 0 || l.data_len > MAX_LOCATOR_BYTES {
                continue;
            }
            let mut b = vec![0u8; l.data_len as usize];
            if file.read_exact_at(l.data_offset, &mut b).is_ok() {
                if let Some(p) = header::locator_path(code, &b) {
                    v.push(p);
                }
            }
        }
        v
    };
    let w2ru = by_code(header::platform::W2RU);
    let w2ku = by_code(header::platform::W2KU);
    let macx = by_code(header::platform::MACX);
    for p in w2ru {
        push(p.trim_start_matches("./").to_string());
    }
    push(h.parent_name.replace('\\', "/"));
    for p in w2ku {
        if let Some(name) = p.rsplit('/').next() {
            push(name.to_string());
        }
    }
    for p in macx {
        push(p);
    }
    out
}

/// Finds and opens the parent of a differencing disk: the first candidate that exists under
/// the policy, through the chain's depth and loop checks.
fn open_parent(
    file: &dyn BlockDevice,
    path: &Path,
    h: &DynHeader,
    ctx: &Ctx<'_>,
) -> Result<(String, Image)> {
    let candidates = parent_candidates(file, h);
    let mut refused: Option<Error> = None;
    let mut tried = Vec::new();
    for c in &candidates {
        match ctx.resolve(path, c, "parent disk") {
            Ok(p) if p.is_file() => {
                let img = ctx.open_backing(path, c, None)?;
                if img.info().format != Format::Vpc {
                    return Err(Error::unsupported(format!(
                        "parent {c:?} is a {} image; a differencing VHD's parent must be a VHD",
                        img.info().format
                    ))
                    .path(path)
                    .structure("vhd dynamic disk header"));
                }
                return Ok((c.clone(), img));
            }
            Ok(p) => tried.push(p.display().to_string()),
            Err(e) => {
                tried.push(format!("{c:?} (refused)"));
                refused.get_or_insert(e);
            }
        }
    }
    if let Some(e) = refused {
        return Err(e);
    }
    let name = if h.parent_name.is_empty() {
        candidates.first().cloned().unwrap_or_default()
    } else {
        h.parent_name.clone()
    };
    Err(Error::new(
        ErrorKind::Io,
        format!(
            "the parent {name:?} of this differencing disk was not found (looked for: {}); put \
             it beside the image, or pass --no-backing to read only this disk's own sectors",
            if tried.is_empty() {
                "no usable parent locator".to_string()
            } else {
                tried.join(", ")
            }
        ),
    )
    .path(path)
    .structure("vhd dynamic disk header"))
}

/// Why reads must not fall through to `parent`: its unique id is not the one the child
/// recorded.
fn parent_mismatch(h: &DynHeader, parent: &ImageInfo) -> Option<String> {
    let want = uuid_string(&h.parent_uuid, false);
    let have = parent
        .format_specific
        .as_ref()
        .and_then(|f| f.data.get("unique-id"))
        .and_then(serde_json::Value::as_str)
        .unwrap_or("");
    (want != have).then(|| {
        format!(
            "the parent {:?} has unique id {have}, but this differencing disk was made over \
             {want}: the parent was replaced or changed, so sectors this disk does not hold \
             cannot be read from it",
            parent.filename
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{open_image_device, OpenOptions};
    use guestctl_block::ExtentKind;
    use guestctl_block::MemoryDevice;
    use header::tests::footer;

    fn open_bytes(b: Vec<u8>) -> Result<Image> {
        let opts = OpenOptions {
            format: Some(Format::Vpc),
            follow_backing: false,
            ..OpenOptions::default()
        };
        open_image_device(Arc::new(MemoryDevice::new(b)), Path::new("/x/t.vhd"), &opts)
    }

    /// A dynamic disk: footer copy, header at 512, BAT at 1536, blocks, footer.
    pub(crate) fn dynamic(size: u64, bs: u32, blocks: &[(u32, u8)]) -> Vec<u8> {
        let f = footer(b"win ", size, DiskType::Dynamic);
        let entries = size.div_ceil(u64::from(bs)) as u32;
        let h = DynHeader {
            data_offset: u64::MAX,
            table_offset: 1536,
            version: 0x0001_0000,
            max_table_entries: entries,
            block_size: bs,
            checksum: 0,
            parent_uuid: [0; 16],
            parent_timestamp: 0,
            parent_name: String::new(),
            locators: Default::default(),
        };
        let mut out = f.to_bytes().to_vec();
        out.extend(h.to_bytes());
        let bat_at = out.len();
        out.resize(bat_at + (entries as usize * 4).div_ceil(512) * 512, 0xff);
        let bm = header::bitmap_bytes(u64::from(bs)) as usize;
        for &(idx, fill) in blocks {
            let sector = (out.len() / 512) as u32;
            let o = bat_at + idx as usize * 4;
            out[o..o + 4].copy_from_slice(&sector.to_be_bytes());
            out.extend(vec![0xff; bm]);
            out.extend(vec![fill; bs as usize]);
        }
        out.extend(f.to_bytes());
        out
    }

    #[test]
    fn dynamic_blocks_read_and_map() {
        let img = open_bytes(dynamic(3 << 16, 1 << 16, &[(2, 0x5a), (0, 0x11)])).expect("open");
        let d = img.device();
        assert_eq!(d.size(), 3 << 16);
        let mut b = vec![0u8; 3 << 16];
        d.read_exact_at(0, &mut b).expect("read");
        assert!(b[..1 << 16].iter().all(|&x| x == 0x11));
        assert!(b[1 << 16..2 << 16].iter().all(|&x| x == 0));
        assert!(b[2 << 16..].iter().all(|&x| x == 0x5a));
        let m = d.map(0, 3 << 16).expect("map");
        assert_eq!(m.bytes_of(ExtentKind::Unallocated), 1 << 16);
        assert_eq!(img.info().cluster_size, Some(1 << 16));
        assert_eq!(img.info().subformat.as_deref(), Some("dynamic"));
    }

    #[test]
    fn fixed_disks_with_512_and_511_byte_footers() {
        let f = footer(b"win ", 4096, DiskType::Fixed);
        let mut b = vec![0x42u8; 4096];
        b.extend(f.to_bytes());
        let img = open_bytes(b.clone()).expect("fixed");
        assert_eq!(img.device().size(), 4096);
        b.pop();
        let img = open_bytes(b).expect("511");
        assert_eq!(img.device().size(), 4096);
        let mut x = vec![0u8; 4096];
        img.device().read_exact_at(0, &mut x).expect("read");
        assert!(x.iter().all(|&v| v == 0x42));
    }

    #[test]
    fn hostile_headers_are_named_errors() {
        let good = dynamic(1 << 20, 1 << 16, &[(0, 1)]);
        // Block size not a power of two; BAT past the end; block past the end of the file.
        let patch = |f: &dyn Fn(&mut DynHeader)| {
            let mut b = good.clone();
            let mut h = DynHeader::parse(&b[512..1536], 512).expect("h");
            f(&mut h);
            b[512..1536].copy_from_slice(&h.to_bytes());
            open_bytes(b).expect_err("hostile").to_string()
        };
        assert!(patch(&|h| h.block_size = 3000).contains("power of two"));
        assert!(patch(&|h| h.table_offset = 1 << 40).contains("past the end"));
        assert!(patch(&|h| h.max_table_entries = 1).contains("do not cover"));
        assert!(patch(&|h| h.max_table_entries = u32::MAX).contains("accepted"));
        let mut b = good.clone();
        b[1536..1540].copy_from_slice(&0x00ff_ffffu32.to_be_bytes());
        let e = open_bytes(b).expect_err("truncated").to_string();
        assert!(
            e.contains("vhd BAT at offset 0x600") && e.contains("truncated"),
            "{e}"
        );
        // A bad dynamic-header checksum.
        let mut b = good.clone();
        b[512 + 600] ^= 1;
        assert!(open_bytes(b)
            .expect_err("csum")
            .to_string()
            .contains("checksum"));
        // Nothing at all.
        assert!(open_bytes(vec![0u8; 100]).is_err());
        assert!(open_bytes(vec![0u8; 4096]).is_err());
    }
}
