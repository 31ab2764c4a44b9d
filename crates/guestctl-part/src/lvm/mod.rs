//! LVM2 volume groups, read-only and in process.
//!
//! [`scan`] looks for PV labels on the devices it is given (whole disks or partitions,
//! possibly on different disks), reads the newest metadata of each volume group from the PVs'
//! metadata areas, and returns one [`VolumeGroup`] per VG. [`VolumeGroup::open_lv`] gives a
//! logical volume as a [`BlockDevice`] that maps LV offsets onto the PV devices.
//!
//! Readable: LVs made only of `striped` segments (linear = one stripe) whose PVs are all
//! present. Refused with a reason ([`LvInfo::unreadable`]): thin, thin-pool, raid, mirror,
//! snapshot, cache, vdo, … ("unsupported segment type X"), LVs on a missing PV, and LVs whose
//! extents point past their PV. Hidden sub-LVs (`pool_tdata`, `lv_rimage_0`, …) are listed
//! with `visible == false`.
//!
//! Hostile input: metadata text ≤ [`MAX_TEXT`] bytes, nesting ≤ [`MAX_DEPTH`], ≤ [`MAX_PVS`]
//! PVs and ≤ [`MAX_LVS`] LVs per VG, ≤ [`MAX_SEGMENTS`] segments per LV; extent arithmetic is
//! checked and every extent range is checked against its PV device's size. The parsers
//! ([`label`], [`text`], [`metadata`]) are pure functions over bytes.
//!
//! Names: libguestfs calls an LV `/dev/VG/LV`; device-mapper calls it `/dev/mapper/VG-LV` with
//! every `-` inside the names doubled ([`mapper_name`], [`parse_mapper_name`]).

pub mod label;
pub mod metadata;
pub mod text;

use std::collections::HashMap;
use std::sync::Arc;

use guestctl_block::{clip, BlockDevice, Error, ErrorKind, Mapping};

pub use label::{DiskArea, MdaHeader, PvLabel, RawLocation};
pub use metadata::{LvMeta, PvMeta, Segment, SegmentKind, VgMeta};

/// This crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Largest metadata text read (a window of the circular buffer).
pub const MAX_TEXT: usize = 1 << 20;
/// Deepest nesting of sections/arrays in the metadata text.
pub const MAX_DEPTH: usize = 32;
/// Most PVs per VG (and most PV devices a scan considers).
pub const MAX_PVS: usize = 1024;
/// Most LVs per VG.
pub const MAX_LVS: usize = 1024;
/// Most segments per LV.
pub const MAX_SEGMENTS: usize = 1024;
/// Most data or metadata areas in one PV label.
pub const MAX_AREAS: usize = 8;

const SECTOR: u64 = 512;

/// A PV of a volume group, with the device it was found on (if it was).
#[derive(Debug, Clone)]
pub struct PhysicalVolume {
    /// What the metadata says about it.
    pub meta: PvMeta,
    /// The caller's name for the device carrying it (`/dev/sda2`), when found.
    pub device_name: Option<String>,
    /// The device, when found.
    pub device: Option<Arc<dyn BlockDevice>>,
}

/// An LV of a volume group.
#[derive(Debug, Clone)]
pub struct LvInfo {
    /// What the metadata says about it.
    pub meta: LvMeta,
    /// Size in bytes (extents × extent size).
    pub size: u64,
    /// Why it cannot be opened (`None`: readable).
    pub unreadable: Option<String>,
}

impl LvInfo {
    /// LV name.
    pub fn name(&self) -> &str {
        &self.meta.name
    }
    /// Whether the LV is user-visible.
    pub fn visible(&self) -> bool {
        self.meta.visible()
    }
}

/// A volume group found by [`scan`].
#[derive(Debug, Clone)]
pub struct VolumeGroup {
    /// The metadata used (the highest seqno found on any of its PVs).
    pub meta: VgMeta,
    /// PVs in metadata order.
    pub pvs: Vec<PhysicalVolume>,
    /// LVs in metadata order.
    pub lvs: Vec<LvInfo>,
    /// Things worth knowing (missing PVs, stale metadata copies, size mismatches).
    pub notes: Vec<String>,
}

impl VolumeGroup {
    /// VG name.
    pub fn name(&self) -> &str {
        &self.meta.name
    }

    /// Extent size in bytes.
    pub fn extent_bytes(&self) -> u64 {
        self.meta.extent_size * SECTOR
    }

