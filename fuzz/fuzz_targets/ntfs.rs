//! A whole NTFS volume from memory: open, walk every directory (bounded depth), stat, list
//! streams, read links and up to 1 MiB of every file and stream.
#![no_main]

use std::sync::Arc;

use guestctl_fs::{FileType, Filesystem, OpenOptions};
use libfuzzer_sys::fuzz_target;

static QUIET_PANICS: std::sync::Once = std::sync::Once::new();

fuzz_target!(|data: &[u8]| {
    // NtfsFs catches the ntfs crate's panics and turns them into errors; libFuzzer's panic
    // hook would abort on them first. A panic that escapes NtfsFs still reaches libfuzzer-sys,
    // which aborts: that is a real finding.
    QUIET_PANICS.call_once(|| std::panic::set_hook(Box::new(|_| {})));
    let dev = Arc::new(guestctl_block::MemoryDevice::new(data.to_vec()));
    let Ok(fs) = guestctl_fs::ntfs::NtfsFs::open(dev, &OpenOptions::default()) else { return };
    let _ = fs.info();
    let mut stack = vec![(fs.root(), 0)];
    let mut buf = vec![0u8; 65536];
    let mut visited = 0;
    while let Some((dir, depth)) = stack.pop() {
        let Ok(entries) = fs.read_dir(dir) else { continue };
        for e in entries {
            visited += 1;
            if visited > 4096 {
                return;
            }
            let _ = fs.lookup(dir, &e.name);
            let mut nodes = vec![e.node];
            if let Ok(streams) = fs.streams(e.node) {
                for s in streams {
                    let mut n = e.name.clone();
                    n.push(b':');
                    n.extend_from_slice(&s.name);
                    if let Ok(Some(sn)) = fs.lookup(dir, &n) {
                        nodes.push(sn);
                    }
                }
            }
            for node in nodes {
                let Ok(md) = fs.metadata(node) else { continue };
                match md.file_type {
                    FileType::Directory if depth < 16 => stack.push((node, depth + 1)),
                    FileType::Symlink => {
                        let _ = fs.read_link(node);
                    }
                    _ => {
                        let mut off = 0u64;
                        while off < md.size.min(1 << 20) {
                            match fs.read_at(node, off, &mut buf) {
                                Ok(0) | Err(_) => break,
                                Ok(n) => off += n as u64,
                            }
                        }
                    }
                }
            }
        }
    }
});
