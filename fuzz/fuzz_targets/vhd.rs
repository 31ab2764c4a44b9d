//! vhd parsing over arbitrary bytes: footer/header checksums and bounds, the block table,
//! sector bitmaps, through open_image_device + map + reads (no parent files).
#![no_main]

use guestctl_formats::{fuzz_open_and_read, Format};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| fuzz_open_and_read(Format::Vpc, data));