    /// The LV named `name`.
    pub fn lv(&self, name: &str) -> Option<&LvInfo> {
        self.lvs.iter().find(|l| l.meta.name == name)
    }

    /// Opens the LV named `name` as a block device (fails with its reason when unreadable).
    pub fn open_lv(&self, name: &str) -> Result<Arc<dyn BlockDevice>> {
        let what = format!("LVM2 LV {}/{name}", self.meta.name);
        let lv = self.lv(name).ok_or_else(|| {
            Error::new(ErrorKind::InvalidInput, "no such logical volume").structure(what.clone())
        })?;
        if let Some(why) = &lv.unreadable {
            return Err(Error::unsupported(why.clone()).structure(what));
        }
        let lv = build(self, &lv.meta).map_err(|e| e.structure(what))?;
        Ok(Arc::new(lv))
    }
}

/// What a scan found beside the volume groups: devices whose LVM structures could not be read.
#[derive(Debug, Default)]
pub struct ScanReport {
    /// Volume groups found.
    pub groups: Vec<VolumeGroup>,
    /// One error per device (or metadata area) that looked like LVM but could not be read.
    pub problems: Vec<(String, Error)>,
}

struct Found {
    name: String,
    dev: Arc<dyn BlockDevice>,
    label: PvLabel,
}

/// Scans `devices` (caller's name, device) for LVM2 PVs and assembles their volume groups.
/// Fails only when PV labels were found but no volume group could be read at all; see
/// [`scan_report`] for the per-device problems.
pub fn scan(devices: &[(String, Arc<dyn BlockDevice>)]) -> Result<Vec<VolumeGroup>> {
    let mut r = scan_report(devices)?;
    if r.groups.is_empty() && !r.problems.is_empty() {
        let (name, e) = r.problems.swap_remove(0);
        return Err(e.path(name));
    }
    Ok(r.groups)
}

/// Like [`scan`], also returning the devices that failed. Errs only if `devices` is longer
/// than [`MAX_PVS`].
pub fn scan_report(devices: &[(String, Arc<dyn BlockDevice>)]) -> Result<ScanReport> {
    if devices.len() > MAX_PVS {
        return Err(Error::refused(format!(
            "{} devices given; at most {MAX_PVS} are scanned for LVM",
            devices.len()
        )));
    }
    let mut report = ScanReport::default();
    let mut found: Vec<Found> = Vec::new();
    // VG id (no dashes) -> best (metadata, which device it came from).
    let mut best: HashMap<String, VgMeta> = HashMap::new();
    let mut seen_seqnos: HashMap<String, Vec<u64>> = HashMap::new();
    for (name, dev) in devices {
        let label = match read_label(dev.as_ref()) {
            Ok(Some(l)) => l,
            Ok(None) => continue,
            Err(e) => {
                report.problems.push((name.clone(), e));
                continue;
            }
        };
        for area in &label.metadata_areas {
            match read_metadata(dev.as_ref(), area) {
                Ok(Some(vg)) => {
                    let key = undash(&vg.id);
                    seen_seqnos.entry(key.clone()).or_default().push(vg.seqno);
                    let newer = best.get(&key).is_none_or(|b| vg.seqno > b.seqno);
                    if newer {
                        best.insert(key, vg);
                    }
                }
                Ok(None) => {}
                Err(e) => report.problems.push((name.clone(), e)),
            }
        }
        found.push(Found {
            name: name.clone(),
            dev: dev.clone(),
            label,
        });
    }
    let mut groups: Vec<VolumeGroup> = best
        .into_iter()
        .map(|(key, meta)| {
            let seqnos = seen_seqnos.remove(&key).unwrap_or_default();
            assemble(meta, &found, &seqnos)
        })
        .collect();
    groups.sort_by(|a, b| a.meta.name.cmp(&b.meta.name));
    report.groups = groups;
    Ok(report)
}

fn undash(s: &str) -> String {
    s.chars().filter(|&c| c != '-').collect()
}

/// Reads and parses the label of `dev` (`Ok(None)`: not a PV).
pub fn read_label(dev: &dyn BlockDevice) -> Result<Option<PvLabel>> {
    let n = (label::LABEL_SCAN_SECTORS * SECTOR).min(dev.size()) as usize;
    let mut head = vec![0u8; n];
    dev.read_exact_at(0, &mut head)
        .map_err(|e| e.structure("LVM2 label").at(0))?;
    label::parse_label(&head)
}

