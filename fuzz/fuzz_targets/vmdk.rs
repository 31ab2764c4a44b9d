//! placeholder until the vmdk reader exposes an in-memory entry point
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = guestctl_formats::detect(data, data);
});
