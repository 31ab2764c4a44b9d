//! VirtualBox VDI reader: version 1.1 headers, dynamic ("normal") and static ("fixed")
//! images, and differencing images.
//!
//! The block map has one little-endian entry per block: the block's index in the data area,
//! `0xffffffff` (not allocated: the parent's data, or zeros) or `0xfffffffe` (discarded:
//! zeros, never the parent). Blocks are any power of two from 512 B to 64 MiB (qemu reads
//! only 1 MiB); `cbBlockExtra` service bytes before each block are skipped as VirtualBox
//! does (qemu assumes there are none). A disk size that is not a whole number of sectors
//! is rounded up, as qemu does. Like qemu, an entry may name a data block past the block
//! count (compacted images have them: compactVD's 3ntfs.vdi), and block data past the end
//! of the file reads as zeros.
//!
//! Differencing images (qemu refuses them) name their parent only by UUID: the parent's
//! `uuidCreate` is the child's `uuidLinkage`. VirtualBox keeps the file name in its VM
//! configuration, not in the image, so the parent is looked for among the `.vdi` files of the
//! child's directory (each under the backing-file policy, at most [`MAX_CANDIDATES`] headers
//! read), then opened through the chain's depth and loop checks. When the child's
//! `uuidParentModify` is set and differs from the parent's `uuidModify` (the parent changed
//! after the child was made), reads that fall through to the parent fail, naming both.
//! Undo images (type 3) are refused.

pub mod header;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use guestctl_block::{BlockDevice, Error, ErrorKind, RawFile, Result};
use serde_json::json;

use crate::blocktable::{load_entries, BlockTable, Layout, MAX_ENTRIES};
use crate::bytes::uuid_string;
use crate::parent::Parent;
use crate::{Ctx, Format, FormatSpecific, Image, ImageInfo};
use header::{Header, ImageType, HEADER_LEN};

/// Largest block accepted.
const MAX_BLOCK_SIZE: u32 = 64 << 20;
/// Directory entries looked at, and `.vdi` headers read, when searching for a parent.
pub const MAX_DIR_ENTRIES: usize = 1 << 16;
/// See [`MAX_DIR_ENTRIES`].
pub const MAX_CANDIDATES: usize = 1024;

fn is_null(u: &[u8; 16]) -> bool {
    u.iter().all(|&b| b == 0)
}

