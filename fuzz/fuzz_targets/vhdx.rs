//! vhdx parsing over arbitrary (sparse, checksum-fixed) images: headers, region tables,
//! metadata items, parent locator, BAT, sector bitmaps, log search and replay, through
//! open_image_device + map + reads. See `guestctl_formats::vhdx::fuzz_expand` for the input.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| guestctl_formats::fuzz_vhdx(data));
