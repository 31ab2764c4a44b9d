//! The NTFS fixture made by scripts/make-ntfs-fixture.sh (mkntfs + ntfs-3g), compared with its
//! manifest, which the script wrote from the source tree, the reparse buffers it set, and
//! ntfs-3g's view of the mounted volume (compressed attribute, stream contents).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use guestctl_block::{BlockDevice, MemoryDevice};
use guestctl_fs::ntfs::NtfsFs;
use guestctl_fs::{ErrorKind, FileType, Filesystem, NodeId, OpenOptions};
use sha2::{Digest, Sha256};

fn fixture() -> (NtfsFs, Vec<Vec<String>>) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures");
    let img = zstd::decode_all(
        std::fs::File::open(root.join("ntfs.img.zst")).expect("fixtures/ntfs.img.zst"),
    )
    .expect("zstd -d");
    let man = std::fs::read_to_string(root.join("ntfs.manifest")).expect("fixtures/ntfs.manifest");
    let lines = man
        .lines()
        .map(|l| l.split('\t').map(str::to_owned).collect())
        .collect();
    let dev: Arc<dyn BlockDevice> = Arc::new(MemoryDevice::new(img));
    (
        NtfsFs::open(dev, &OpenOptions::default()).expect("open fixture"),
        lines,
    )
}

fn read_all(fs: &dyn Filesystem, node: NodeId, size: u64) -> Vec<u8> {
    let mut data = vec![0u8; size as usize];
    let mut off = 0;
    // Odd-sized reads cross chunk, cluster and compression-unit boundaries.
    while off < data.len() {
        let end = (off + 40_000).min(data.len());
        let n = fs
            .read_at(node, off as u64, &mut data[off..end])
            .expect("read");
        assert!(n > 0, "short read at {off}");
        off += n;
    }
    let mut extra = [0u8; 4];
    assert_eq!(fs.read_at(node, size, &mut extra).expect("read at end"), 0);
    data
}

fn sha(b: &[u8]) -> String {
    format!("{:x}", Sha256::digest(b))
}

fn walk(fs: &dyn Filesystem) -> BTreeMap<String, (FileType, NodeId)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![(String::new(), fs.root())];
    while let Some((path, dir)) = stack.pop() {
        for e in fs.read_dir(dir).expect("read_dir") {
            let p = format!("{path}/{}", String::from_utf8(e.name).expect("utf8"));
            let md = fs.metadata(e.node).expect("metadata");
            if md.file_type == FileType::Directory {
                stack.push((p.clone(), e.node));
            }
            out.insert(p, (md.file_type, e.node));
        }
    }
    out
}

#[test]
fn fixture_matches_manifest() {
    let (fs, man) = fixture();
    let tree = walk(&fs);
    let mut want_paths = 0;
    for l in &man {
        match l[0].as_str() {
            "label" => assert_eq!(fs.info().label, l[1]),
            "uuid" => assert_eq!(fs.info().uuid, l[1]),
            "d" => {
                want_paths += 1;
                assert_eq!(tree[&l[1]].0, FileType::Directory, "{}", l[1]);
            }
            "f" => {
                want_paths += 1;
                let (ty, node) = tree
                    .get(&l[1])
                    .unwrap_or_else(|| panic!("{} missing", l[1]));
                assert_eq!(*ty, FileType::Regular, "{}", l[1]);
                let md = fs.metadata(*node).expect("md");
                assert_eq!(md.nlink.to_string(), l[2], "{}: nlink", l[1]);
                assert_eq!(md.size.to_string(), l[3], "{}: size", l[1]);
                assert_eq!(
                    sha(&read_all(&fs, *node, md.size)),
                    l[4],
                    "{}: sha256",
                    l[1]
                );
                assert_eq!(md.mode, 0o777);
                assert_eq!(fs.resolve(&l[1]).expect("resolve"), *node);
                assert_eq!(
                    fs.resolve(&l[1].to_uppercase()).expect("case-insensitive"),
                    *node
                );
            }
            "s" => {
                let node = fs
                    .resolve(&l[1])
                    .unwrap_or_else(|e| panic!("{}: {e}", l[1]));
                let md = fs.metadata(node).expect("stream md");
                assert_eq!(md.size.to_string(), l[2], "{}: size", l[1]);
                assert_eq!(sha(&read_all(&fs, node, md.size)), l[3], "{}: sha256", l[1]);
                let (file, stream) = l[1].rsplit_once(':').expect(":");
                let listed = fs
                    .streams(fs.resolve(file).expect("file"))
                    .expect("streams");
                assert!(listed
                    .iter()
                    .any(|s| s.name == stream.as_bytes() && s.size == md.size));
            }
            "l" => {
                want_paths += 1;
                let (ty, node) = tree[&l[1]];
                assert_eq!(ty, FileType::Symlink, "{}", l[1]);
                assert_eq!(
                    fs.read_link(node).expect("read_link"),
                    l[2].as_bytes(),
                    "{}",
                    l[1]
                );
                let e = fs
                    .read_at(node, 0, &mut [0u8; 4])
                    .expect_err("a link has no data");
                assert_eq!(e.kind(), ErrorKind::InvalidInput);
                // Followed inside the guest.
                fs.resolve(&l[1]).expect("link resolves");
            }
            "c" => {
                // Compressed per getfattr: its content was checked above through LZNT1;
                // make sure it really is stored in fewer clusters than its size.
                let md = fs.metadata(tree[&l[1]].1).expect("md");
                assert!(
                    md.allocated < md.size,
                    "{} is not stored compressed: {md:?}",
                    l[1]
                );
            }
            other => panic!("unknown manifest line {other}"),
        }
    }
    assert_eq!(
        tree.len(),
        want_paths,
        "we list paths the manifest does not: {:?}",
        tree.keys()
    );
    // The hard link: one record, two names.
    assert_eq!(tree["/dir/a.txt"].1, tree["/other/b-hardlink.txt"].1);
    // Sparse file: the hole is not allocated.
    let md = fs.metadata(tree["/sparse"].1).expect("md");
    assert!(md.allocated < 1 << 20, "{md:?}");
    assert_eq!(
        fs.resolve("/links/junction/sub/deep.txt")
            .expect("through the junction"),
        tree["/dir/sub/deep.txt"].1
    );
}
