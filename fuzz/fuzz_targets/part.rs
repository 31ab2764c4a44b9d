//! MBR (with EBR chains and BSD disklabels in slices), GPT (headers, entry arrays, backup)
//! and whole-disk BSD disklabels over arbitrary disks.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dev = guestctl_block::MemoryDevice::new(data.to_vec());
    if let Ok(t) = guestctl_part::scan(&dev) {
        for p in &t.partitions {
            let _ = guestctl_part::open_partition(std::sync::Arc::new(
                guestctl_block::MemoryDevice::new(data.to_vec()),
            ), p);
        }
    }
    let _ = guestctl_fs::probe::probe(&dev);
    let _ = guestctl_part::bsd::parse(data, false);
    let _ = guestctl_part::bsd::parse(data, true);
});