pub(crate) fn open(
    file: Arc<dyn BlockDevice>,
    path: &Path,
    allocated: u64,
    ctx: &Ctx<'_>,
) -> Result<Image> {
    let file_size = file.size();
    let mut raw = vec![0u8; (HEADER_LEN as u64).min(file_size) as usize];
    file.read_exact_at(0, &mut raw)?;
    let h = Header::parse(&raw).map_err(|e| e.path(path))?;
    let herr = |kind: ErrorKind, msg: String, field: u64| {
        Error::new(kind, msg)
            .path(path)
            .structure("vdi header")
            .at(field)
    };
    use ErrorKind::{Corrupt, Unsupported};
    if h.version != header::VERSION_1_1 {
        return Err(herr(
            Unsupported,
            format!(
                "VDI version {}.{} (only 1.1 is read)",
                h.version >> 16,
                h.version & 0xffff
            ),
            68,
        ));
    }
    let kind = match h.kind() {
        Some(ImageType::Undo) => {
            return Err(herr(Unsupported, "VDI undo images are not read".into(), 76))
        }
        Some(k) => k,
        None => {
            return Err(herr(
                Corrupt,
                format!("unknown image type {}", h.image_type),
                76,
            ))
        }
    };
    if h.geometry[3] != 512 {
        return Err(herr(
            Unsupported,
            format!("sector size {} (only 512 is read)", h.geometry[3]),
            360,
        ));
    }
    let bs = h.block_size;
    if !bs.is_power_of_two() || !(512..=MAX_BLOCK_SIZE).contains(&bs) {
        return Err(herr(
            Corrupt,
            format!("block size {bs} is not a power of two from 512 B to 64 MiB"),
            376,
        ));
    }
    if h.block_extra % 512 != 0 || h.block_extra > bs {
        return Err(herr(
            Unsupported,
            format!("{} service bytes per block (cbBlockExtra)", h.block_extra),
            380,
        ));
    }
    if h.offset_bmap % 512 != 0 || h.offset_data % 512 != 0 {
        return Err(herr(
            Corrupt,
            format!(
                "block map offset {:#x} or data offset {:#x} is not sector aligned",
                h.offset_bmap, h.offset_data
            ),
            340,
        ));
    }
    let blocks = u64::from(h.blocks_in_image);
    if blocks > MAX_ENTRIES {
        return Err(herr(
            Unsupported,
            format!("{blocks} blocks are more than the {MAX_ENTRIES} accepted"),
            384,
        ));
    }
    let size = h.disk_size.div_ceil(512).saturating_mul(512);
    if size > blocks * u64::from(bs) {
        return Err(herr(
            Corrupt,
            format!(
                "disk size {} is larger than the {blocks} blocks of {bs} bytes",
                h.disk_size
            ),
            368,
        ));
    }
    let map_at = u64::from(h.offset_bmap);
    let map = load_entries(
        file.as_ref(),
        path,
        map_at,
        blocks,
        false,
        "vdi block map",
        ("vdi header", 340),
    )?;
    let table = BlockTable::new(
        path.to_path_buf(),
        file,
        size,
        bs.trailing_zeros(),
        map,
        Layout::Vdi {
            data_offset: u64::from(h.offset_data),
            extra: u64::from(h.block_extra),
        },
        map_at,
        "vdi block map",
    )?;

    let mut info = ImageInfo::new(path, Format::Vdi, size, allocated);
    info.cluster_size = Some(u64::from(bs));
    info.subformat = Some(kind.name().to_string());
    let mut data = BTreeMap::new();
    data.insert("image-type".to_string(), json!(kind.name()));
    data.insert("uuid".to_string(), json!(uuid_string(&h.uuid_image, true)));
    data.insert(
        "modification-uuid".to_string(),
        json!(uuid_string(&h.uuid_modify, true)),
    );
    data.insert(
        "blocks-allocated".to_string(),
        json!(table.allocated_blocks()),
    );
    let mut parent = None;
    if kind == ImageType::Differencing {
        data.insert(
            "parent-uuid".to_string(),
            json!(uuid_string(&h.uuid_link, true)),
        );
        info.backing_format = Some("vdi".into());
        if ctx.follow_backing() {
            let (name, ph) = find_parent(path, &h, ctx)?;
            let img = ctx.open_backing(path, &name, Some(Format::Vdi))?;
            info.backing_filename = Some(name);
            info.full_backing_filename = Some(img.info().filename.clone());
            let refuse = (!is_null(&h.uuid_parent_modify)
                && h.uuid_parent_modify != ph.uuid_modify)
                .then(|| {
                    format!(
                        "the parent {:?} was modified (modification UUID {}) after this \
                         differencing image was made over {}, so blocks this image does not \
                         hold cannot be read from it",
                        img.info().filename,
                        uuid_string(&ph.uuid_modify, true),
                        uuid_string(&h.uuid_parent_modify, true)
                    )
                });
            info.backing = Some(Box::new(img.info().clone()));
            parent = Some(Parent {
                refuse,
                ..Parent::new(img.device(), path.to_path_buf(), "vdi header")
            });
        }
    }
    info.format_specific = Some(FormatSpecific {
        kind: "vdi".into(),
        data,
    });
    Ok(Image {
        device: Arc::new(table.with_parent(parent)),
        info,
    })
}

/// Reads the VDI header of `p`, if it has one.
fn read_header(p: &Path) -> Option<Header> {
    let f = RawFile::open(p).ok()?;
    let mut b = vec![0u8; HEADER_LEN];
    f.read_exact_at(0, &mut b).ok()?;
    Header::parse(&b).ok()
}

