//! The libguestfs-style API (`guestctl::Guestfs`) and the idiomatic `Guest`, driven the way
//! a libguestfs program drives its handle. Oracles: debugfs (e2fsprogs) over the demo
//! disk's partition as qemu-img converts it (`cat`, `rdump`, the dpkg status), tar(1) for
//! the archives, and the RHEL fixture's answer sheets (rpm -qa, find and sha256sum over the
//! kernel's mount).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use guestctl::{BlockDevice, ErrorKind, Guestfs};

use crate::inspect_rhel;

fn demo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/demo.qcow2")
}

fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// The demo disk as raw (qemu-img) and its one partition extracted (dd), for debugfs.
fn demo_partition(dir: &Path) -> (PathBuf, PathBuf) {
    let raw = dir.join("demo.raw");
    run(Command::new("qemu-img")
        .args(["convert", "-O", "raw"])
        .arg(demo())
        .arg(&raw));
    let part = dir.join("demo.p1");
    // sfdisk -J: the partition's start and size in sectors.
    let j: serde_json::Value =
        serde_json::from_slice(&run(Command::new("sfdisk").arg("-J").arg(&raw))).expect("json");
    let p = &j["partitiontable"]["partitions"][0];
    let (start, size) = (
        p["start"].as_u64().expect("start"),
        p["size"].as_u64().expect("size"),
    );
    run(Command::new("dd")
        .arg(format!("if={}", raw.display()))
        .arg(format!("of={}", part.display()))
        .args(["bs=512", "status=none"])
        .arg(format!("skip={start}"))
        .arg(format!("count={size}")));
    (raw, part)
}

fn debugfs(part: &Path, req: &str) -> Vec<u8> {
    run(Command::new("debugfs").arg("-R").arg(req).arg(part))
}

/// Relative paths and contents of regular files under a host directory.
fn host_tree(dir: &Path) -> BTreeMap<String, Option<Vec<u8>>> {
    fn go(base: &Path, d: &Path, out: &mut BTreeMap<String, Option<Vec<u8>>>) {
        for e in std::fs::read_dir(d).expect("read_dir") {
            let e = e.expect("entry");
            let p = e.path();
            let rel = p
                .strip_prefix(base)
                .expect("prefix")
                .to_string_lossy()
                .into_owned();
            let t = e.file_type().expect("type");
            if t.is_dir() {
                out.insert(rel, None);
                go(base, &p, out);
            } else if t.is_file() {
                out.insert(rel, Some(std::fs::read(&p).expect("read")));
            } else {
                out.insert(rel, None);
            }
        }
    }
    let mut out = BTreeMap::new();
    go(dir, dir, &mut out);
    out
}

