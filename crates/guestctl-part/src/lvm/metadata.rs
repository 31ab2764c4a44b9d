//! The volume-group model built from a parsed metadata text: PVs, LVs and their segments.
//! Pure: no device is touched here; counts are capped and numbers checked for sign and range.

use guestctl_block::Error;

use super::text::{Section, Value};
use super::{Result, MAX_LVS, MAX_PVS, MAX_SEGMENTS};

/// A physical volume as the VG metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PvMeta {
    /// Name inside the metadata (`pv0`, `pv1`, …).
    pub name: String,
    /// PV UUID with dashes (`xxxxxx-xxxx-…`).
    pub id: String,
    /// The device path LVM last saw (a hint only).
    pub device_hint: Option<String>,
    /// Device size in sectors, when recorded.
    pub dev_size: Option<u64>,
    /// First physical extent, in sectors from the start of the PV.
    pub pe_start: u64,
    /// Number of physical extents.
    pub pe_count: u64,
}

/// What a segment is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SegmentKind {
    /// `striped` (a linear segment is 1 stripe).
    Striped {
        /// Stripe (chunk) size in sectors; 0 for one stripe.
        stripe_size: u64,
        /// `(pv name, first physical extent)` of each stripe.
        stripes: Vec<(String, u64)>,
    },
    /// Any other segment type (thin, thin-pool, raid1, mirror, snapshot, cache, …).
    Other(String),
}

/// One segment of an LV.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// First logical extent.
    pub start_extent: u64,
    /// Number of logical extents.
    pub extent_count: u64,
    /// Type and layout.
    pub kind: SegmentKind,
}

impl Segment {
    /// The `type` string (`striped`, `thin`, …).
    pub fn type_name(&self) -> &str {
        match &self.kind {
            SegmentKind::Striped { .. } => "striped",
            SegmentKind::Other(t) => t,
        }
    }
}

/// A logical volume as the metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LvMeta {
    /// LV name.
    pub name: String,
    /// LV UUID with dashes.
    pub id: String,
    /// Status flags (`READ`, `WRITE`, `VISIBLE`, …).
    pub status: Vec<String>,
    /// Segments in metadata order.
    pub segments: Vec<Segment>,
}

impl LvMeta {
    /// Whether the LV is user-visible (hidden sub-LVs of pools, mirrors and raid are not).
    pub fn visible(&self) -> bool {
        self.status.iter().any(|s| s == "VISIBLE")
    }
    /// Total logical extents (sum of the segments, saturating).
    pub fn extent_count(&self) -> u64 {
        self.segments
            .iter()
            .fold(0u64, |a, s| a.saturating_add(s.extent_count))
    }
}

/// A volume group's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VgMeta {
    /// VG name.
    pub name: String,
    /// VG UUID with dashes.
    pub id: String,
    /// Metadata sequence number (higher is newer).
    pub seqno: u64,
    /// Extent size in sectors.
    pub extent_size: u64,
    /// Status flags.
    pub status: Vec<String>,
    /// PVs in metadata order.
    pub pvs: Vec<PvMeta>,
    /// LVs in metadata order.
    pub lvs: Vec<LvMeta>,
}

fn e(msg: impl Into<String>) -> Error {
    Error::corrupt(msg.into()).structure("LVM2 metadata")
}

fn uint(s: &Section, key: &str, what: &str) -> Result<u64> {
    match s.get(key) {
        Some(Value::Int(i)) if *i >= 0 => Ok(*i as u64),
        Some(Value::Int(i)) => Err(e(format!("{what}: {key} = {i} is negative"))),
        Some(_) => Err(e(format!("{what}: {key} is not an integer"))),
        None => Err(e(format!("{what}: {key} is missing"))),
    }
}

fn string(s: &Section, key: &str, what: &str) -> Result<String> {
    s.str(key)
        .map(str::to_owned)
        .ok_or_else(|| e(format!("{what}: {key} is missing or not a string")))
}

fn flags(s: &Section, key: &str) -> Vec<String> {
    s.array(key)
        .unwrap_or(&[])
        .iter()
        .filter_map(|v| match v {
            Value::Str(s) => Some(s.clone()),
            _ => None,
        })
        .collect()
}