/// The `.vdi` files (case-insensitive) of `dir`, sorted, at most [`MAX_DIR_ENTRIES`] looked at.
fn vdi_names(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut names = Vec::new();
    for e in std::fs::read_dir(dir)?.take(MAX_DIR_ENTRIES) {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        if name.to_ascii_lowercase().ends_with(".vdi") {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// Finds the parent of the differencing image `path` (header `h`): the one `.vdi` file
/// beside it whose `uuidCreate` is `h.uuid_link`. Returns its name and header.
pub(crate) fn find_parent(path: &Path, h: &Header, ctx: &Ctx<'_>) -> Result<(String, Header)> {
    let want = uuid_string(&h.uuid_link, true);
    let err =
        |kind: ErrorKind, msg: String| Error::new(kind, msg).path(path).structure("vdi header");
    let dir: PathBuf = match path.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(d) => d.to_path_buf(),
        None => PathBuf::from("."),
    };
    let me = path.canonicalize().ok();
    let names = vdi_names(&dir).map_err(|e| {
        Error::io(e, "cannot list the image's directory to find its parent").path(path)
    })?;
    let mut found: Vec<(String, Header)> = Vec::new();
    for name in names.iter().take(MAX_CANDIDATES) {
        let Ok(p) = ctx.resolve(path, name, "parent image") else {
            continue;
        };
        if me.as_ref() == Some(&p) {
            continue;
        }
        if let Some(ph) = read_header(&p) {
            if ph.uuid_image == h.uuid_link {
                found.push((name.clone(), ph));
            }
        }
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(err(
            ErrorKind::Io,
            format!(
                "the parent of this differencing image (UUID {want}) was not found among the \
                 {} .vdi files of {} (VirtualBox keeps parent names in the VM's configuration, \
                 not in the image; put the parent beside it, or pass --no-backing to read only \
                 this image's own blocks)",
                names.len().min(MAX_CANDIDATES),
                dir.display()
            ),
        )),
        _ => Err(err(
            ErrorKind::Refused,
            format!(
                "several files carry the parent UUID {want} ({}): copies of one image; keep \
                 one beside the child",
                found
                    .iter()
                    .map(|(n, _)| n.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{open_image, open_image_device, OpenOptions};
    use guestctl_block::MemoryDevice;
    use header::tests::header;

    /// A VDI: header, map, the listed (guest block, fill) blocks in order.
    pub(crate) fn image(h: &Header, blocks: &[(usize, u8)], zero: &[usize]) -> Vec<u8> {
        let mut h = h.clone();
        // Hostile headers may claim billions of blocks: the map written is at most 1 MiB.
        let mut map = vec![0xffu8; (h.blocks_in_image as usize).min(1 << 18) * 4];
        for &z in zero {
            map[z * 4..z * 4 + 4].copy_from_slice(&0xffff_fffeu32.to_le_bytes());
        }
        let mut data = Vec::new();
        for (n, &(g, fill)) in blocks.iter().enumerate() {
            map[g * 4..g * 4 + 4].copy_from_slice(&(n as u32).to_le_bytes());
            data.extend(vec![fill; h.block_size as usize]);
        }
        h.blocks_allocated = blocks.len() as u32;
        let mut out = h.to_bytes().to_vec();
        out.resize(h.offset_bmap as usize, 0);
        out.extend(map);
        out.resize(h.offset_data as usize, 0);
        out.extend(data);
        out
    }

    fn open_bytes(b: Vec<u8>) -> Result<Image> {
        let opts = OpenOptions {
            format: Some(Format::Vdi),
            follow_backing: false,
            ..OpenOptions::default()
        };
        open_image_device(Arc::new(MemoryDevice::new(b)), Path::new("/x/t.vdi"), &opts)
    }

    #[test]
    fn dynamic_image_reads() {
        let h = header(ImageType::Dynamic, 3 * 4096 - 400, 4096, 3);
        let img = open_bytes(image(&h, &[(2, 7), (0, 9)], &[1])).expect("open");
        let d = img.device();
        // Rounded up to whole sectors, like qemu.
        assert_eq!(d.size(), 3 * 4096);
        let mut b = vec![0u8; d.size() as usize];
        d.read_exact_at(0, &mut b).expect("read");
        assert!(b[..4096].iter().all(|&x| x == 9));
        assert!(b[4096..8192].iter().all(|&x| x == 0));
        assert!(b[8192..].iter().all(|&x| x == 7));
        assert_eq!(img.info().cluster_size, Some(4096));
        assert_eq!(
            img.info().format_specific.as_ref().expect("fs").data["blocks-allocated"],
            2
        );
    }

    #[test]
    fn hostile_headers_are_named_errors() {
        let good = header(ImageType::Dynamic, 8192, 4096, 2);
        let bad = |f: &dyn Fn(&mut Header)| {
            let mut h = good.clone();
            f(&mut h);
            open_bytes(image(&h, &[], &[]))
                .expect_err("hostile")
                .to_string()
        };
        assert!(bad(&|h| h.version = 0x10000).contains("version 1.0"));
        assert!(bad(&|h| h.image_type = 3).contains("undo"));
        assert!(bad(&|h| h.image_type = 9).contains("unknown image type"));
        assert!(bad(&|h| h.block_size = 1000).contains("power of two"));
        assert!(bad(&|h| h.disk_size = 1 << 40).contains("larger than"));
        assert!(bad(&|h| h.blocks_in_image = u32::MAX).contains("accepted"));
        assert!(bad(&|h| h.offset_bmap = 513).contains("aligned"));
        let e = bad(&|h| {
            h.blocks_in_image = 100_000;
            h.disk_size = 4096;
        });
        assert!(e.contains("block map at 0x200"), "{e}");
        // An entry past the block count reads past the end of the file: zeros (as qemu).
        let mut b = image(&good, &[(0, 1)], &[]);
        b[512..516].copy_from_slice(&5u32.to_le_bytes());
        let img = open_bytes(b).expect("entry past the count");
        let mut x = vec![1u8; 4096];
        img.device().read_exact_at(0, &mut x).expect("read");
        assert!(x.iter().all(|&v| v == 0));
    }

    /// A chain base ← mid ← top in a directory, with a decoy that has another UUID.
    #[test]
    fn differencing_parent_found_by_uuid() {
        let dir = tempfile::tempdir().expect("tmp");
        let d = dir.path();
        let base = header(ImageType::Dynamic, 3 * 4096, 4096, 3);
        std::fs::write(
            d.join("base.vdi"),
            image(&base, &[(0, 1), (1, 1), (2, 1)], &[]),
        )
        .expect("w");
        let mut mid = header(ImageType::Differencing, 3 * 4096, 4096, 3);
        mid.uuid_image = [3; 16];
        mid.uuid_modify = [4; 16];
        mid.uuid_link = base.uuid_image;
        mid.uuid_parent_modify = base.uuid_modify;
        std::fs::write(d.join("mid.VDI"), image(&mid, &[(1, 2)], &[2])).expect("w");
        let mut top = header(ImageType::Differencing, 3 * 4096, 4096, 3);
        top.uuid_image = [5; 16];
        top.uuid_link = mid.uuid_image;
        top.uuid_parent_modify = mid.uuid_modify;
        std::fs::write(d.join("top.vdi"), image(&top, &[(0, 3)], &[])).expect("w");
        let mut decoy = base.clone();
        decoy.uuid_image = [8; 16];
        std::fs::write(d.join("decoy.vdi"), image(&decoy, &[(2, 9)], &[])).expect("w");

        let img = open_image(d.join("top.vdi"), &OpenOptions::default()).expect("open");
        let dev = img.device();
        let mut b = vec![0u8; 3 * 4096];
        dev.read_exact_at(0, &mut b).expect("read");
        // Block 0 from top, 1 from mid, 2 is mid's zero block (never the base's 1s).
        assert!(b[..4096].iter().all(|&x| x == 3));
        assert!(b[4096..8192].iter().all(|&x| x == 2));
        assert!(b[8192..].iter().all(|&x| x == 0));
        let chain: Vec<_> = img
            .info()
            .chain()
            .iter()
            .map(|i| i.backing_filename.clone())
            .collect();
        assert_eq!(
            chain,
            vec![Some("mid.VDI".into()), Some("base.vdi".into()), None]
        );
        // Without the parent: a named error; with --no-backing: this image's blocks only.
        std::fs::remove_file(d.join("base.vdi")).expect("rm");
        let e = open_image(d.join("top.vdi"), &OpenOptions::default()).expect_err("missing");
        let s = format!(
            "{e} {}",
            std::error::Error::source(&e)
                .map(|c| c.to_string())
                .unwrap_or_default()
        );
        assert!(s.contains("was not found"), "{s}");
        let lone = open_image(
            d.join("mid.VDI"),
            &OpenOptions {
                follow_backing: false,
                ..OpenOptions::default()
            },
        )
        .expect("no backing");
        assert!(lone.info().backing.is_none());
        // A parent modified after the child was made: reads through it fail, by name.
        let mut changed = base.clone();
        changed.uuid_modify = [6; 16];
        std::fs::write(d.join("base.vdi"), image(&changed, &[(0, 1)], &[])).expect("w");
        let img = open_image(d.join("mid.VDI"), &OpenOptions::default()).expect("open");
        let mut b = vec![0u8; 4096];
        let e = img.device().read_exact_at(0, &mut b).expect_err("modified");
        assert!(e.to_string().contains("was modified"), "{e}");
        img.device().read_exact_at(4096, &mut b).expect("own block");
        // Two copies of the parent: ambiguous.
        std::fs::copy(d.join("base.vdi"), d.join("copy.vdi")).expect("cp");
        let e = open_image(d.join("mid.VDI"), &OpenOptions::default()).expect_err("ambiguous");
        let s = format!(
            "{e} {}",
            std::error::Error::source(&e)
                .map(|c| c.to_string())
                .unwrap_or_default()
        );
        assert!(s.contains("several files"), "{s}");
        // A child that names itself: a loop, refused.
        let mut selfish = top.clone();
        selfish.uuid_image = [10; 16];
        selfish.uuid_link = selfish.uuid_image;
        std::fs::write(d.join("self.vdi"), image(&selfish, &[], &[])).expect("w");
        assert!(open_image(d.join("self.vdi"), &OpenOptions::default()).is_err());
    }
}
