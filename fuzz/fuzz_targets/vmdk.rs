//! vmdk parsing over arbitrary bytes: header, tables, compressed data (and for vmdk the
//! descriptor), through open_image_device + map + reads.
#![no_main]

use guestctl_formats::{fuzz_open_and_read, Format};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| fuzz_open_and_read(Format::Vmdk, data));
