//! Every input a fuzzer ever crashed on, kept under tests/fuzz_regressions/<target>/<name>,
//! replayed through the same code path as its fuzz target. Names say what the bug was.

use std::path::Path;
use std::sync::Arc;

use guestctl::block::MemoryDevice;
use guestctl::formats::open_image_device;
use guestctl::{BlockDevice, Format, OpenOptions};

fn replay(format: Format, data: &[u8]) {
    let opts = OpenOptions {
        follow_backing: false,
        format: Some(format),
        ..OpenOptions::default()
    };
    let dev = Arc::new(MemoryDevice::new(data.to_vec()));
    let Ok(img) = open_image_device(dev, Path::new("/nonexistent/fuzz.img"), &opts) else {
        return;
    };
    let d = img.device();
    let mut buf = vec![0u8; 1 << 20];
    if let Ok(m) = d.map(0, d.size().min(256 << 20)) {
        for e in m.iter().take(64) {
            let n = e.len.min(buf.len() as u64) as usize;
            let _ = d.read_exact_at(e.offset, &mut buf[..n]);
        }
    }
    let _ = d.read_at(0, &mut buf[..4096]);
    let _ = d.read_at(d.size().saturating_sub(777), &mut buf[..1000]);
}

fn run_dir(target: &str, format: Format) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz_regressions")
        .join(target);
    let mut n = 0;
    for e in std::fs::read_dir(&dir).expect("regression dir") {
        let p = e.expect("entry").path();
        let data = std::fs::read(&p).expect("read");
        replay(format, &data);
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
