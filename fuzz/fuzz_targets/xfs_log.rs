//! XFS log recovery over arbitrary log bytes (head and tail search, torn writes, records
//! with extended headers and wrap, op reassembly, item replay onto the overlay).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    guestctl_fs::xfs::fuzz_log(data);
});