/// Builds the VG model from a parsed metadata text: the one top-level section is the VG.
pub fn vg_from_text(top: &Section) -> Result<VgMeta> {
    let mut vgs = top.sections();
    let (name, vg) = vgs
        .next()
        .ok_or_else(|| e("no volume group section in the metadata text"))?;
    let what = format!("VG {name}");
    let extent_size = uint(vg, "extent_size", &what)?;
    if extent_size == 0 || extent_size > (1u64 << 32) {
        return Err(e(format!(
            "{what}: extent_size {extent_size} sectors is invalid"
        )));
    }
    let mut pvs = Vec::new();
    if let Some(list) = vg.section("physical_volumes") {
        for (pname, p) in list.sections() {
            if pvs.len() >= MAX_PVS {
                return Err(e(format!("{what}: more than {MAX_PVS} physical volumes")));
            }
            let pw = format!("{what} PV {pname}");
            pvs.push(PvMeta {
                name: pname.to_owned(),
                id: string(p, "id", &pw)?,
                device_hint: p.str("device").map(str::to_owned),
                dev_size: p.int("dev_size").and_then(|v| u64::try_from(v).ok()),
                pe_start: uint(p, "pe_start", &pw)?,
                pe_count: uint(p, "pe_count", &pw)?,
            });
        }
    }
    let mut lvs = Vec::new();
    if let Some(list) = vg.section("logical_volumes") {
        for (lname, l) in list.sections() {
            if lvs.len() >= MAX_LVS {
                return Err(e(format!("{what}: more than {MAX_LVS} logical volumes")));
            }
            lvs.push(lv_from(lname, l, &what)?);
        }
    }
    Ok(VgMeta {
        name: name.to_owned(),
        id: string(vg, "id", &what)?,
        seqno: uint(vg, "seqno", &what)?,
        extent_size,
        status: flags(vg, "status"),
        pvs,
        lvs,
    })
}

fn lv_from(name: &str, l: &Section, vg: &str) -> Result<LvMeta> {
    let what = format!("{vg} LV {name}");
    let mut segments = Vec::new();
    for (sname, s) in l.sections() {
        if !sname.starts_with("segment") {
            continue;
        }
        if segments.len() >= MAX_SEGMENTS {
            return Err(e(format!("{what}: more than {MAX_SEGMENTS} segments")));
        }
        let sw = format!("{what} {sname}");
        let ty = string(s, "type", &sw)?;
        let kind = if ty == "striped" {
            let count = uint(s, "stripe_count", &sw)?;
            let list = s
                .array("stripes")
                .ok_or_else(|| e(format!("{sw}: stripes is missing")))?;
            if count == 0 || count > MAX_PVS as u64 || list.len() as u64 != count * 2 {
                return Err(e(format!(
                    "{sw}: stripe_count {count} does not match {} stripes entries",
                    list.len()
                )));
            }
            let mut stripes = Vec::new();
            for pair in list.chunks(2) {
                match pair {
                    [Value::Str(pv), Value::Int(pe)] if *pe >= 0 => {
                        stripes.push((pv.clone(), *pe as u64));
                    }
                    _ => return Err(e(format!("{sw}: stripes must be (\"pv\", extent) pairs"))),
                }
            }
            let stripe_size = if count > 1 {
                let ss = uint(s, "stripe_size", &sw)?;
                if ss == 0 || ss > (1u64 << 32) {
                    return Err(e(format!("{sw}: stripe_size {ss} is invalid")));
                }
                ss
            } else {
                0
            };
            SegmentKind::Striped {
                stripe_size,
                stripes,
            }
        } else {
            SegmentKind::Other(ty)
        };
        segments.push(Segment {
            start_extent: uint(s, "start_extent", &sw)?,
            extent_count: uint(s, "extent_count", &sw)?,
            kind,
        });
    }
    Ok(LvMeta {
        name: name.to_owned(),
        id: string(l, "id", &what)?,
        status: flags(l, "status"),
        segments,
    })
}
