//! Registry hives: open, walk every key, read every value's data and decode it.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(hive) = guestctl_registry::Hive::from_bytes(data.to_vec()) else {
        return;
    };
    let _ = hive.open("Microsoft\\Windows NT\\CurrentVersion");
    let _ = guestctl_registry::walk(&hive, true, |_path, key, values| {
        let _ = key.class_name();
        for v in values {
            let _ = v.as_string();
            let _ = v.as_multi_string();
            let _ = v.as_u32();
            let _ = v.as_u64();
        }
    });
});
