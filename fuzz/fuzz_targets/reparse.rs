//! Reparse-point buffers: parse, then map to a guest link target.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = guestctl_fs::ntfs::reparse::parse(data) {
        let _ = r.link_target();
    }
});