/// Reads the committed metadata of one metadata area (`Ok(None)`: the area holds none, as on
/// a PV that belongs to no VG, or it is marked ignored).
pub fn read_metadata(dev: &dyn BlockDevice, area: &DiskArea) -> Result<Option<VgMeta>> {
    let at = area.offset;
    let mda_err = |e: Error| e.structure("LVM2 metadata area header").at(at);
    let end = at.checked_add(label::MDA_HEADER_SIZE);
    if end.is_none_or(|e| e > dev.size()) {
        return Err(mda_err(Error::corrupt(format!(
            "metadata area at byte {at} lies past the end of the device ({} bytes)",
            dev.size()
        ))));
    }
    let mut hb = vec![0u8; label::MDA_HEADER_SIZE as usize];
    dev.read_exact_at(at, &mut hb).map_err(mda_err)?;
    let hdr = label::parse_mda_header(&hb).map_err(mda_err)?;
    if hdr.start != at {
        return Err(mda_err(Error::corrupt(format!(
            "metadata area header says it starts at byte {}, found at byte {at}",
            hdr.start
        ))));
    }
    // The area's size: the label's, when given; the header's must not exceed the device.
    let size = if area.size != 0 { area.size } else { hdr.size };
    if at.checked_add(size).is_none_or(|e| e > dev.size()) {
        return Err(mda_err(Error::corrupt(format!(
            "metadata area of {size} bytes runs past the end of the device ({} bytes)",
            dev.size()
        ))));
    }
    let Some(loc) = hdr.locations.first() else {
        return Ok(None);
    };
    if loc.ignored {
        return Ok(None);
    }
    let text_err = |e: Error| e.structure("LVM2 metadata text").at(at + loc.offset);
    let ranges = label::text_ranges(size, loc).map_err(text_err)?;
    let mut text = Vec::with_capacity(loc.size as usize);
    for (off, len) in ranges {
        let start = text.len();
        text.resize(start + len as usize, 0);
        dev.read_exact_at(at + off, &mut text[start..])
            .map_err(text_err)?;
    }
    label::check_text(loc, &text).map_err(text_err)?;
    let top = text::parse(&text).map_err(text_err)?;
    let vg = metadata::vg_from_text(&top).map_err(text_err)?;
    Ok(Some(vg))
}

fn assemble(meta: VgMeta, found: &[Found], seqnos: &[u64]) -> VolumeGroup {
    let mut notes = Vec::new();
    if seqnos.iter().any(|&s| s != meta.seqno) {
        notes.push(format!(
            "metadata copies with older sequence numbers were ignored (using seqno {})",
            meta.seqno
        ));
    }
    let pvs: Vec<PhysicalVolume> = meta
        .pvs
        .iter()
        .map(|p| {
            let f = found.iter().find(|f| f.label.pv_uuid == undash(&p.id));
            if f.is_none() {
                notes.push(format!("PV {} ({}) is missing", p.name, p.id));
            }
            PhysicalVolume {
                meta: p.clone(),
                device_name: f.map(|f| f.name.clone()),
                device: f.map(|f| f.dev.clone()),
            }
        })
        .collect();
    let mut vg = VolumeGroup {
        meta,
        pvs,
        lvs: Vec::new(),
        notes,
    };
    vg.lvs = vg
        .meta
        .lvs
        .iter()
        .map(|l| {
            let size = l.extent_count().saturating_mul(vg.extent_bytes());
            let unreadable = build(&vg, l).err().map(|e| e.message().to_owned());
            LvInfo {
                meta: l.clone(),
                size,
                unreadable,
            }
        })
        .collect();
    vg
}

/// A logical volume as a block device: LV byte offsets mapped onto PV device offsets.
#[derive(Debug, Clone)]
pub struct LogicalVolume {
    size: u64,
    segments: Vec<MappedSegment>,
}

#[derive(Debug, Clone)]
struct MappedSegment {
    /// LV byte offset of the segment.
    start: u64,
    /// Length in bytes.
    len: u64,
    /// Chunk size in bytes (the segment length for one stripe).
    chunk: u64,
    /// Each stripe's device and the byte offset of its first extent on it.
    stripes: Vec<(Arc<dyn BlockDevice>, u64)>,
}

