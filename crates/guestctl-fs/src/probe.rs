//! Filesystem (and container) probing by superblock signature, for every partition,
//! including the ones guestctl cannot read: type, label and UUID as `blkid` would show them.

use guestctl_block::BlockDevice;

/// What a probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// `ext2`/`ext3`/`ext4`, `vfat`, `exfat`, `ntfs`, `xfs`, `btrfs`, `swap`, `LVM2_member`,
    /// `crypto_LUKS`, `iso9660`, `ufs`, `zfs_member` (blkid's names).
    pub fs_type: String,
    /// Volume label ("" when none).
    pub label: String,
    /// UUID or serial ("" when none).
    pub uuid: String,
    /// Whether guestctl can read the files inside.
    pub readable: bool,
}

fn read(dev: &dyn BlockDevice, off: u64, len: usize) -> Option<Vec<u8>> {
    if off + len as u64 > dev.size() {
        return None;
    }
    let mut b = vec![0u8; len];
    dev.read_exact_at(off, &mut b).ok()?;
    Some(b)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn uuid(b: &[u8]) -> String {
    format!(
        "{}-{}-{}-{}-{}",
        hex(&b[0..4]),
        hex(&b[4..6]),
        hex(&b[6..8]),
        hex(&b[8..10]),
        hex(&b[10..16])
    )
}

fn text(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).trim_end().to_string()
}

fn p(fs_type: &str, label: String, uuid: String, readable: bool) -> Option<Probe> {
    Some(Probe {
        fs_type: fs_type.into(),
        label,
        uuid,
        readable,
    })
}

/// Probes `dev` (a partition or whole disk). `None`: nothing recognised.
pub fn probe(dev: &dyn BlockDevice) -> Option<Probe> {
    let head = read(dev, 0, 4096.min(dev.size() as usize))?;
    if head.len() >= 512 {
        if &head[3..11] == b"NTFS    " {
            let serial = u64::from_le_bytes(head[0x48..0x50].try_into().ok()?);
            return p("ntfs", String::new(), format!("{serial:016X}"), true);
        }
        if &head[3..11] == b"EXFAT   " {
            let serial = u32::from_le_bytes(head[0x64..0x68].try_into().ok()?);
            return p(
                "exfat",
                String::new(),
                format!("{:04X}-{:04X}", serial >> 16, serial & 0xFFFF),
                false,
            );
        }
        if head[510] == 0x55 && head[511] == 0xAA {
            let fat32 = &head[0x52..0x57] == b"FAT32";
            if fat32 || &head[0x36..0x39] == b"FAT" {
                let (id, lab) = if fat32 { (0x43, 0x47) } else { (0x27, 0x2B) };
                let serial = u32::from_le_bytes(head[id..id + 4].try_into().ok()?);
                let label = text(&head[lab..lab + 11]);
                let label = if label == "NO NAME" {
                    String::new()
                } else {
                    label
                };
                return p(
                    "vfat",
                    label,
                    format!("{:04X}-{:04X}", serial >> 16, serial & 0xFFFF),
                    true,
                );
            }
        }
        if &head[0..4] == b"XFSB" {
            if let Some((label, uuid)) = crate::xfs::superblock_info(&head[..512]) {
                return p("xfs", label, uuid, true);
            }
            return p(
                "xfs",
                text(&head[0x6C..0x78]),
                uuid(&head[0x20..0x30]),
                false,
            );
        }
        if &head[0..6] == b"LUKS\xba\xbe" {
            return p(
                "crypto_LUKS",
                String::new(),
                text(&head[0xA8..0xA8 + 40]),
                false,
            );
        }
        if head.len() >= 1024 && &head[512..520] == b"LABELONE" && &head[536..544] == b"LVM2 001" {
            return p(
                "LVM2_member",
                String::new(),
                lvm_uuid(&text(&head[544..576])),
                false,
            );
        }
    }
    if let Some(sb) = read(dev, 1024, 1024) {
        if sb[0x38] == 0x53 && sb[0x39] == 0xEF {
            if let Ok(s) = crate::ext::superblock_info(&sb) {
                return p(&s.0, s.1, s.2, true);
            }
        }
    }
    for at in crate::ufs::disk_offsets() {
        if let Some(b) = read(dev, at, 1376) {
            if let Ok(sb) = crate::ufs::parse_superblock(&b, at) {
                return p(
                    "ufs",
                    String::from_utf8_lossy(&sb.volname).into_owned(),
                    format!("{:08x}{:08x}", sb.id[0], sb.id[1]),
                    true,
                );
            }
        }
    }
    if let Some(b) = read(dev, 0x10000, 0x1000) {
        if &b[0x40..0x48] == b"_BHRfS_M" {
            return p(
                "btrfs",
                text(&b[0x12B..0x12B + 256]),
                uuid(&b[0x20..0x30]),
                false,
            );
        }
    }
    for page in [4096u64, 8192, 16384, 65536] {
        if let Some(b) = read(dev, page - 10, 10) {
            if &b == b"SWAPSPACE2" || &b == b"SWAP-SPACE" {
                let h = read(dev, 1024, 1024)?;
                return p("swap", text(&h[0x1C..0x2C]), uuid(&h[0x0C..0x1C]), false);
            }
        }
    }
    if let Some(b) = read(dev, 0x8000, 0x800) {
        if &b[1..6] == b"CD001" {
            return p("iso9660", text(&b[40..72]), String::new(), false);
        }
    }
    if zfs_uberblocks(dev) >= ZFS_WANT {
        return p("zfs_member", String::new(), String::new(), false);
    }
    None
}

