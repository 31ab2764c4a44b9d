//! FAT12/16/32: boot sector, FAT chains, directories and long names, by opening and walking
//! arbitrary images (seed with small mkfs.fat images: scripts/fuzz-seeds.sh).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    guestctl_fs::fat::fuzz_walk(data);
});
