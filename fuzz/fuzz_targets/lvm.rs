//! LVM2 over arbitrary disks: PV label, metadata area header, metadata text, VG assembly, and
//! reads/maps of every LV that assembles. The input is one PV device; when it is large enough
//! its second half is also offered as a second PV (VGs over two devices).
#![no_main]

use std::sync::Arc;

use guestctl_block::{BlockDevice, MemoryDevice};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = guestctl_part::lvm::text::parse(data);
    let mut devs: Vec<(String, Arc<dyn BlockDevice>)> =
        vec![("a".into(), Arc::new(MemoryDevice::new(data.to_vec())))];
    if data.len() >= 8192 {
        let half = data.len() / 2 & !511;
        devs.push((
            "b".into(),
            Arc::new(MemoryDevice::new(data[half..].to_vec())),
        ));
    }
    if let Ok(r) = guestctl_part::lvm::scan_report(&devs) {
        for vg in &r.groups {
            for lv in &vg.lvs {
                if let Ok(d) = vg.open_lv(lv.name()) {
                    let mut buf = vec![0u8; (d.size().min(1 << 20)) as usize];
                    let _ = d.read_at(0, &mut buf);
                    let n = buf.len().min(1000);
                    let _ = d.read_at(d.size().saturating_sub(777), &mut buf[..n]);
                    let _ = d.map(0, d.size());
                }
            }
        }
    }
});