/// The brief's program, unchanged in shape: new → add_drive_ro → launch → inspect_os →
/// inspect_get_mountpoints → mount_ro each → cat → ls → checksum → download → tar_out_opts
/// gzip → inspect_list_applications2 → umount_all → shutdown.
#[test]
fn brief_program_on_the_debian_demo_agrees_with_debugfs() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (_raw, part) = demo_partition(tmp.path());

    let g = Guestfs::new().expect("new");
    g.add_drive_ro(demo()).expect("add");
    g.launch().expect("launch");
    let roots = g.inspect_os().expect("inspect_os");
    assert_eq!(roots, vec!["/dev/sda1".to_string()]);
    let root = &roots[0];
    assert_eq!(g.inspect_get_type(root).expect("type"), "linux");
    assert_eq!(g.inspect_get_distro(root).expect("distro"), "debian");
    assert_eq!(g.inspect_get_major_version(root).expect("major"), 12);
    assert_eq!(
        g.inspect_get_hostname(root).expect("hostname"),
        "demo-guest"
    );
    assert_eq!(g.inspect_get_package_format(root).expect("pf"), "deb");
    assert_eq!(g.inspect_get_format(root).expect("format"), "installed");
    let mps = g.inspect_get_mountpoints(root).expect("mountpoints");
    assert_eq!(
        mps.into_iter().collect::<Vec<_>>(),
        vec![("/".to_string(), "/dev/sda1".to_string())]
    );
    g.mount_ro("/dev/sda1", "/").expect("mount");

    let os_release = g.cat("/etc/os-release").expect("cat");
    assert_eq!(
        os_release.as_bytes(),
        debugfs(&part, "cat /etc/os-release").as_slice()
    );

    // ls: the names debugfs lists (without . and ..), sorted.
    let listing = String::from_utf8(debugfs(&part, "ls -p /etc")).expect("utf8");
    let mut want: Vec<String> = listing
        .lines()
        .filter_map(|l| l.split('/').nth(5).map(str::to_string))
        .filter(|n| !n.is_empty() && n != "." && n != "..")
        .collect();
    want.sort();
    assert_eq!(g.ls("/etc").expect("ls"), want);

    let passwd = debugfs(&part, "cat /etc/passwd");
    use sha2::Digest;
    let sum: String = sha2::Sha256::digest(&passwd)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(g.checksum("sha256", "/etc/passwd").expect("checksum"), sum);

    let dl = tmp.path().join("passwd");
    g.download("/etc/passwd", &dl).expect("download");
    assert_eq!(std::fs::read(&dl).expect("read"), passwd);
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .expect("dir")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".part"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // tar_out_opts gzip of the whole root: tar(1) unpacks what debugfs dumps.
    let tarball = tmp.path().join("root.tar.gz");
    g.tar_out_opts("/", &tarball, Some("gzip"))
        .expect("tar_out");
    let from_tar = tmp.path().join("from-tar");
    let from_debugfs = tmp.path().join("from-debugfs");
    std::fs::create_dir_all(&from_tar).expect("mkdir");
    std::fs::create_dir_all(&from_debugfs).expect("mkdir");
    run(Command::new("tar")
        .arg("-xzf")
        .arg(&tarball)
        .arg("-C")
        .arg(&from_tar));
    debugfs(&part, &format!("rdump / {}", from_debugfs.display()));
    let a = host_tree(&from_tar);
    let b = host_tree(&from_debugfs);
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        b.keys().collect::<Vec<_>>(),
        "tar vs debugfs rdump"
    );
    assert_eq!(a, b, "contents");
    // find: the same tree.
    let found: BTreeSet<String> = g.find("/").expect("find").into_iter().collect();
    assert_eq!(found, b.keys().cloned().collect::<BTreeSet<_>>());

    let apps = g.inspect_list_applications2(root).expect("apps");
    let status = String::from_utf8(debugfs(&part, "cat /var/lib/dpkg/status")).expect("utf8");
    let want: BTreeSet<String> = status
        .lines()
        .filter_map(|l| l.strip_prefix("Package: "))
        .map(str::to_string)
        .collect();
    let ours: BTreeSet<String> = apps.iter().map(|a| a.app2_name.clone()).collect();
    assert_eq!(ours, want);
    assert!(apps.iter().all(|a| !a.app2_version.is_empty()));

    g.umount_all().expect("umount_all");
    assert!(g.mounts().expect("mounts").is_empty());
    g.shutdown().expect("shutdown");
    assert_eq!(
        g.cat("/etc/passwd").map_err(|e| e.kind()).err(),
        Some(ErrorKind::State)
    );
}

