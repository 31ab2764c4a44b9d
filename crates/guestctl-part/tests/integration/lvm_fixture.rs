//! fixtures/lvm.img.zst (made by scripts/make-lvm-fixture.sh with LVM's own tools) read back
//! and compared with fixtures/lvm.manifest: `vgs/pvs/lvs --reportformat json`, `lvs --segments
//! -o seg_pe_ranges`, and the sha256 of each readable LV as the kernel's device-mapper reads it
//! (`sha256sum /dev/fixvg/LV` in a VM the script boots; equal to the content it wrote).

use crate::lvm_common;

use std::collections::BTreeMap;

use guestctl_part::lvm::{self, SegmentKind, VolumeGroup};
use lvm_common::*;

fn fixture_vg() -> (VolumeGroup, Manifest) {
    let devs = partitions(fixture_bytes());
    assert_eq!(devs.len(), 2);
    let vgs = lvm::scan(&devs).expect("scan");
    assert_eq!(vgs.len(), 1, "one VG");
    (vgs.into_iter().next().expect("vg"), manifest())
}

fn num(row: &BTreeMap<String, String>, k: &str) -> u64 {
    row[k]
        .parse()
        .unwrap_or_else(|_| panic!("{k} = {:?}", row[k]))
}

#[test]
fn vg_and_pvs_match_vgs_and_pvs_reports() {
    let (vg, m) = fixture_vg();
    let v = &m.rows("vgs", "vg")[0];
    assert_eq!(vg.name(), v["vg_name"]);
    assert_eq!(vg.meta.id, v["vg_uuid"]);
    assert_eq!(vg.extent_bytes(), num(v, "vg_extent_size"));
    assert_eq!(vg.meta.seqno, num(v, "vg_seqno"));
    assert_eq!(vg.pvs.len() as u64, num(v, "pv_count"));
    assert_eq!(
        vg.lvs.iter().filter(|l| l.visible()).count() as u64,
        num(v, "lv_count")
    );
    let total: u64 = vg.pvs.iter().map(|p| p.meta.pe_count).sum();
    assert_eq!(total, num(v, "vg_extent_count"));
    assert!(vg.notes.is_empty(), "{:?}", vg.notes);

    let pvs = m.rows("pvs", "pv");
    assert_eq!(pvs.len(), 2);
    for row in &pvs {
        let pv = vg
            .pvs
            .iter()
            .find(|p| p.meta.id == row["pv_uuid"])
            .unwrap_or_else(|| panic!("PV {}", row["pv_uuid"]));
        assert_eq!(pv.meta.pe_start * 512, num(row, "pe_start"));
        assert_eq!(pv.meta.pe_count, num(row, "pv_pe_count"));
        assert_eq!(pv.meta.pe_count * vg.extent_bytes(), num(row, "pv_size"));
        // The loop device of partition N is /dev/sdaN to us.
        let idx = m
            .pv_devices
            .iter()
            .position(|d| *d == row["pv_name"])
            .expect("PV device in manifest");
        assert_eq!(
            pv.device_name.as_deref(),
            Some(format!("/dev/sda{}", idx + 1).as_str())
        );
        let dev = pv.device.as_ref().expect("device");
        assert_eq!(dev.size(), num(row, "dev_size"));
    }
}

#[test]
fn lvs_and_segments_match_lvs_reports() {
    let (vg, m) = fixture_vg();
    let lvs = m.rows("lvs", "lv");
    assert_eq!(lvs.len(), vg.lvs.len());
    for row in &lvs {
        let hidden = row["lv_name"].starts_with('[');
        let name = row["lv_name"].trim_matches(|c| c == '[' || c == ']');
        let lv = vg.lv(name).unwrap_or_else(|| panic!("LV {name}"));
        assert_eq!(lv.meta.id, row["lv_uuid"], "{name}");
        assert_eq!(lv.visible(), !hidden, "{name}");
        assert_eq!(lv.size, num(row, "lv_size"), "{name}");
        assert_eq!(
            lv.meta.segments.len() as u64,
            num(row, "seg_count"),
            "{name}"
        );
    }
    let segs = m.rows("segs", "seg");
    let pv_dev = |pv: &str| {
        let p = vg.pvs.iter().find(|p| p.meta.name == pv).expect("pv");
        let n: usize = p.device_name.as_deref().expect("dev")["/dev/sda".len()..]
            .parse()
            .expect("n");
        m.pv_devices[n - 1].clone()
    };
    let mut checked = 0;
    for row in &segs {
        let name = row["lv_name"].trim_matches(|c| c == '[' || c == ']');
        let lv = vg.lv(name).expect("lv");
        let seg = lv
            .meta
            .segments
            .iter()
            .find(|s| s.start_extent == num(row, "seg_start_pe"))
            .unwrap_or_else(|| panic!("{name} segment at {}", row["seg_start_pe"]));
        assert_eq!(seg.extent_count, num(row, "seg_size_pe"));
        match &seg.kind {
            SegmentKind::Striped {
                stripe_size,
                stripes,
            } => {
                let want = if stripes.len() == 1 {
                    "linear"
                } else {
                    "striped"
                };
                assert_eq!(row["segtype"], want, "{name}");
                assert_eq!(stripes.len() as u64, num(row, "stripes"));
                assert_eq!(stripe_size * 512, num(row, "stripe_size"));
                let per = seg.extent_count / stripes.len() as u64;
                let ranges: Vec<String> = stripes
                    .iter()
                    .map(|(pv, pe)| format!("{}:{}-{}", pv_dev(pv), pe, pe + per - 1))
                    .collect();
                assert_eq!(ranges.join(" "), row["seg_pe_ranges"], "{name}");
            }
            SegmentKind::Other(t) => assert_eq!(*t, row["segtype"]),
        }
        checked += 1;
    }
    assert_eq!(
        checked,
        vg.lvs.iter().map(|l| l.meta.segments.len()).sum::<usize>()
    );
    // The fragmented linear LV really is: 5 segments over both PVs.
    let lin = vg.lv("lin").expect("lin");
    assert_eq!(lin.meta.segments.len(), 5);
}