fn build(vg: &VolumeGroup, lv: &LvMeta) -> Result<LogicalVolume> {
    let ext = vg.extent_bytes();
    let mut segs: Vec<&Segment> = lv.segments.iter().collect();
    segs.sort_by_key(|s| s.start_extent);
    let mut out = Vec::with_capacity(segs.len());
    let mut next = 0u64;
    let overflow = || Error::corrupt(format!("LV {}: extent arithmetic overflows", lv.name));
    for s in segs {
        let (stripe_size, stripes) = match &s.kind {
            SegmentKind::Striped {
                stripe_size,
                stripes,
            } => (*stripe_size, stripes),
            SegmentKind::Other(t) => {
                return Err(Error::unsupported(format!("unsupported segment type {t}")));
            }
        };
        if s.start_extent != next {
            return Err(Error::corrupt(format!(
                "segment at extent {} does not follow the previous one (expected extent {next})",
                s.start_extent
            )));
        }
        if s.extent_count == 0 {
            return Err(Error::corrupt(format!(
                "segment at extent {} has no extents",
                s.start_extent
            )));
        }
        let n = stripes.len() as u64;
        if s.extent_count % n != 0 {
            return Err(Error::corrupt(format!(
                "segment at extent {}: {} extents cannot be split over {n} stripes",
                s.start_extent, s.extent_count
            )));
        }
        let per_stripe = s.extent_count / n;
        let mut devs = Vec::with_capacity(stripes.len());
        for (pv_name, pe) in stripes {
            let pv = vg
                .pvs
                .iter()
                .find(|p| &p.meta.name == pv_name)
                .ok_or_else(|| Error::corrupt(format!("segment names unknown PV {pv_name}")))?;
            let dev = pv.device.clone().ok_or_else(|| {
                Error::new(
                    ErrorKind::Refused,
                    format!("PV {pv_name} ({}) is missing", pv.meta.id),
                )
            })?;
            let pe_end = pe.checked_add(per_stripe).ok_or_else(overflow)?;
            if pe_end > pv.meta.pe_count {
                return Err(Error::corrupt(format!(
                    "extents {pe}..{pe_end} lie past the {} extents of PV {pv_name}",
                    pv.meta.pe_count
                )));
            }
            let base = pv
                .meta
                .pe_start
                .checked_mul(SECTOR)
                .and_then(|b| pe.checked_mul(ext).and_then(|o| b.checked_add(o)))
                .ok_or_else(overflow)?;
            let end = per_stripe
                .checked_mul(ext)
                .and_then(|l| base.checked_add(l))
                .ok_or_else(overflow)?;
            if end > dev.size() {
                return Err(Error::corrupt(format!(
                    "extents {pe}..{pe_end} of PV {pv_name} end at byte {end}, past its device ({} bytes)",
                    dev.size()
                )));
            }
            devs.push((dev, base));
        }
        let start = s.start_extent.checked_mul(ext).ok_or_else(overflow)?;
        let len = s.extent_count.checked_mul(ext).ok_or_else(overflow)?;
        let chunk = if n == 1 {
            len
        } else {
            stripe_size.checked_mul(SECTOR).ok_or_else(overflow)?
        };
        // Like dm-stripe: each stripe's length must be whole chunks, so that every chunk
        // maps inside its stripe's extents.
        if (len / n) % chunk != 0 {
            return Err(Error::corrupt(format!(
                "segment at extent {}: stripe length {} bytes is not a multiple of the {chunk}-byte stripe size",
                s.start_extent,
                len / n
            )));
        }
        out.push(MappedSegment {
            start,
            len,
            chunk,
            stripes: devs,
        });
        next = s
            .start_extent
            .checked_add(s.extent_count)
            .ok_or_else(overflow)?;
    }
    let size = next.checked_mul(ext).ok_or_else(overflow)?;
    Ok(LogicalVolume {
        size,
        segments: out,
    })
}

impl LogicalVolume {
    /// The device and byte offset holding LV byte `off`, and how many bytes from there are
    /// contiguous on that device (within one segment and chunk).
    fn locate(&self, off: u64) -> Option<(&Arc<dyn BlockDevice>, u64, u64)> {
        let i = self.segments.partition_point(|s| s.start + s.len <= off);
        let s = self.segments.get(i)?;
        let o = off.checked_sub(s.start)?;
        let n = s.stripes.len() as u64;
        let (c, within) = (o / s.chunk, o % s.chunk);
        let (stripe, row) = (c % n, c / n);
        let (dev, base) = s.stripes.get(stripe as usize)?;
        let dev_off = base + row * s.chunk + within;
        let run = (s.chunk - within).min(s.len - o);
        Some((dev, dev_off, run))
    }
}