#[test]
fn file_calls_on_the_demo_agree_with_debugfs() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (_raw, part) = demo_partition(tmp.path());
    let g = Guestfs::new().expect("new");
    g.add_drive_opts(demo(), Some("qcow2"), false).expect("add");
    g.launch().expect("launch");
    g.mount_ro("/dev/sda1", "/").expect("mount");

    // stat: debugfs's inode fields.
    let st = g.statns("/home/demo/hello.txt").expect("statns");
    let text = String::from_utf8(debugfs(&part, "stat /home/demo/hello.txt")).expect("utf8");
    let field = |name: &str| -> String {
        text.split_whitespace()
            .skip_while(|w| *w != name)
            .nth(1)
            .unwrap_or_else(|| panic!("no {name} in {text}"))
            .to_string()
    };
    assert_eq!(st.st_uid.to_string(), field("User:"));
    assert_eq!(st.st_gid.to_string(), field("Group:"));
    assert_eq!(st.st_size.to_string(), field("Size:"));
    assert_eq!(
        format!("{:o}", st.st_mode & 0o7777),
        field("Mode:").trim_start_matches('0')
    );
    assert_eq!(st.st_mtime_sec, 1_707_523_200, "2024-02-10 00:00 UTC");

    // Symlinks: lstat sees the link, stat the target; readlink as stored; realpath in-guest.
    assert!(g.is_symlink("/etc/localtime").expect("is_symlink"));
    let target = g.readlink("/usr/bin/sh").expect("readlink");
    let dbg = String::from_utf8(debugfs(&part, "stat /usr/bin/sh")).expect("utf8");
    assert!(
        dbg.contains(&format!("Fast link dest: \"{target}\"")),
        "{dbg}"
    );
    let real = g.realpath("/usr/bin/sh").expect("realpath");
    assert!(g.is_file(&real).expect("is_file"), "{real}");
    assert!(!real.contains(".."), "{real}");
    assert!(g.is_dir("/etc").expect("is_dir"));
    assert!(!g.exists("/no/such").expect("exists"));
    assert!(!g.is_file("/etc").expect("is_file"));

    // Lines, head, tail, pread against the bytes debugfs reads.
    let passwd = debugfs(&part, "cat /etc/passwd");
    let lines: Vec<String> = String::from_utf8(passwd.clone())
        .expect("utf8")
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(g.read_lines("/etc/passwd").expect("read_lines"), lines);
    assert_eq!(
        g.head_n(2, "/etc/passwd").expect("head_n"),
        lines[..2.min(lines.len())]
    );
    assert_eq!(
        g.tail_n(1, "/etc/passwd").expect("tail_n"),
        lines[lines.len() - 1..]
    );
    assert_eq!(g.pread("/etc/passwd", 5, 3).expect("pread"), passwd[3..8]);
    assert_eq!(
        g.filesize("/etc/passwd").expect("filesize"),
        passwd.len() as i64
    );
    assert_eq!(
        g.grep("^root:", "/etc/passwd").expect("grep"),
        lines
            .iter()
            .filter(|l| l.starts_with("root:"))
            .cloned()
            .collect::<Vec<_>>()
    );

    // Checksums of every kind against the host tools over the same bytes.
    let f = tmp.path().join("passwd");
    std::fs::write(&f, &passwd).expect("write");
    for (kind, tool) in [
        ("md5", "md5sum"),
        ("sha1", "sha1sum"),
        ("sha224", "sha224sum"),
        ("sha384", "sha384sum"),
        ("sha512", "sha512sum"),
    ] {
        let out = String::from_utf8(run(Command::new(tool).arg(&f))).expect("utf8");
        let want = out.split_whitespace().next().expect("hash");
        assert_eq!(g.checksum(kind, "/etc/passwd").expect(kind), want, "{kind}");
    }
    let out = String::from_utf8(run(Command::new("cksum").arg(&f))).expect("utf8");
    assert_eq!(
        g.checksum("crc", "/etc/passwd").expect("crc"),
        out.split_whitespace().next().expect("crc")
    );
    assert_eq!(
        g.checksum("whirlpool", "/etc/passwd")
            .map_err(|e| e.kind())
            .err(),
        Some(ErrorKind::InvalidInput)
    );

    // The sparse file reads as zeros past its data; is_zero says so where it is.
    let sparse_size = g.filesize("/var/log/sparse.img").expect("size");
    assert!(sparse_size > 0);
    assert!(
        g.du("/var/log/sparse.img").expect("du") * 1024 < sparse_size,
        "du counts allocated space"
    );

    // Globs, file, architecture.
    let etc_o: Vec<String> = g.glob_expand("/etc/o*").expect("glob");
    assert_eq!(etc_o, vec!["/etc/os-release".to_string()]);
    assert!(g
        .glob_expand("/*")
        .expect("glob")
        .contains(&"/etc/".to_string()));
    assert_eq!(g.file("/etc").expect("file"), "directory");
    assert_eq!(g.file("/etc/hostname").expect("file"), "ASCII text");
    let sh = g.file("/bin/sh").expect("file");
    assert!(sh.starts_with("ELF 64-bit LSB"), "{sh}");
    assert_eq!(g.file_architecture("/bin/sh").expect("arch"), "x86_64");

    // Long listing: one line per name of ls, symlink targets shown.
    let ll = g.ll("/etc").expect("ll");
    assert_eq!(ll.lines().count(), g.ls("/etc").expect("ls").len());
    assert!(
        ll.lines().any(|l| l.starts_with('l') && l.contains(" -> ")),
        "{ll}"
    );

    // checksums_out: the lines sha256sum prints over debugfs's dump of /etc.
    let dump = tmp.path().join("etc-dump");
    std::fs::create_dir_all(&dump).expect("mkdir");
    debugfs(&part, &format!("rdump /etc {}", dump.display()));
    let sums = tmp.path().join("sums");
    g.checksums_out("sha256", "/etc", &sums)
        .expect("checksums_out");
    let ours: BTreeSet<String> = std::fs::read_to_string(&sums)
        .expect("sums")
        .lines()
        .map(str::to_string)
        .collect();
    let want: BTreeSet<String> = String::from_utf8(run(Command::new("sh")
        .arg("-c")
        .arg("find . -type f -print0 | xargs -0 sha256sum")
        .current_dir(dump.join("etc"))))
    .expect("utf8")
    .lines()
    .map(str::to_string)
    .collect();
    assert_eq!(ours, want);

    // copy_out: the same tree as debugfs's dump.
    let out = tmp.path().join("copy");
    std::fs::create_dir_all(&out).expect("mkdir");
    g.copy_out("/etc", &out).expect("copy_out");
    assert_eq!(host_tree(&out.join("etc")), host_tree(&dump.join("etc")));

    // statvfs/df from the superblock; the mount is read-only.
    let vfs = g.statvfs("/").expect("statvfs");
    assert_eq!(vfs.bsize, 4096);
    assert_eq!(vfs.flag & 1, 1);
    let dumpe2fs =
        String::from_utf8(run(Command::new("dumpe2fs").arg("-h").arg(&part))).expect("utf8");
    let count = dumpe2fs
        .lines()
        .find_map(|l| l.strip_prefix("Block count:"))
        .expect("block count")
        .trim()
        .parse::<i64>()
        .expect("number");
    assert_eq!(vfs.blocks, count);
    assert!(g.df().expect("df").contains("/dev/sda1"));
}

