//! XFS: superblock, AG headers, inodes, extent lists and bmbt blocks, every directory form,
//! symlinks, attribute forks and the log, by opening and walking arbitrary images. Inputs list
//! an image's non-zero sectors (see `guestctl_fs::xfs::fuzz_walk`); seeds from mkfs.xfs
//! images: scripts/fuzz-seeds.sh.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    guestctl_fs::xfs::fuzz_walk(data);
});
