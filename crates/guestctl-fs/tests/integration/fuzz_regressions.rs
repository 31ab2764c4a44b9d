//! Every input a filesystem fuzz target crashed on, kept zstd-compressed under
//! tests/fuzz_regressions/<target>/<what-the-bug-was>.zst and replayed through the target's
//! entry point: none may panic or hang.

use std::path::Path;

fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz_regressions")
        .join(target);
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return out; // a target that never crashed has no directory
    };
    for e in entries {
        let p = e.expect("entry").path();
        let raw = std::fs::read(&p).expect("read");
        let data = zstd::decode_all(raw.as_slice()).expect("zstd");
        out.push((p.display().to_string(), data));
    }
    out.sort();
    out
}

#[test]
fn xfs_regressions() {
    let all = inputs("xfs");
    assert!(!all.is_empty());
    for (name, data) in all {
        eprintln!("{name}");
        guestctl_fs::xfs::fuzz_walk(&data);
    }
}

#[test]
fn xfs_log_regressions() {
    // None yet: 55 minutes of fuzzing found no crash. Inputs added here are replayed.
    for (name, data) in inputs("xfs_log") {
        eprintln!("{name}");
        guestctl_fs::xfs::fuzz_log(&data);
    }
}
