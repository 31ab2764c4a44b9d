//! The VirtualBox VDI header (version 1.1: the pre-header text and signature, then
//! `VDIHEADER1`), parsed from and built into the first 512 bytes of the file. I/O-free.
//! Every field is little-endian.

use guestctl_block::{Error, Result};

use crate::bytes::{bytes16, le32, le64};

/// The signature at offset 64.
pub const SIGNATURE: u32 = 0xbeda_107f;
/// Version 1.1, the only one VirtualBox has written since 2008 (and the only one qemu reads).
pub const VERSION_1_1: u32 = 0x0001_0001;
/// Bytes of the header area read and written (pre-header + header, padded).
pub const HEADER_LEN: usize = 512;
/// `cbHeader` of a version 1.1 header without (384) and with (400) the LCHS geometry.
pub const HEADER_SIZE_V1: u32 = 0x180;
/// The pre-header text qemu and VirtualBox write.
pub const TEXT: &str = "<<< Oracle VM VirtualBox Disk Image >>>\n";
/// Default (and qemu's only) block size.
pub const DEFAULT_BLOCK_SIZE: u32 = 1 << 20;

/// Image types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageType {
    /// Blocks allocated on write ("normal").
    Dynamic,
    /// Every block allocated at creation ("fixed").
    Static,
    /// An undo image (not read).
    Undo,
    /// A differencing image: unallocated blocks come from the parent.
    Differencing,
}

impl ImageType {
    /// From the header value.
    pub fn from_code(c: u32) -> Option<ImageType> {
        match c {
            1 => Some(ImageType::Dynamic),
            2 => Some(ImageType::Static),
            3 => Some(ImageType::Undo),
            4 => Some(ImageType::Differencing),
            _ => None,
        }
    }
    /// The header value.
    pub fn code(self) -> u32 {
        match self {
            ImageType::Dynamic => 1,
            ImageType::Static => 2,
            ImageType::Undo => 3,
            ImageType::Differencing => 4,
        }
    }
    /// The name guestctl prints (`subformat`).
    pub fn name(self) -> &'static str {
        match self {
            ImageType::Dynamic => "dynamic",
            ImageType::Static => "static",
            ImageType::Undo => "undo",
            ImageType::Differencing => "differencing",
        }
    }
}

/// A parsed VDI header (nothing validated beyond the signature: see `vdi::open`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The pre-header text (informational).
    pub text: String,
    /// Major << 16 | minor.
    pub version: u32,
    /// `cbHeader`.
    pub header_size: u32,
    /// The raw image type.
    pub image_type: u32,
    /// Image flags.
    pub flags: u32,
    /// The comment.
    pub description: String,
    /// Byte offset of the block map.
    pub offset_bmap: u32,
    /// Byte offset of the first block.
    pub offset_data: u32,
    /// Legacy geometry: cylinders, heads, sectors, sector size.
    pub geometry: [u32; 4],
    /// Guest size in bytes.
    pub disk_size: u64,
    /// Bytes per block.
    pub block_size: u32,
    /// Service bytes before each block's data.
    pub block_extra: u32,
    /// Blocks in the image (block map entries).
    pub blocks_in_image: u32,
    /// Blocks allocated.
    pub blocks_allocated: u32,
    /// `uuidCreate`: this image's UUID.
    pub uuid_image: [u8; 16],
    /// `uuidModify`: changed on every modification.
    pub uuid_modify: [u8; 16],
    /// `uuidLinkage`: the parent's `uuidCreate` (differencing images).
    pub uuid_link: [u8; 16],
    /// `uuidParentModify`: the parent's `uuidModify` when this image was made.
    pub uuid_parent_modify: [u8; 16],
}

