//! A VHD writer (qemu's `vpc`), fixed or dynamic, with the footer and dynamic header built
//! by guestctl-formats' own `vhd::header` code.
//!
//! - fixed: the guest bytes (sparse: zero ranges stay holes), padded to a whole sector, then
//!   the 512-byte footer.
//! - dynamic: footer copy at 0, dynamic disk header at 512, the BAT at 1536, then the
//!   non-zero 2 MiB blocks in guest order, each behind a sector bitmap with every bit set
//!   (as qemu writes them), then the footer. Zero blocks are not allocated.
//!
//! Size: `current_size` is the source's size in whole sectors. The CHS geometry is the
//! spec's for that size when it addresses exactly that many sectors; otherwise the largest
//! geometry (65535/16/255), which every qemu since 2.6, Hyper-V and Azure read as "use
//! current_size", as `qemu-img convert -o force_size=on` does. So every reader sees the
//! source's size, never one rounded to a geometry.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use guestctl_block::{BlockDevice, Error, ErrorKind, Result};
use guestctl_formats::vhd::header::{
    self, DiskType, DynHeader, Footer, DEFAULT_BLOCK_SIZE, FOOTER_LEN,
};

use crate::blockw::{new_uuid, write_blocks, Placement};

/// Which kind of VHD to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VhdSubformat {
    /// Sparse blocks behind a block allocation table (qemu-img's default).
    #[default]
    Dynamic,
    /// The raw data followed by a footer (what Azure accepts).
    Fixed,
}

/// Options for the VHD writer.
#[derive(Debug, Clone, Default)]
pub struct VhdOptions {
    /// Fixed or dynamic.
    pub subformat: VhdSubformat,
}

/// The footer for a disk of `size` bytes (a whole number of sectors), made now.
fn footer(size: u64, kind: DiskType, data_offset: u64) -> Footer {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let stamp = now.saturating_sub(header::EPOCH) as u32;
    Footer::new(size, kind, data_offset, *b"gctl", stamp, new_uuid())
}

/// Writes `src` as a VHD to the already created `out`.
pub(crate) fn write_vhd(
    src: &dyn BlockDevice,
    out: &File,
    out_path: &Path,
    opts: &VhdOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<()> {
    let size = src.size().div_ceil(512) * 512;
    if size > header::MAX_DISK_BYTES {
        return Err(Error::unsupported(format!(
            "a VHD holds at most 2040 GiB; the source has {} bytes (use qcow2 or vhdx)",
            src.size()
        )));
    }
    let wr = |buf: &[u8], off: u64| {
        out.write_all_at(buf, off)
            .map_err(|e| crate::write_error(e, "write failed", out_path, Some(off)))
    };
    match opts.subformat {
        VhdSubformat::Fixed => {
            out.set_len(size + FOOTER_LEN as u64).map_err(|e| {
                crate::write_error(e, "cannot size the output file", out_path, None)
            })?;
            crate::raw_into(src, out, out_path, false, progress)?;
            wr(&footer(size, DiskType::Fixed, u64::MAX).to_bytes(), size)
        }
        VhdSubformat::Dynamic => {
            let bs = u64::from(DEFAULT_BLOCK_SIZE);
            let entries = size.div_ceil(bs);
            let bat_at = 1536u64;
            let bat_bytes = (entries * 4).div_ceil(512) * 512;
            let first = bat_at + bat_bytes;
            let mut bat = vec![0xffu8; bat_bytes as usize];
            let bitmap = vec![0xffu8; header::bitmap_bytes(bs) as usize];
            let mut slot = |i: u64, host: u64| -> Result<()> {
                let sector = u32::try_from(host / 512).map_err(|_| {
                    Error::new(ErrorKind::Unsupported, "VHD block offsets past 2 TiB")
                })?;
                bat[(i * 4) as usize..(i * 4 + 4) as usize].copy_from_slice(&sector.to_be_bytes());
                Ok(())
            };
            let end = write_blocks(
                src,
                out,
                out_path,
                bs,
                &bitmap,
                first,
                Placement::Appended,
                &mut slot,
                progress,
            )?;
            let f = footer(size, DiskType::Dynamic, 512);
            let dynh = DynHeader {
                data_offset: u64::MAX,
                table_offset: bat_at,
                version: 0x0001_0000,
                max_table_entries: entries as u32,
                block_size: DEFAULT_BLOCK_SIZE,
                checksum: 0,
                parent_uuid: [0; 16],
                parent_timestamp: 0,
                parent_name: String::new(),
                locators: Default::default(),
            };
            out.set_len(end + FOOTER_LEN as u64).map_err(|e| {
                crate::write_error(e, "cannot size the output file", out_path, None)
            })?;
            wr(&bat, bat_at)?;
            wr(&dynh.to_bytes(), 512)?;
            wr(&f.to_bytes(), end)?;
            wr(&f.to_bytes(), 0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry_or_the_largest_one() {
        // 100 cylinders, 4 heads, 17 sectors is the spec's geometry for 6800 sectors: kept.
        let f = footer(6800 * 512, DiskType::Fixed, u64::MAX);
        assert_eq!((f.cylinders, f.heads, f.sectors), (100, 4, 17));
        assert_eq!(f.virtual_size(), f.current_size);
        let f = footer(5 << 20, DiskType::Fixed, u64::MAX);
        assert_eq!((f.cylinders, f.heads, f.sectors), (65535, 16, 255));
        assert_eq!(f.virtual_size(), 5 << 20);
    }
}