#[test]
fn devices_and_partitions_agree_with_sfdisk_and_blkid() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (raw, part) = demo_partition(tmp.path());
    let g = Guestfs::new().expect("new");
    g.add_drive_ro(&raw).expect("add");
    g.launch().expect("launch");
    assert_eq!(g.list_devices().expect("devices"), vec!["/dev/sda"]);
    assert_eq!(g.list_partitions().expect("partitions"), vec!["/dev/sda1"]);
    let fss = g.list_filesystems().expect("filesystems");
    assert_eq!(
        fss.into_iter().collect::<Vec<_>>(),
        vec![("/dev/sda1".to_string(), "ext4".to_string())]
    );
    let j: serde_json::Value =
        serde_json::from_slice(&run(Command::new("sfdisk").arg("-J").arg(&raw))).expect("json");
    let t = &j["partitiontable"];
    let p = &t["partitions"][0];
    assert_eq!(g.part_get_parttype("/dev/sda").expect("parttype"), "gpt");
    let list = g.part_list("/dev/sda").expect("part_list");
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].part_num, 1);
    assert_eq!(
        list[0].part_start as u64,
        p["start"].as_u64().expect("start") * 512
    );
    assert_eq!(
        list[0].part_size as u64,
        p["size"].as_u64().expect("size") * 512
    );
    assert_eq!(list[0].part_end, list[0].part_start + list[0].part_size - 1);
    assert_eq!(
        g.part_get_gpt_type("/dev/sda", 1).expect("type"),
        p["type"].as_str().expect("type")
    );
    assert_eq!(
        g.part_get_gpt_guid("/dev/sda", 1).expect("guid"),
        p["uuid"].as_str().expect("uuid")
    );
    assert_eq!(
        g.part_get_name("/dev/sda", 1).expect("name"),
        p["name"].as_str().expect("name")
    );
    assert_eq!(g.part_to_dev("/dev/sda1").expect("to_dev"), "/dev/sda");
    assert_eq!(g.part_to_partnum("/dev/vda1").expect("partnum"), 1);
    assert!(g.part_get_mbr_id("/dev/sda", 1).is_err(), "GPT, not MBR");
    let blkid = |tag: &str| {
        String::from_utf8(run(Command::new("blkid")
            .args(["-p", "-o", "value", "-s", tag])
            .arg(&part)))
        .expect("utf8")
        .trim()
        .to_string()
    };
    assert_eq!(g.vfs_type("/dev/sda1").expect("type"), blkid("TYPE"));
    assert_eq!(g.vfs_uuid("/dev/sda1").expect("uuid"), blkid("UUID"));
    assert_eq!(g.vfs_label("/dev/sda1").expect("label"), blkid("LABEL"));
    let tags = g.blkid("/dev/sda1").expect("blkid");
    assert_eq!(tags["TYPE"], "ext4");
    assert_eq!(tags["PART_ENTRY_SCHEME"], "gpt");
    assert_eq!(
        g.blockdev_getsize64("/dev/sda").expect("size") as u64,
        std::fs::metadata(&raw).expect("meta").len()
    );
    let sector = g
        .pread_device("/dev/sda1", 1024, 1024)
        .expect("pread_device");
    assert_eq!(&sector[56..58], &[0x53, 0xef], "ext4 superblock magic");
    assert!(!g.is_zero_device("/dev/sda1").expect("is_zero_device"));
    assert!(g.lvs().expect("lvs").is_empty());
    assert_eq!(g.disk_format(demo()).expect("format"), "qcow2");
    let info: serde_json::Value = serde_json::from_slice(&run(Command::new("qemu-img")
        .args(["info", "--output=json"])
        .arg(demo())))
    .expect("json");
    assert_eq!(
        g.disk_virtual_size(demo()).expect("size") as u64,
        info["virtual-size"].as_u64().expect("vs")
    );
    assert!(!g.disk_has_backing_file(demo()).expect("backing"));
}

