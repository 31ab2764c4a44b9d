//! ext2/3/4: superblock, group descriptors, inodes, extent trees, block maps, directories,
//! xattrs and symlinks, by opening and walking arbitrary images (seed with small mkfs images:
//! scripts/fuzz-seeds.sh).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    guestctl_fs::ext::fuzz_walk(data);
});