#[test]
fn readable_lvs_hash_like_the_manifest() {
    let (vg, m) = fixture_vg();
    assert_eq!(m.sha256.len(), 3);
    // The script's content hashes and the kernel's device-mapper view agree, and we with both.
    assert_eq!(m.sha256, m.dm_sha256);
    for (name, want) in &m.dm_sha256 {
        let dev = vg.open_lv(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(dev.size(), vg.lv(name).expect("lv").size);
        let all = read_all(dev.as_ref());
        assert_eq!(&sha256(&all), want, "{name}");
        // Odd-sized reads at odd offsets split across chunks and segments the same way.
        let mut pieced = vec![0u8; all.len()];
        let mut off = 0usize;
        let mut step = 1usize;
        while off < all.len() {
            let n = (step * 977 % 70_000 + 1).min(all.len() - off);
            let got = dev
                .read_at(off as u64, &mut pieced[off..off + n])
                .expect("read");
            assert_eq!(got, n);
            off += n;
            step += 1;
        }
        assert!(pieced == all, "{name}: pieced reads differ");
        // Reads at and past the end.
        let mut b = [0u8; 16];
        assert_eq!(dev.read_at(dev.size(), &mut b).expect("eof"), 0);
        assert_eq!(dev.read_at(dev.size() - 3, &mut b).expect("tail"), 3);
        let map = dev.map(0, dev.size()).expect("map");
        assert_eq!(map.iter().map(|e| e.len).sum::<u64>(), dev.size());
    }
    // The hidden linear sub-LVs of the thin pool are readable too.
    assert!(vg.lv("pool_tdata").expect("tdata").unreadable.is_none());
}

#[test]
fn thin_lvs_are_refused_with_their_segment_type() {
    let (vg, _) = fixture_vg();
    for (name, ty) in [("thin", "thin"), ("pool", "thin-pool")] {
        let lv = vg.lv(name).expect(name);
        let why = lv.unreadable.as_deref().expect("unreadable");
        assert_eq!(why, format!("unsupported segment type {ty}"));
        let e = vg.open_lv(name).expect_err("refused");
        assert!(
            e.to_string()
                .contains(&format!("unsupported segment type {ty}")),
            "{e}"
        );
        assert!(e.to_string().contains(&format!("fixvg/{name}")), "{e}");
    }
    assert!(vg.open_lv("nonesuch").is_err());
}

#[test]
fn missing_pv_makes_its_lvs_unreadable() {
    let mut devs = partitions(fixture_bytes());
    devs.truncate(1); // PV 1 only
    let vgs = lvm::scan(&devs).expect("scan");
    let vg = &vgs[0];
    assert!(
        vg.notes.iter().any(|n| n.contains("missing")),
        "{:?}",
        vg.notes
    );
    // lin and str need PV 2; my-data lives only there.
    for name in ["lin", "str", "my-data"] {
        let why = vg
            .lv(name)
            .expect(name)
            .unreadable
            .as_deref()
            .expect("unreadable");
        assert!(why.contains("missing"), "{name}: {why}");
        assert!(vg.open_lv(name).is_err());
    }
    // Only PV 2: same VG (its metadata copy), lin and str still unreadable.
    let mut devs = partitions(fixture_bytes());
    devs.remove(0);
    let vgs = lvm::scan(&devs).expect("scan");
    assert!(vgs[0].lv("my-data").expect("my-data").unreadable.is_none());
    assert!(vgs[0].lv("lin").expect("lin").unreadable.is_some());
    let m = manifest();
    let d = vgs[0].open_lv("my-data").expect("open");
    assert_eq!(sha256(&read_all(d.as_ref())), m.sha256["my-data"]);
}

#[test]
fn device_names() {
    let (vg, _) = fixture_vg();
    let name = lvm::mapper_name(vg.name(), "my-data");
    assert_eq!(name, "fixvg-my--data");
    let (v, l) = lvm::parse_mapper_name(&format!("/dev/mapper/{name}")).expect("parse");
    assert!(vg.lv(&l).is_some() && v == vg.name());
    let (v, l) = lvm::parse_lv_path("/dev/fixvg/my-data").expect("path");
    assert!(v == vg.name() && vg.lv(&l).is_some());
}
