//! Partition tables made by sfdisk, read back and compared with `sfdisk --json` (the oracle).

use std::path::Path;
use std::process::Command;

use guestctl_block::{BlockDevice, RawFile};
use guestctl_part::{scan, Scheme};

fn sfdisk(img: &Path, script: &str) {
    use std::io::Write;
    let mut c = Command::new("sfdisk")
        .args(["-q", "--no-reread", "--no-tell-kernel"])
        .arg(img)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("sfdisk (apt-get install fdisk)");
    c.stdin
        .take()
        .expect("stdin")
        .write_all(script.as_bytes())
        .expect("write");
    assert!(
        c.wait().expect("wait").success(),
        "sfdisk failed on {script}"
    );
}

fn sfdisk_json(img: &Path) -> serde_like::Table {
    let out = Command::new("sfdisk")
        .arg("--json")
        .arg(img)
        .output()
        .expect("sfdisk");
    assert!(out.status.success());
    serde_like::parse(&String::from_utf8_lossy(&out.stdout))
}

/// A tiny reader for sfdisk's JSON (flat objects, one key per line): enough for the oracle.
mod serde_like {
    #[derive(Debug, Default)]
    pub struct Table {
        pub label: String,
        pub id: String,
        pub parts: Vec<Part>,
    }
    #[derive(Debug, Default, Clone)]
    pub struct Part {
        pub node: String,
        pub start: u64,
        pub size: u64,
        pub kind: String,
        pub uuid: String,
        pub name: String,
        pub bootable: bool,
    }
    fn val(line: &str) -> String {
        let v = line.split_once(':').map(|x| x.1).unwrap_or("").trim();
        v.trim_end_matches(',').trim_matches('"').to_string()
    }
    pub fn parse(s: &str) -> Table {
        let mut t = Table::default();
        let mut cur: Option<Part> = None;
        for raw in s.lines() {
            let line = raw.trim();
            let key = line.trim_start_matches(['{', '}', ',']).trim();
            let key = key.split(':').next().unwrap_or("").trim().trim_matches('"');
            if line.contains("\"node\"") {
                if let Some(p) = cur.take() {
                    t.parts.push(p);
                }
                cur = Some(Part {
                    node: val(line.trim_start_matches(['{', '}', ','])),
                    ..Default::default()
                });
                continue;
            }
            match (key, cur.as_mut()) {
                ("label", None) => t.label = val(line),
                ("id", None) => t.id = val(line),
                ("start", Some(p)) => p.start = val(line).parse().expect("start"),
                ("size", Some(p)) => p.size = val(line).parse().expect("size"),
                ("type", Some(p)) => p.kind = val(line),
                ("uuid", Some(p)) => p.uuid = val(line),
                ("name", Some(p)) => p.name = val(line),
                ("bootable", Some(p)) => p.bootable = val(line) == "true",
                _ => {}
            }
        }
        if let Some(p) = cur {
            t.parts.push(p);
        }
        t
    }
}

fn image(dir: &Path, size: u64) -> std::path::PathBuf {
    let p = dir.join("disk.img");
    std::fs::File::create(&p)
        .expect("create")
        .set_len(size)
        .expect("len");
    p
}

