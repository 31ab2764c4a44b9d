//! The LVM2 metadata text parser and VG model on hand-written edge cases (the syntax of
//! lvm2's config files as described in lvm.conf(5) and lvm2's doc/: assignments, sections,
//! strings with escapes, arrays, comments), and on the fixture's real metadata text.

use crate::lvm_common;

use guestctl_part::lvm::metadata::{vg_from_text, SegmentKind};
use guestctl_part::lvm::text::{parse, Value};
use guestctl_part::lvm::{self, label};
use lvm_common::*;

#[test]
fn syntax_edge_cases() {
    let t = b"a=1 b = \"x y\"c{d=[]}e=[\"p\",1,\"q\"]# c\nf = 0.5\n\tg\t=\t-0\nh = [1 2 3]\n";
    let s = parse(t).expect("parse");
    assert_eq!(s.int("a"), Some(1));
    assert_eq!(s.str("b"), Some("x y"));
    assert_eq!(s.section("c").and_then(|c| c.array("d")), Some(&[][..]));
    assert_eq!(s.array("e").map(<[Value]>::len), Some(3));
    assert_eq!(s.get("f"), Some(&Value::Float(0.5)));
    assert_eq!(s.int("g"), Some(0));
    // Commas are optional between array elements in lvm2's own parser; we accept both.
    assert_eq!(
        s.array("h"),
        Some(&[Value::Int(1), Value::Int(2), Value::Int(3)][..])
    );
    // Escapes, '#' inside strings, names with dots/dashes/plus, repeated names (first wins).
    let s = parse(br#"n-a.m+e = "a # not a comment \"q\" \\ end" n-a.m+e = 2"#).expect("parse");
    assert_eq!(s.str("n-a.m+e"), Some(r#"a # not a comment "q" \ end"#));
    // A NUL ends the text (lvm2 pads its buffers).
    let s = parse(b"a = 1\0garbage {{{").expect("nul");
    assert_eq!(s.int("a"), Some(1));
    // Empty and comment-only texts are empty sections.
    assert!(parse(b"").expect("empty").entries.is_empty());
    assert!(parse(b"# only\n# comments").expect("c").entries.is_empty());
    // Non-UTF-8 bytes in strings survive as replacement characters, not errors.
    let s = parse(b"a = \"\xff\xfe\"").expect("bytes");
    assert_eq!(s.str("a"), Some("\u{fffd}\u{fffd}"));
}

#[test]
fn syntax_errors_are_named() {
    for (t, want) in [
        (&b"a = "[..], "expected a value"),
        (b"a = \"open", "string not closed"),
        (b"a = \"x\\", "string not closed"),
        (b"a { b = 1", "not closed with '}'"),
        (b"a = [1, 2", "not closed with ']'"),
        (b"a = [[1]]", "expected a value"),
        (b"a = {", "expected a value"),
        (b"}", "expected a name"),
        (b"a b", "expected '=' or '{'"),
        (b"a = 99999999999999999999", "bad number"),
        (b"a = 1x", "bad number"),
        (b"a = [,]", "expected a value"),
        (b"= 1", "expected a name"),
    ] {
        let e = parse(t).expect_err(&String::from_utf8_lossy(t));
        let s = e.to_string();
        assert!(s.contains(want), "{:?}: {s}", String::from_utf8_lossy(t));
        assert!(s.contains("LVM2 metadata text"), "{s}");
        assert!(s.contains("text byte"), "{s}");
    }
}

#[test]
fn vg_model_rejects_bad_numbers() {
    for (vg, want) in [
        ("v { id = \"i\" seqno = 1 }", "extent_size is missing"),
        ("v { id = \"i\" seqno = 1 extent_size = 0 }", "extent_size 0"),
        ("v { id = \"i\" seqno = -1 extent_size = 8 }", "negative"),
        ("v { id = 5 seqno = 1 extent_size = 8 }", "id is missing or not a string"),
        ("v { id = \"i\" seqno = \"1\" extent_size = 8 }", "not an integer"),
        (
            "v { id = \"i\" seqno = 1 extent_size = 8 physical_volumes { pv0 { id = \"p\" pe_start = -8 pe_count = 1 } } }",
            "pe_start = -8",
        ),
        ("contents = \"x\"", "no volume group section"),
    ] {
        let s = parse(vg.as_bytes()).expect("syntax is fine");
        let e = vg_from_text(&s).expect_err(vg);
        assert!(e.to_string().contains(want), "{vg}: {e}");
    }
}

#[test]
fn fixture_metadata_text() {
    // Read the committed text of PV 1 through the label and mda header, check its CRC, parse.
    let parts = partitions(fixture_bytes());
    let dev = &parts[0].1;
    let l = lvm::read_label(dev.as_ref()).expect("label").expect("PV");
    assert_eq!(l.sector, 1, "pvcreate writes the label in sector 1");
    assert_eq!(l.metadata_areas.len(), 1);
    assert_eq!(l.data_areas[0].offset, 262144, "pe_start of the manifest");
    let m = manifest();
    let pvs = m.rows("pvs", "pv");
    let uuid: String = pvs
        .iter()
        .find(|r| r["pv_name"] == m.pv_devices[0])
        .expect("pv row")["pv_uuid"]
        .replace('-', "");
    assert_eq!(l.pv_uuid, uuid);
    assert_eq!(l.device_size, dev.size());
    let vg = lvm::read_metadata(dev.as_ref(), &l.metadata_areas[0])
        .expect("metadata")
        .expect("a VG");
    assert_eq!(vg.name, "fixvg");
    let str_lv = vg.lvs.iter().find(|l| l.name == "str").expect("str");
    match &str_lv.segments[0].kind {
        SegmentKind::Striped {
            stripe_size,
            stripes,
        } => {
            assert_eq!(*stripe_size, 32, "16 KiB in sectors");
            assert_eq!(stripes.len(), 2);
        }
        k => panic!("{k:?}"),
    }
    // The raw header: magic, version 1, one committed location inside the area.
    let at = l.metadata_areas[0].offset;
    let mut hb = [0u8; 512];
    dev.read_exact_at(at, &mut hb).expect("read");
    let h = label::parse_mda_header(&hb).expect("mda");
    assert_eq!((h.version, h.start), (1, at));
    assert_eq!(h.size, l.metadata_areas[0].size);
    assert!(!h.locations[0].ignored);
}
