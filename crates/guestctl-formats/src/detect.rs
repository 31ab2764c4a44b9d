//! Format detection by magic bytes (never by file extension).

use serde::Serialize;
use std::fmt;

/// Image formats guestctl reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// A plain disk image: bytes as the guest sees them.
    Raw,
    /// QEMU copy-on-write v2/v3.
    Qcow2,
    /// VMware virtual disk (sparse, streamOptimized, flat, descriptor files).
    Vmdk,
    /// Microsoft VHD (fixed, dynamic, differencing); qemu calls it `vpc`.
    Vpc,
    /// VirtualBox disk image.
    Vdi,
    /// Microsoft Hyper-V virtual hard disk v2 (fixed, dynamic, differencing).
    Vhdx,
}

impl Format {
    /// The name qemu-img uses.
    pub fn name(self) -> &'static str {
        match self {
            Format::Raw => "raw",
            Format::Qcow2 => "qcow2",
            Format::Vmdk => "vmdk",
            Format::Vpc => "vpc",
            Format::Vdi => "vdi",
            Format::Vhdx => "vhdx",
        }
    }

    /// Parses a qemu-img style format name.
    pub fn from_name(name: &str) -> Option<Format> {
        match name {
            "raw" => Some(Format::Raw),
            "qcow2" => Some(Format::Qcow2),
            "vmdk" => Some(Format::Vmdk),
            "vpc" | "vhd" => Some(Format::Vpc),
            "vdi" => Some(Format::Vdi),
            "vhdx" => Some(Format::Vhdx),
            _ => None,
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What the first and last bytes of a file say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detected {
    /// A format we read.
    Supported(Format),
    /// A recognised format we do not read; the string is qemu-img's name for it where it has one.
    Unsupported(&'static str),
}

/// How many bytes from the start of the file [`detect`] wants.
pub const HEAD_LEN: usize = 1024;
/// How many bytes from the end of the file [`detect`] wants.
pub const TAIL_LEN: usize = 512;

/// Detects the format from the first [`HEAD_LEN`] bytes and the last [`TAIL_LEN`] bytes (either
/// may be shorter for small files). Anything not recognised is [`Format::Raw`].
pub fn detect(head: &[u8], tail: &[u8]) -> Detected {
    use Detected::{Supported, Unsupported};
    let starts = |m: &[u8]| head.starts_with(m);
    if starts(b"QFI\xfb") {
        let version = head
            .get(4..8)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            .unwrap_or(0);
        return match version {
            2 | 3 => Supported(Format::Qcow2),
            1 => Unsupported("qcow (version 1)"),
            _ => Unsupported("qcow2 of an unknown version"),
        };
    }
    if starts(b"KDMV") || is_vmdk_descriptor(head) {
        return Supported(Format::Vmdk);
    }
    if starts(b"COWD") {
        return Unsupported("vmdk (ESX vmfsSparse/COWD extent)");
    }
    if starts(&0xcafe_babe_u64.to_le_bytes()) {
        return Unsupported("vmdk (seSparse extent)");
    }
    if starts(b"conectix") {
        return Supported(Format::Vpc);
    }
    if starts(b"vhdxfile") {
        return Supported(Format::Vhdx);
    }
    if head.len() >= 68 && head[64..68] == 0xbeda_107f_u32.to_le_bytes() {
        return Supported(Format::Vdi);
    }
    if starts(b"WithoutFreeSpace") || starts(b"WithouFreSpacExt") {
        return Unsupported("parallels");
    }
    if starts(b"<?xml") && head.windows(21).any(|w| w == b"<Parallels_disk_image") {
        return Unsupported("parallels (DiskDescriptor.xml bundle)");
    }
    if starts(b"QED\0") {
        return Unsupported("qed");
    }
    if starts(b"LUKS\xba\xbe") {
        return Unsupported("luks (encrypted)");
    }
    if starts(b"EVF\x09\x0d\x0a\xff\x00") {
        return Unsupported("ewf (EnCase E01)");
    }
    if starts(b"Bochs Virtual HD Image") {
        return Unsupported("bochs");
    }
    if starts(b"#!/bin/sh\n#V2.0 Format") {
        return Unsupported("cloop");
    }
    if starts(b"shdw") {
        return Unsupported("asif (Apple sparse image)");
    }
    if tail.len() >= 512 {
        let t = &tail[tail.len() - 512..];
        // A fixed VHD: the data, then a 512-byte footer (511 bytes before Virtual PC 2004).
        if t.starts_with(b"conectix") || t[1..].starts_with(b"conectix") {
            return Supported(Format::Vpc);
        }
        if t.starts_with(b"koly") {
            return Unsupported("dmg");
        }
    }
    Supported(Format::Raw)
}

/// True when `head` looks like a VMDK text descriptor.
fn is_vmdk_descriptor(head: &[u8]) -> bool {
    let text = match std::str::from_utf8(&head[..head.len().min(HEAD_LEN)]) {
        Ok(t) => t,
        // The head may cut a multi-byte character; use the valid prefix.
        Err(e) => match std::str::from_utf8(&head[..e.valid_up_to()]) {
            Ok(t) => t,
            Err(_) => return false,
        },
    };
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    match lines.next() {
        Some(l) if l.starts_with("# Disk DescriptorFile") => true,
        Some(l) if l.starts_with('#') || l.starts_with("version=") => text
            .lines()
            .take(20)
            .any(|l| l.trim_start().starts_with("createType=")),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magics() {
        assert_eq!(
            detect(b"QFI\xfb\0\0\0\x03", &[]),
            Detected::Supported(Format::Qcow2)
        );
        assert!(matches!(
            detect(b"QFI\xfb\0\0\0\x01", &[]),
            Detected::Unsupported(_)
        ));
        assert_eq!(
            detect(b"KDMV\x01\0\0\0", &[]),
            Detected::Supported(Format::Vmdk)
        );
        assert_eq!(
            detect(b"# Disk DescriptorFile\nversion=1\n", &[]),
            Detected::Supported(Format::Vmdk)
        );
        assert_eq!(
            detect(&[0u8; 1024], &[0u8; 512]),
            Detected::Supported(Format::Raw)
        );
        let mut tail = [0u8; 512];
        tail[..8].copy_from_slice(b"conectix");
        assert_eq!(
            detect(&[0u8; 1024], &tail),
            Detected::Supported(Format::Vpc)
        );
        tail.copy_within(0..8, 1);
        assert_eq!(
            detect(&[0u8; 1024], &tail),
            Detected::Supported(Format::Vpc)
        );
        assert_eq!(detect(b"conectix", &[]), Detected::Supported(Format::Vpc));
        let mut vdi = [0u8; 1024];
        vdi[64..68].copy_from_slice(&0xbeda_107f_u32.to_le_bytes());
        assert_eq!(detect(&vdi, &[]), Detected::Supported(Format::Vdi));
        assert_eq!(detect(b"vhdxfile", &[]), Detected::Supported(Format::Vhdx));
    }
}
