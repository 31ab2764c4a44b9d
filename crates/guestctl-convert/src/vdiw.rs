//! A VDI writer (VirtualBox, version 1.1 header built by guestctl-formats' `vdi::header`):
//! the header, the block map at 512, then 1 MiB blocks from the next sector.
//!
//! - dynamic (the default, like qemu-img): non-zero blocks appended in guest order; zero
//!   blocks stay unallocated (`0xffffffff`), never written.
//! - static (qemu's `-o static=on`): every block has its place (block `i` at
//!   `data + i MiB`, the map the identity); zero blocks are holes in the file.
//!
//! The disk size is the source's, rounded up to a whole sector (qemu reads VDI sizes so).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use guestctl_block::{BlockDevice, Error, Result};
use guestctl_formats::vdi::header::{Header, ImageType, DEFAULT_BLOCK_SIZE};

use crate::blockw::{new_uuid, write_blocks, Placement};

/// Which kind of VDI to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VdiSubformat {
    /// Blocks allocated as they hold data (qemu-img's default).
    #[default]
    Dynamic,
    /// Every block has its place in the file (`qemu-img -o static=on`).
    Static,
}

/// Options for the VDI writer.
#[derive(Debug, Clone, Default)]
pub struct VdiOptions {
    /// Dynamic or static.
    pub subformat: VdiSubformat,
}

/// Writes `src` as a VDI to the already created `out`.
pub(crate) fn write_vdi(
    src: &dyn BlockDevice,
    out: &File,
    out_path: &Path,
    opts: &VdiOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<()> {
    let size = src.size().div_ceil(512) * 512;
    let bs = u64::from(DEFAULT_BLOCK_SIZE);
    let blocks = size.div_ceil(bs);
    let blocks32 = u32::try_from(blocks)
        .map_err(|_| Error::unsupported("a VDI holds at most 2^32 blocks of 1 MiB"))?;
    let kind = match opts.subformat {
        VdiSubformat::Dynamic => ImageType::Dynamic,
        VdiSubformat::Static => ImageType::Static,
    };
    let mut h = Header::new(
        kind,
        size,
        DEFAULT_BLOCK_SIZE,
        blocks32,
        new_uuid(),
        new_uuid(),
    )?;
    let map_at = u64::from(h.offset_bmap);
    let data_at = u64::from(h.offset_data);
    let mut map = vec![0xffu8; (data_at - map_at) as usize];
    let mut allocated = 0u32;
    let mut slot = |i: u64, host: u64| -> Result<()> {
        let index = ((host - data_at) / bs) as u32;
        map[(i * 4) as usize..(i * 4 + 4) as usize].copy_from_slice(&index.to_le_bytes());
        allocated += 1;
        Ok(())
    };
    let placement = match kind {
        ImageType::Static => Placement::Fixed,
        _ => Placement::Appended,
    };
    let end = write_blocks(
        src,
        out,
        out_path,
        bs,
        &[],
        data_at,
        placement,
        &mut slot,
        progress,
    )?;
    let end = match kind {
        ImageType::Static => data_at + blocks * bs,
        _ => end.max(data_at),
    };
    h.blocks_allocated = allocated;
    let wr = |buf: &[u8], off: u64| {
        out.write_all_at(buf, off)
            .map_err(|e| crate::write_error(e, "write failed", out_path, Some(off)))
    };
    out.set_len(end)
        .map_err(|e| crate::write_error(e, "cannot size the output file", out_path, None))?;
    wr(&map, map_at)?;
    wr(&h.to_bytes(), 0)
}
