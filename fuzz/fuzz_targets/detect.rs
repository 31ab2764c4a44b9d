//! Magic-byte detection over arbitrary heads and tails.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let split = data.len() / 2;
    let _ = guestctl_formats::detect(&data[..split], &data[split..]);
});