#[test]
fn handle_states_and_mount_rules_are_errors_not_guesses() {
    let g = Guestfs::new().expect("new");
    assert_eq!(
        g.launch().map_err(|e| e.kind()).err(),
        Some(ErrorKind::State)
    );
    assert_eq!(
        g.inspect_os().map_err(|e| e.kind()).err(),
        Some(ErrorKind::State)
    );
    assert!(g.add_drive_opts(demo(), Some("floppy"), true).is_err());
    g.add_drive_ro(demo()).expect("add");
    g.launch().expect("launch");
    assert_eq!(
        g.add_drive_ro(demo()).map_err(|e| e.kind()).err(),
        Some(ErrorKind::State)
    );
    assert_eq!(
        g.cat("/etc/passwd").map_err(|e| e.kind()).err(),
        Some(ErrorKind::State)
    );
    // A child before the root, a relative path, a missing device, an unknown option.
    assert_eq!(
        g.mount_ro("/dev/sda1", "/boot").map_err(|e| e.kind()).err(),
        Some(ErrorKind::State)
    );
    assert_eq!(
        g.mount_ro("/dev/sda9", "/").map_err(|e| e.kind()).err(),
        Some(ErrorKind::NotFound)
    );
    assert_eq!(
        g.mount_options("rw", "/dev/sda1", "/")
            .map_err(|e| e.kind())
            .err(),
        Some(ErrorKind::Unsupported)
    );
    assert_eq!(
        g.mount_options("data=journal", "/dev/sda1", "/")
            .map_err(|e| e.kind())
            .err(),
        Some(ErrorKind::Unsupported)
    );
    g.mount_options("ro,noatime", "/dev/sda1", "/")
        .expect("mount");
    assert_eq!(
        g.mount_ro("/dev/sda1", "/").map_err(|e| e.kind()).err(),
        Some(ErrorKind::State),
        "/ is taken"
    );
    assert_eq!(
        g.cat("etc/passwd").map_err(|e| e.kind()).err(),
        Some(ErrorKind::InvalidInput)
    );
    let e = g.cat("/etc/nope").expect_err("missing");
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert_eq!(e.path(), Some("/etc/nope"));
    assert_eq!(
        g.cat("/etc").map_err(|e| e.kind()).err(),
        Some(ErrorKind::IsADirectory)
    );
    // Mounting the same filesystem on a directory of itself works (as a bind would).
    g.mount_ro("/dev/sda1", "/home").expect("mount on /home");
    assert!(g.exists("/home/etc/os-release").expect("exists"));
    assert_eq!(
        g.mountpoints().expect("mountpoints").len(),
        1,
        "one device (its last mount)"
    );
    g.umount("/home").expect("umount");
    assert!(g.exists("/home/demo").expect("exists"));
    assert_eq!(g.mounts().expect("mounts"), vec!["/dev/sda1"]);
    g.umount("/dev/sda1").expect("umount by device");
    assert!(g.mounts().expect("mounts").is_empty());
}

