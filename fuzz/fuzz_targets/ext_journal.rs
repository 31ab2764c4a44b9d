//! JBD2 journal replay over arbitrary journal bytes (superblock, descriptor, revoke and
//! commit blocks, checksums, wrap-around).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = guestctl_fs::ext::journal::replay_bytes(data, 1 << 20);
});