fn compare(img: &Path) -> guestctl_part::PartitionTable {
    let sector = 512;
    let want = sfdisk_json(img);
    let dev = RawFile::open(img).expect("open");
    let t = scan(&dev).expect("scan");
    let scheme = if want.label == "gpt" {
        Scheme::Gpt
    } else {
        Scheme::Mbr
    };
    assert_eq!(t.scheme, Some(scheme));
    assert_eq!(t.partitions.len(), want.parts.len(), "{t:?}\n{want:?}");
    for (p, w) in t.partitions.iter().zip(&want.parts) {
        let num: u32 = w
            .node
            .trim_start_matches(&img.display().to_string())
            .parse()
            .expect("number");
        assert_eq!(p.number, num, "{w:?}");
        assert_eq!(p.start, w.start * sector, "{w:?}");
        if !p.extended {
            // sfdisk prints the extended container's size as the whole chain; compare data ones.
            assert_eq!(p.size, w.size * sector, "{w:?}");
        }
        match scheme {
            Scheme::Mbr => {
                assert_eq!(format!("{:x}", p.mbr_type.expect("type")), w.kind, "{w:?}");
                assert_eq!(p.bootable, w.bootable);
            }
            Scheme::Gpt => {
                assert_eq!(p.type_guid.as_deref(), Some(w.kind.as_str()));
                assert_eq!(p.part_guid.as_deref(), Some(w.uuid.as_str()));
                assert_eq!(p.name.as_deref().unwrap_or(""), w.name);
            }
            Scheme::Bsd => unreachable!("sfdisk writes no disklabels"),
        }
        assert!(p.start + p.size <= dev.size());
    }
    if scheme == Scheme::Gpt {
        assert_eq!(t.disk_id.as_deref(), Some(want.id.as_str()));
    } else {
        assert_eq!(
            t.disk_id.as_deref().map(|s| format!("0x{s}")),
            Some(want.id.clone())
        );
    }
    t
}

#[test]
fn mbr_primary_extended_logical() {
    let tmp = tempfile::tempdir().expect("tmp");
    let img = image(tmp.path(), 64 << 20);
    sfdisk(
        &img,
        "label: dos\n\
         start=2048, size=8192, type=83, bootable\n\
         size=8192, type=c\n\
         size=40000, type=5\n\
         size=4096, type=83\n\
         size=4096, type=82\n\
         size=8192, type=7\n\
         size=4096, type=83\n",
    );
    let t = compare(&img);
    let numbers: Vec<u32> = t.partitions.iter().map(|p| p.number).collect();
    // sfdisk makes the fourth line primary 4, the rest logical 5, 6, 7.
    assert_eq!(numbers, vec![1, 2, 3, 4, 5, 6, 7]);
    assert!(t.partitions[2].extended && !t.partitions[3].logical);
    assert!(t.partitions[4..].iter().all(|p| p.logical));
    assert!(t.notes.is_empty(), "{:?}", t.notes);
}

#[test]
fn gpt_with_names_and_backup() {
    let tmp = tempfile::tempdir().expect("tmp");
    let img = image(tmp.path(), 64 << 20);
    sfdisk(
        &img,
        "label: gpt\n\
         start=2048, size=4096, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=\"EFI System\"\n\
         size=20000, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=\"root fs ☃\"\n\
         size=8192, type=0657FD6D-A4AB-43C4-84E5-0933C84B4F4F\n",
    );
    let good = compare(&img);
    assert_eq!(good.partitions[1].type_name, "Linux filesystem");
    assert!(good.notes.is_empty(), "{:?}", good.notes);
    // Damage the primary header: the backup is used, with a note, and gives the same table.
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&img)
            .expect("open");
        f.write_all_at(&[0xFF; 8], 512 + 40).expect("write");
    }
    let dev = RawFile::open(&img).expect("open");
    let t = scan(&dev).expect("scan with backup");
    assert_eq!(t.partitions, good.partitions);
    assert!(
        t.notes.iter().any(|n| n.contains("backup")),
        "{:?}",
        t.notes
    );
    // Damage the backup too: a clear error.
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&img)
            .expect("open");
        f.write_all_at(&[0xFF; 8], dev.size() - 512 + 40)
            .expect("write");
    }
    let e = scan(&RawFile::open(&img).expect("open")).expect_err("both bad");
    assert!(e.to_string().contains("GPT"), "{e}");
}

