//! LZNT1 decompression of one compression unit: any input, 1–16 chunks of output.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&units, input)) = data.split_first() else { return };
    let mut out = vec![0u8; 4096 * (1 + usize::from(units % 16))];
    let _ = guestctl_fs::ntfs::lznt1::decompress_unit(input, &mut out);
    let mut chunk = [0u8; 4096];
    let _ = guestctl_fs::ntfs::lznt1::decompress_chunk(input, &mut chunk);
});
