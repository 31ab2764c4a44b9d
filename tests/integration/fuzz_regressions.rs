//! Every input a fuzzer ever crashed on, kept under tests/fuzz_regressions/<target>/<name>,
//! replayed through the same code path as its fuzz target. Names say what the bug was.

use std::path::Path;

use guestctl::formats::fuzz_open_and_read;
use guestctl::Format;

fn run_dir(target: &str, format: Format) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz_regressions")
        .join(target);
    let mut n = 0;
    for e in std::fs::read_dir(&dir).expect("regression dir") {
        let p = e.expect("entry").path();
        let data = std::fs::read(&p).expect("read");
        fuzz_open_and_read(format, &data);
        n += 1;
    }
    n
}

#[test]
fn vmdk_regressions() {
    assert!(run_dir("vmdk", Format::Vmdk) >= 1);
}

#[test]
fn qcow2_regressions() {
    run_dir("qcow2", Format::Qcow2);
}

/// vhdx inputs are the target's sparse form, replayed through the same decoder.
#[test]
fn vhdx_regressions() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_regressions/vhdx");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).expect("regression dir") {
        let data = std::fs::read(e.expect("entry").path()).expect("read");
        guestctl::formats::fuzz_vhdx(&data);
        n += 1;
    }
    assert!(n >= 1);
}