/// A GPT on a disk with 4096-byte logical sectors, made with `fdisk -b 4096` (this sfdisk has
/// no --sector-size); oracle: `fdisk -b 4096 -l`. We probe both sizes and find the header at
/// byte 4096.
#[test]
fn gpt_with_4096_byte_sectors() {
    use std::io::Write;
    let tmp = tempfile::tempdir().expect("tmp");
    let img = image(tmp.path(), 64 << 20);
    let mut c = Command::new("fdisk")
        .args(["-b", "4096"])
        .arg(&img)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("fdisk (apt-get install fdisk)");
    c.stdin
        .take()
        .expect("stdin")
        .write_all(b"g\nn\n1\n256\n+2047\nt\n1\nn\n2\n\n+8191\nw\n")
        .expect("write");
    assert!(c.wait().expect("wait").success());
    let out = Command::new("fdisk")
        .args([
            "-b",
            "4096",
            "-l",
            "-o",
            "Device,Start,Sectors,Type-UUID,UUID",
        ])
        .arg(&img)
        .output()
        .expect("fdisk -l");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let want: Vec<Vec<String>> = text
        .lines()
        .skip_while(|l| !l.starts_with("Device"))
        .skip(1)
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect();
    assert_eq!(want.len(), 2, "{text}");
    let t = scan(&RawFile::open(&img).expect("open")).expect("scan");
    assert_eq!(t.sector_size, 4096);
    assert!(t.notes.is_empty(), "{:?}", t.notes);
    assert_eq!(t.partitions.len(), 2);
    for (p, w) in t.partitions.iter().zip(&want) {
        assert_eq!(p.start, w[1].parse::<u64>().expect("start") * 4096, "{w:?}");
        assert_eq!(
            p.size,
            w[2].parse::<u64>().expect("sectors") * 4096,
            "{w:?}"
        );
        assert_eq!(p.type_guid.as_deref(), Some(w[3].as_str()));
        assert_eq!(p.part_guid.as_deref(), Some(w[4].as_str()));
    }
    assert_eq!(t.partitions[0].start, 1 << 20);
}

/// sgdisk with a non-default entry array (200 entries) and alignment; oracle: sfdisk --json
/// and `sgdisk -i` for the partition GUIDs and names.
#[test]
fn sgdisk_gpt_with_a_resized_entry_array() {
    let tmp = tempfile::tempdir().expect("tmp");
    let img = image(tmp.path(), 64 << 20);
    let st = Command::new("sgdisk")
        .args([
            "-o",
            "--resize-table=200",
            "-n",
            "1:2048:+4M",
            "-t",
            "1:ef00",
            "-c",
            "1:EFI system",
            "-n",
            "2:0:+16M",
            "-t",
            "2:8300",
            "-c",
            "2:linux root",
            "-n",
            "3:0:+1M",
            "-t",
            "3:8200",
        ])
        .arg(&img)
        .output()
        .expect("sgdisk (apt-get install gdisk)");
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let t = compare(&img);
    assert_eq!(t.partitions.len(), 3);
    for p in &t.partitions {
        let out = Command::new("sgdisk")
            .arg(format!("-i{}", p.number))
            .arg(&img)
            .output()
            .expect("sgdisk -i");
        let text = String::from_utf8_lossy(&out.stdout);
        let guid = p.part_guid.as_deref().expect("guid");
        assert!(
            text.contains(&format!("Partition unique GUID: {guid}")),
            "{text}"
        );
        let name = p.name.as_deref().unwrap_or("");
        assert!(
            text.contains(&format!("Partition name: '{name}'")),
            "{text}"
        );
    }
}

#[test]
fn whole_disk_filesystem_has_no_table() {
    let tmp = tempfile::tempdir().expect("tmp");
    let img = image(tmp.path(), 16 << 20);
    let st = Command::new("mkfs.ext4")
        .args(["-q", "-F"])
        .arg(&img)
        .status()
        .expect("mkfs");
    assert!(st.success());
    let t = scan(&RawFile::open(&img).expect("open")).expect("scan");
    assert_eq!(t.scheme, None);
    if Command::new("mkfs.vfat").arg("--help").output().is_ok() {
        let img2 = tmp.path().join("fat.img");
        std::fs::File::create(&img2)
            .expect("c")
            .set_len(16 << 20)
            .expect("len");
        assert!(Command::new("mkfs.vfat")
            .arg(&img2)
            .output()
            .expect("mkfs.vfat")
            .status
            .success());
        let t = scan(&RawFile::open(&img2).expect("open")).expect("scan");
        assert_eq!(t.scheme, None, "a FAT boot sector is not an MBR");
    }
}
