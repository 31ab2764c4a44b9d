//! Every input the `part` fuzz target crashed on, kept under tests/fuzz_regressions/ and
//! replayed through the same calls. Names say what the bug was.

use std::sync::Arc;

use guestctl_block::MemoryDevice;

#[test]
fn part_regressions() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_regressions");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).expect("regression dir") {
        let data = std::fs::read(e.expect("entry").path()).expect("read");
        let dev = MemoryDevice::new(data.clone());
        if let Ok(t) = guestctl_part::scan(&dev) {
            for p in &t.partitions {
                let _ = guestctl_part::open_partition(Arc::new(MemoryDevice::new(data.clone())), p);
            }
        }
        n += 1;
    }
    assert!(n >= 1);
}
