//! qcow2 header, extension, L1/L2 and compressed-cluster parsing over arbitrary bytes:
//! open the image from memory, map it, and read where the map says there is data.
#![no_main]

use std::path::Path;
use std::sync::Arc;

use guestctl_block::{BlockDevice, MemoryDevice};
use guestctl_formats::{open_image_device, OpenOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dev = Arc::new(MemoryDevice::new(data.to_vec()));
    let opts = OpenOptions {
        follow_backing: false,
        format: Some(guestctl_formats::Format::Qcow2),
        ..OpenOptions::default()
    };
    let Ok(img) = open_image_device(dev, Path::new("/nonexistent/fuzz.qcow2"), &opts) else {
        return;
    };
    exercise(img.device().as_ref());
});

fn exercise(d: &dyn BlockDevice) {
    let span = d.size().min(256 << 20);
    let mut buf = vec![0u8; 1 << 20];
    if let Ok(m) = d.map(0, span) {
        for e in m.iter().take(64) {
            let n = e.len.min(buf.len() as u64) as usize;
            let _ = d.read_exact_at(e.offset, &mut buf[..n]);
        }
    }
    let _ = d.read_at(0, &mut buf[..4096]);
    let _ = d.read_at(d.size().saturating_sub(777), &mut buf[..1000]);
    let _ = d.read_at(d.size() / 2 + 1, &mut buf[..3]);
}