impl BlockDevice for LogicalVolume {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> guestctl_block::Result<usize> {
        let (offset, n) = clip(offset, buf.len() as u64, self.size);
        let mut done = 0u64;
        while done < n {
            let at = offset + done;
            let (dev, dev_off, run) = self.locate(at).ok_or_else(|| {
                Error::corrupt(format!("LV byte {at} is not mapped")).structure("LVM2 LV")
            })?;
            let len = run.min(n - done);
            let b = &mut buf[done as usize..(done + len) as usize];
            dev.read_exact_at(dev_off, b)?;
            done += len;
        }
        Ok(n as usize)
    }

    fn map(&self, offset: u64, len: u64) -> guestctl_block::Result<Mapping> {
        let (offset, len) = clip(offset, len, self.size);
        let mut m = Mapping::new();
        let mut done = 0u64;
        while done < len {
            let at = offset + done;
            let (dev, dev_off, run) = self.locate(at).ok_or_else(|| {
                Error::corrupt(format!("LV byte {at} is not mapped")).structure("LVM2 LV")
            })?;
            let piece = run.min(len - done);
            let pm = dev.map(dev_off, piece)?;
            let mut covered = 0u64;
            for e in pm.iter() {
                let rel = e.offset.saturating_sub(dev_off);
                if rel != covered {
                    break;
                }
                m.push(at + rel, e.len, e.kind);
                covered = rel + e.len;
            }
            if covered < piece {
                m.push(
                    at + covered,
                    piece - covered,
                    guestctl_block::ExtentKind::Data,
                );
            }
            done += piece;
        }
        Ok(m)
    }
}

/// The device-mapper name of `vg/lv`: `VG-LV` with each `-` inside the names doubled
/// (`fixvg`, `my-data` → `fixvg-my--data`).
pub fn mapper_name(vg: &str, lv: &str) -> String {
    format!("{}-{}", vg.replace('-', "--"), lv.replace('-', "--"))
}

/// Splits a device-mapper name (with or without `/dev/mapper/`) into `(vg, lv)`: the first
/// single `-` separates them, `--` stands for `-`. `None` when there is no single `-`.
pub fn parse_mapper_name(name: &str) -> Option<(String, String)> {
    let name = name.strip_prefix("/dev/mapper/").unwrap_or(name);
    let b = name.as_bytes();
    let mut vg = String::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'-' {
            if b.get(i + 1) == Some(&b'-') {
                vg.push('-');
                i += 2;
                continue;
            }
            let lv = name[i + 1..].replace("--", "-");
            if vg.is_empty() || lv.is_empty() {
                return None;
            }
            return Some((vg, lv));
        }
        let c = name[i..].chars().next()?;
        vg.push(c);
        i += c.len_utf8();
    }
    None
}

/// Splits `/dev/VG/LV` into `(vg, lv)`.
pub fn parse_lv_path(path: &str) -> Option<(String, String)> {
    let rest = path.strip_prefix("/dev/")?;
    let (vg, lv) = rest.split_once('/')?;
    if vg.is_empty() || lv.is_empty() || lv.contains('/') || vg == "mapper" {
        return None;
    }
    Some((vg.to_owned(), lv.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapper_names() {
        assert_eq!(mapper_name("fixvg", "my-data"), "fixvg-my--data");
        assert_eq!(mapper_name("a-b", "c"), "a--b-c");
        assert_eq!(
            parse_mapper_name("/dev/mapper/fixvg-my--data"),
            Some(("fixvg".into(), "my-data".into()))
        );
        assert_eq!(
            parse_mapper_name("a--b-c"),
            Some(("a-b".into(), "c".into()))
        );
        assert_eq!(
            parse_mapper_name("rhel-root"),
            Some(("rhel".into(), "root".into()))
        );
        assert_eq!(parse_mapper_name("nodash"), None);
        assert_eq!(parse_mapper_name("a--b"), None);
        for (vg, lv) in [("x-", "y"), ("v", "l-"), ("a--b", "c---d")] {
            assert_eq!(
                parse_mapper_name(&mapper_name(vg, lv)),
                Some((vg.into(), lv.into())),
                "{vg}/{lv}"
            );
        }
        assert_eq!(
            parse_lv_path("/dev/rhel/root"),
            Some(("rhel".into(), "root".into()))
        );
        assert_eq!(parse_lv_path("/dev/mapper/rhel-root"), None);
        assert_eq!(parse_lv_path("/dev/sda1"), None);
    }
}
