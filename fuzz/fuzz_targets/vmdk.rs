//! vmdk sparse header, footer, grain directory/tables, compressed grains and descriptor
//! parsing over arbitrary bytes: open from memory, map, read where the map says data.
#![no_main]

use std::path::Path;
use std::sync::Arc;

use guestctl_block::{BlockDevice, MemoryDevice};
use guestctl_formats::{open_image_device, Format, OpenOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dev = Arc::new(MemoryDevice::new(data.to_vec()));
    let opts = OpenOptions {
        follow_backing: false,
        format: Some(Format::Vmdk),
        ..OpenOptions::default()
    };
    let Ok(img) = open_image_device(dev, Path::new("/nonexistent/fuzz.vmdk"), &opts) else {
        return;
    };
    let d = img.device();
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
});