/// A ZFS vdev label's size: two labels at the start of a device, two at its end.
const ZFS_LABEL: u64 = 256 << 10;
/// The uberblock ring of a label: its second half.
const ZFS_RING: u64 = 128 << 10;
/// An uberblock's magic, in the pool's byte order.
const ZFS_UBERBLOCK_MAGIC: u64 = 0x00ba_b10c;
/// How many uberblocks make a ZFS member, as blkid counts them (over the four labels).
const ZFS_WANT: usize = 4;

/// The uberblocks found in the rings of the four vdev labels of `dev` (slots of 1 KiB, the
/// smallest; larger ashifts use every 2nd, 4th, ... slot).
fn zfs_uberblocks(dev: &dyn BlockDevice) -> usize {
    let size = dev.size();
    if size < 4 * ZFS_LABEL {
        return 0;
    }
    let end = (size & !(ZFS_LABEL - 1)) - 2 * ZFS_LABEL;
    [0, ZFS_LABEL, end, end + ZFS_LABEL]
        .iter()
        .filter_map(|label| read(dev, label + ZFS_RING, ZFS_RING as usize))
        .map(|ring| {
            ring.chunks_exact(1024)
                .filter(|slot| {
                    let mut m = [0u8; 8];
                    m.copy_from_slice(&slot[..8]);
                    u64::from_le_bytes(m) == ZFS_UBERBLOCK_MAGIC
                        || u64::from_be_bytes(m) == ZFS_UBERBLOCK_MAGIC
                })
                .count()
        })
        .sum()
}

/// An LVM UUID as blkid and the LVM tools print it: 32 characters in groups of 6-4-4-4-4-4-6.
fn lvm_uuid(raw: &str) -> String {
    if raw.len() != 32 || !raw.is_ascii() {
        return raw.to_string();
    }
    let mut out = String::with_capacity(38);
    let mut at = 0;
    for (i, n) in [6, 4, 4, 4, 4, 4, 6].into_iter().enumerate() {
        if i > 0 {
            out.push('-');
        }
        out.push_str(&raw[at..at + n]);
        at += n;
    }
    out
}

/// What a probed type is, for messages: `btrfs filesystem`, `crypto_LUKS encrypted volume`,
/// `LVM2_member physical volume`, `swap area`.
pub fn describe(fs_type: &str) -> String {
    match fs_type {
        "crypto_LUKS" => format!("{fs_type} encrypted volume"),
        "LVM2_member" => format!("{fs_type} physical volume"),
        "zfs_member" => format!("{fs_type} pool device"),
        "swap" => "swap area".into(),
        _ => format!("{fs_type} filesystem"),
    }
}

/// Whether a device probed as `fs_type` holds files guestctl cannot read, so an operating
/// system (or part of one) may be there unseen: every type that is not `readable` except swap
/// (no files) and LVM2 physical volumes (their logical volumes are devices of their own).
/// Unrecognised content ([`probe`] returned `None`) is not such a device.
pub fn hides_files(fs_type: &str, readable: bool) -> bool {
    !readable && !matches!(fs_type, "swap" | "LVM2_member")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_counts_as_hidden_files() {
        assert!(hides_files("xfs", false));
        assert!(hides_files("btrfs", false));
        assert!(hides_files("crypto_LUKS", false));
        assert!(hides_files("iso9660", false));
        assert!(!hides_files("ext4", true));
        assert!(!hides_files("swap", false));
        assert!(!hides_files("LVM2_member", false));
        assert_eq!(describe("xfs"), "xfs filesystem");
        assert_eq!(describe("crypto_LUKS"), "crypto_LUKS encrypted volume");
    }

    /// ZFS labels with uberblocks (the magic at the start of ring slots, either byte order)
    /// probe as `zfs_member`; fewer than blkid's four do not.
    #[test]
    fn zfs_member_by_uberblocks() {
        let size = 4 << 20;
        let mut disk = vec![0u8; size];
        let put = |disk: &mut Vec<u8>, label: usize, slot: usize, be: bool| {
            let at = label + ZFS_RING as usize + slot * 1024;
            let m = if be {
                ZFS_UBERBLOCK_MAGIC.to_be_bytes()
            } else {
                ZFS_UBERBLOCK_MAGIC.to_le_bytes()
            };
            disk[at..at + 8].copy_from_slice(&m);
        };
        let labels = [0, 256 << 10, size - (512 << 10), size - (256 << 10)];
        for l in &labels[..3] {
            put(&mut disk, *l, 5, false);
        }
        let dev = guestctl_block::MemoryDevice::new(disk.clone());
        assert_eq!(probe(&dev), None, "three uberblocks are not enough");
        put(&mut disk, labels[3], 9, true);
        let dev = guestctl_block::MemoryDevice::new(disk);
        let got = probe(&dev).expect("zfs");
        assert_eq!((got.fs_type.as_str(), got.readable), ("zfs_member", false));
        assert!(hides_files(&got.fs_type, got.readable));
    }
}