/// A device that counts reads touching the primary GPT header (LBA 1).
#[derive(Debug)]
struct Counting {
    inner: Arc<dyn BlockDevice>,
    header_reads: Arc<AtomicUsize>,
}

impl BlockDevice for Counting {
    fn size(&self) -> u64 {
        self.inner.size()
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> guestctl::block::Result<usize> {
        if offset < 1024 && offset + buf.len() as u64 > 512 {
            self.header_reads.fetch_add(1, Ordering::SeqCst);
        }
        self.inner.read_at(offset, buf)
    }
    fn map(&self, offset: u64, len: u64) -> guestctl::block::Result<guestctl::block::Mapping> {
        self.inner.map(offset, len)
    }
}

#[test]
fn one_partition_table_read_per_launch() {
    let img = guestctl::open_image(demo(), &guestctl::OpenOptions::default()).expect("open");
    let header_reads = Arc::new(AtomicUsize::new(0));
    let dev = Arc::new(Counting {
        inner: img.device(),
        header_reads: header_reads.clone(),
    });
    let g = Guestfs::new().expect("new");
    g.add_device("demo", dev).expect("add");
    g.launch().expect("launch");
    assert_eq!(
        header_reads.load(Ordering::SeqCst),
        1,
        "launch reads the table once"
    );
    // Everything after launch uses the model: no more table reads.
    let root = g.inspect_os().expect("inspect").remove(0);
    g.list_filesystems().expect("list");
    g.list_partitions().expect("list");
    g.vfs_type("/dev/sda1").expect("vfs_type");
    g.part_list("/dev/sda").expect("part_list");
    for (mp, dev) in g.inspect_get_mountpoints(&root).expect("mps") {
        g.mount_ro(&dev, &mp).expect("mount");
    }
    g.cat("/etc/hostname").expect("cat");
    g.inspect_list_applications2(&root).expect("apps");
    let mut notes = Vec::new();
    g.filesystems(&mut notes).expect("filesystems");
    g.mount_default(&mut notes).expect("default tree");
    g.inspect_disks(&Default::default(), &mut notes)
        .expect("inspect");
    assert_eq!(
        header_reads.load(Ordering::SeqCst),
        1,
        "no table read after launch"
    );
}

#[test]
fn idiomatic_guest_reads_and_walks_like_debugfs() {
    use std::io::{Read, Seek, SeekFrom};
    let tmp = tempfile::tempdir().expect("tmp");
    let (_raw, part) = demo_partition(tmp.path());
    let guest = guestctl::Guest::open(demo()).expect("open");
    assert_eq!(guest.os().expect("os").distro, "debian");
    let mut f = guest.open_file("/etc/passwd").expect("open_file");
    let want = debugfs(&part, "cat /etc/passwd");
    let mut all = Vec::new();
    f.read_to_end(&mut all).expect("read");
    assert_eq!(all, want);
    f.seek(SeekFrom::Start(4)).expect("seek");
    let mut four = [0u8; 4];
    f.read_exact(&mut four).expect("read");
    assert_eq!(four, want[4..8]);
    let dump = tmp.path().join("dump");
    std::fs::create_dir_all(&dump).expect("mkdir");
    debugfs(&part, &format!("rdump / {}", dump.display()));
    let walked: Vec<String> = guest
        .walk("/")
        .expect("walk")
        .map(|e| e.expect("entry").path.trim_start_matches('/').to_string())
        .collect();
    let mut sorted = walked.clone();
    sorted.sort();
    assert_eq!(sorted, host_tree(&dump).keys().cloned().collect::<Vec<_>>());
    // Depth-first, parents before children.
    let pos = |p: &str| walked.iter().position(|w| w == p).expect(p);
    assert!(pos("etc") < pos("etc/apt") && pos("etc/apt") < pos("etc/apt/sources.list"));
}

/// The handle on the RHEL-9-like guest (XFS `/` and `/boot`, vfat `/boot/efi`): the answer
/// sheets of the fixture.
#[test]
fn rhel9_through_the_api_matches_its_answer_sheets() {
    let tmp = tempfile::tempdir().expect("tmp");
    let img = inspect_rhel::disk(tmp.path());
    let exp = inspect_rhel::expected();
    let g = Guestfs::new().expect("new");
    g.add_drive_ro(&img).expect("add");
    g.launch().expect("launch");
    let roots = g.inspect_os().expect("inspect_os");
    assert_eq!(roots, vec!["/dev/sda4".to_string()]);
    let root = &roots[0];
    let want_mps: BTreeMap<String, String> = exp
        .iter()
        .filter(|(k, _)| k == "mountpoint")
        .filter_map(|(_, v)| v.split_once(' '))
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    let mps = g.inspect_get_mountpoints(root).expect("mps");
    assert_eq!(mps, want_mps);
    assert_eq!(g.inspect_get_distro(root).expect("distro"), "rocky");
    assert_eq!(g.inspect_get_package_management(root).expect("pm"), "dnf");
    assert_eq!(g.vfs_type("/dev/sda4").expect("type"), "xfs");
    for (mp, dev) in &mps {
        g.mount_ro(dev, mp).expect("mount");
    }
    // find and stat against the kernel mount's find (the ESP was not mounted there).
    let want = inspect_rhel::find_oracle();
    let found = g.find("/").expect("find");
    let ours: BTreeSet<String> = found
        .iter()
        .filter(|p| !p.starts_with("boot/efi/"))
        .map(|p| format!("/{p}"))
        .collect();
    let theirs: BTreeSet<String> = want.keys().filter(|k| *k != "/").cloned().collect();
    assert_eq!(ours, theirs);
    for (path, line) in want.iter().filter(|(k, _)| *k != "/" && *k != "/boot/efi") {
        let f: Vec<&str> = line.splitn(8, ' ').collect();
        let st = g.lstatns(path).expect("lstatns");
        assert_eq!(format!("{:o}", st.st_mode & 0o7777), f[1], "{path} mode");
        assert_eq!(st.st_uid.to_string(), f[2], "{path} uid");
        assert_eq!(st.st_gid.to_string(), f[3], "{path} gid");
        if f[0] != "d" {
            assert_eq!(st.st_size.to_string(), f[5], "{path} size");
        }
        assert_eq!(st.st_mtime_sec.to_string(), f[6], "{path} mtime");
        if f[0] == "l" {
            assert_eq!(g.readlink(path).expect("readlink"), f[7].trim(), "{path}");
        }
    }
    // checksums_out over the whole tree against sha256sum over the kernel mount.
    let sums = tmp.path().join("sums");
    g.checksums_out("sha256", "/", &sums)
        .expect("checksums_out");
    let ours: BTreeSet<String> = std::fs::read_to_string(&sums)
        .expect("sums")
        .lines()
        .filter(|l| !l.contains("  ./boot/efi/"))
        .map(str::to_string)
        .collect();
    let theirs: BTreeSet<String> = String::from_utf8(inspect_rhel::unzstd(&inspect_rhel::fixture(
        "rhel9.sha256.zst",
    )))
    .expect("utf8")
    .lines()
    .map(str::to_string)
    .collect();
    assert_eq!(ours, theirs);
    // rpm -qa and the SELinux label.
    let apps = g.inspect_list_applications2(root).expect("apps");
    let ours: BTreeSet<String> = apps
        .iter()
        .map(|a| {
            format!(
                "{}\t{}\t{}\t{}\t{}",
                a.app2_name, a.app2_epoch, a.app2_version, a.app2_release, a.app2_arch
            )
        })
        .collect();
    let theirs: BTreeSet<String> = exp
        .iter()
        .filter(|(k, _)| k == "package")
        .map(|(_, v)| v.clone())
        .collect();
    assert_eq!(ours, theirs);
    let (path, label) = exp
        .iter()
        .find(|(k, _)| k == "selinux_label")
        .and_then(|(_, v)| v.split_once(' '))
        .expect("selinux_label");
    let v = g.getxattr(path, "security.selinux").expect("getxattr");
    assert_eq!(String::from_utf8_lossy(&v).trim_end_matches('\0'), label);
    assert_eq!(
        g.file_architecture("/usr/bin/bash").expect("arch"),
        "x86_64"
    );
    g.umount("/boot").expect("umount /boot");
    assert_eq!(
        g.mounts().expect("mounts"),
        vec!["/dev/sda4"],
        "/boot/efi went too"
    );
}
