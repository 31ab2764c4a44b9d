//! UFS1/UFS2: superblock, inodes, indirect blocks and directories, by opening and walking
//! arbitrary images (seed with small makefs images: scripts/fuzz-seeds.sh).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    guestctl_fs::ufs::fuzz_walk(data);
});