fn text_at(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

impl Header {
    /// Parses the first 512 bytes of a file (fewer is an error).
    pub fn parse(b: &[u8]) -> Result<Header> {
        if b.len() < HEADER_LEN {
            return Err(Error::corrupt(format!(
                "{} bytes are too few for a VDI header ({HEADER_LEN})",
                b.len()
            ))
            .structure("vdi header"));
        }
        let sig = le32(b, 64);
        if sig != SIGNATURE {
            return Err(
                Error::corrupt(format!("signature {sig:#010x} is not {SIGNATURE:#010x}"))
                    .structure("vdi header")
                    .at(64),
            );
        }
        Ok(Header {
            text: text_at(&b[..64]),
            version: le32(b, 68),
            header_size: le32(b, 72),
            image_type: le32(b, 76),
            flags: le32(b, 80),
            description: text_at(&b[84..340]),
            offset_bmap: le32(b, 340),
            offset_data: le32(b, 344),
            geometry: [le32(b, 348), le32(b, 352), le32(b, 356), le32(b, 360)],
            disk_size: le64(b, 368),
            block_size: le32(b, 376),
            block_extra: le32(b, 380),
            blocks_in_image: le32(b, 384),
            blocks_allocated: le32(b, 388),
            uuid_image: bytes16(b, 392),
            uuid_modify: bytes16(b, 408),
            uuid_link: bytes16(b, 424),
            uuid_parent_modify: bytes16(b, 440),
        })
    }

    /// The header as the first 512 bytes of a file.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        let t = self.text.as_bytes();
        b[..t.len().min(63)].copy_from_slice(&t[..t.len().min(63)]);
        b[64..68].copy_from_slice(&SIGNATURE.to_le_bytes());
        b[68..72].copy_from_slice(&self.version.to_le_bytes());
        b[72..76].copy_from_slice(&self.header_size.to_le_bytes());
        b[76..80].copy_from_slice(&self.image_type.to_le_bytes());
        b[80..84].copy_from_slice(&self.flags.to_le_bytes());
        let d = self.description.as_bytes();
        b[84..84 + d.len().min(255)].copy_from_slice(&d[..d.len().min(255)]);
        b[340..344].copy_from_slice(&self.offset_bmap.to_le_bytes());
        b[344..348].copy_from_slice(&self.offset_data.to_le_bytes());
        for (i, g) in self.geometry.iter().enumerate() {
            b[348 + 4 * i..352 + 4 * i].copy_from_slice(&g.to_le_bytes());
        }
        b[368..376].copy_from_slice(&self.disk_size.to_le_bytes());
        b[376..380].copy_from_slice(&self.block_size.to_le_bytes());
        b[380..384].copy_from_slice(&self.block_extra.to_le_bytes());
        b[384..388].copy_from_slice(&self.blocks_in_image.to_le_bytes());
        b[388..392].copy_from_slice(&self.blocks_allocated.to_le_bytes());
        b[392..408].copy_from_slice(&self.uuid_image);
        b[408..424].copy_from_slice(&self.uuid_modify);
        b[424..440].copy_from_slice(&self.uuid_link);
        b[440..456].copy_from_slice(&self.uuid_parent_modify);
        b
    }

    /// A fresh header for `blocks` blocks of `block_size` bytes: the map at 512, the data
    /// right after it (whole sectors), the given UUIDs, nothing allocated yet. Fails when the
    /// map would end past the 4 GiB a 32-bit offset reaches.
    pub fn new(
        kind: ImageType,
        disk_size: u64,
        block_size: u32,
        blocks: u32,
        uuid_image: [u8; 16],
        uuid_modify: [u8; 16],
    ) -> Result<Header> {
        let map_bytes = (u64::from(blocks) * 4).div_ceil(512) * 512;
        let offset_data = u32::try_from(512 + map_bytes).map_err(|_| {
            Error::unsupported("the VDI block map would end past 4 GiB").structure("vdi header")
        })?;
        Ok(Header {
            text: TEXT.into(),
            version: VERSION_1_1,
            header_size: HEADER_SIZE_V1,
            image_type: kind.code(),
            flags: 0,
            description: String::new(),
            offset_bmap: 512,
            offset_data,
            geometry: [0, 0, 0, 512],
            disk_size,
            block_size,
            block_extra: 0,
            blocks_in_image: blocks,
            blocks_allocated: 0,
            uuid_image,
            uuid_modify,
            uuid_link: [0; 16],
            uuid_parent_modify: [0; 16],
        })
    }

    /// The image type, if it is one the format defines.
    pub fn kind(&self) -> Option<ImageType> {
        ImageType::from_code(self.image_type)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A header for `blocks` blocks of `bs` bytes, map at 512, data right after it.
    pub(crate) fn header(kind: ImageType, size: u64, bs: u32, blocks: u32) -> Header {
        Header::new(kind, size, bs, blocks, [1; 16], [2; 16]).expect("small map")
    }

    #[test]
    fn round_trip() {
        let h = header(ImageType::Differencing, 5 << 20, 1 << 20, 5);
        let b = h.to_bytes();
        assert_eq!(Header::parse(&b).expect("parse"), h);
        assert_eq!(h.kind(), Some(ImageType::Differencing));
        let mut bad = b;
        bad[64] = 0;
        assert!(Header::parse(&bad)
            .expect_err("sig")
            .to_string()
            .contains("signature"));
        assert!(Header::parse(&b[..100]).is_err());
    }
}
