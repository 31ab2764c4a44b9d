//! Benchmark driver for scripts/bench-ext.sh: walks or reads a whole ext image with guestctl's
//! reader or, for comparison in the same run, with the ext4-view crate.
//!
//! ext_bench walk IMG        every node's metadata (read_dir + stat), like `fls -r`
//! ext_bench walk-noverify IMG   the walk without metadata_csum verification
//! ext_bench read IMG        walk + read every regular file (one thread)
//! ext_bench list IMG        "inode<TAB>size<TAB>path" of regular files
//! ext_bench read-inodes IMG INODE...   read these inodes (to compare with icat)
//! ext_bench view-walk IMG   the same walk with ext4-view
//! ext_bench view-read IMG   the same read with ext4-view
//!
//! Prints "nodes=N bytes=B secs=S" (secs measured inside the process, after opening).

use std::sync::Arc;
use std::time::Instant;

use guestctl_block::RawFile;
use guestctl_fs::{ext::ExtFs, FileType, Filesystem, NodeId, OpenOptions};

fn ours(img: &str) -> ExtFs {
    ours_with(img, true)
}

fn ours_with(img: &str, verify: bool) -> ExtFs {
    let dev = Arc::new(RawFile::open(img).expect("open image"));
    ExtFs::open(dev, &OpenOptions::default().verify_checksums(verify)).expect("open ext")
}

fn walk(fs: &ExtFs, read: bool, list: bool) -> (u64, u64) {
    let mut stack = vec![(String::new(), fs.root())];
    let (mut nodes, mut bytes) = (0u64, 0u64);
    let mut buf = vec![0u8; bufsize()];
    while let Some((prefix, dir)) = stack.pop() {
        let entries = match fs.read_dir(dir) {
            Ok(e) => e,
            Err(e) => {
                eprintln!("{prefix}: {e}");
                continue;
            }
        };
        for e in entries {
            nodes += 1;
            let path = format!("{prefix}/{}", String::from_utf8_lossy(&e.name));
            let md = match fs.metadata(e.node) {
                Ok(m) => m,
                Err(err) => {
                    eprintln!("{path}: {err}");
                    continue;
                }
            };
            match md.file_type {
                FileType::Directory => stack.push((path, e.node)),
                FileType::Regular if list => println!("{}\t{}\t{path}", md.inode, md.size),
                FileType::Regular if read => bytes += read_all(fs, e.node, md.size, &mut buf),
                _ => {}
            }
        }
    }
    (nodes, bytes)
}

fn read_all(fs: &ExtFs, node: NodeId, size: u64, buf: &mut [u8]) -> u64 {
    let mut off = 0;
    while off < size {
        match fs.read_at(node, off, buf) {
            Ok(0) => break,
            Ok(n) => off += n as u64,
            Err(e) => {
                eprintln!("inode {}: {e}", node.0);
                break;
            }
        }
    }
    off
}

fn view_walk(img: &str, read: bool) -> (u64, u64) {
    let fs = ext4_view::Ext4::load_from_path(img).expect("ext4-view load");
    let mut stack = vec![ext4_view::PathBuf::new("/")];
    let (mut nodes, mut bytes) = (0u64, 0u64);
    while let Some(dir) = stack.pop() {
        let Ok(rd) = fs.read_dir(&dir) else { continue };
        for e in rd {
            let Ok(e) = e else { continue };
            let name = e.file_name();
            if name.as_ref() == b"." || name.as_ref() == b".." {
                continue;
            }
            nodes += 1;
            let p = e.path();
            let Ok(md) = fs.symlink_metadata(&p) else {
                continue;
            };
            if md.is_dir() {
                stack.push(p);
            } else if read && md.file_type() == ext4_view::FileType::Regular {
                if let Ok(v) = fs.read(&p) {
                    bytes += v.len() as u64;
                }
            }
        }
    }
    (nodes, bytes)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (cmd, img) = match (args.get(1), args.get(2)) {
        (Some(c), Some(i)) => (c.as_str(), i.as_str()),
        _ => {
            eprintln!(
                "usage: ext_bench walk|read|list|read-inodes|view-walk|view-read IMG [INODE...]"
            );
            std::process::exit(2);
        }
    };
    let t = Instant::now();
    let (nodes, bytes) = match cmd {
        "walk" => walk(&ours(img), false, false),
        "walk-noverify" => walk(&ours_with(img, false), false, false),
        "read" => walk(&ours(img), true, false),
        "list" => walk(&ours(img), false, true),
        "read-inodes" => {
            let fs = ours(img);
            let mut buf = vec![0u8; bufsize()];
            let mut bytes = 0;
            for a in &args[3..] {
                let node = NodeId(a.parse().expect("inode number"));
                let size = fs.metadata(node).expect("stat").size;
                bytes += read_all(&fs, node, size, &mut buf);
            }
            ((args.len() - 3) as u64, bytes)
        }
        "view-walk" => view_walk(img, false),
        "view-read" => view_walk(img, true),
        _ => {
            eprintln!("unknown command {cmd}");
            std::process::exit(2);
        }
    };
    let secs = t.elapsed().as_secs_f64();
    if cmd != "list" {
        println!("nodes={nodes} bytes={bytes} secs={secs:.4}");
    }
}

/// Read buffer size (EXT_BENCH_BUF bytes; default 64 KiB: on this machine a larger buffer drops pread from page cache from ~10 to ~2.5 GB/s).
fn bufsize() -> usize {
    std::env::var("EXT_BENCH_BUF")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(64 << 10)
}
