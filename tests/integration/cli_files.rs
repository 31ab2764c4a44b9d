//! `guestctl filesystems`, `ls`, `cat`, `stat` on a GPT disk made by sfdisk with an ext4
//! partition made by mkfs.ext4 -d (at the partition's offset), as raw and as compressed
//! qcow2. Oracles: blkid for the filesystem list, the source tree (find, file contents).

use crate::support;

use std::path::Path;
use std::process::Command;

use support::run;

fn guestctl(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_guestctl"))
        .args(args)
        .output()
        .expect("guestctl")
}

fn make_disk(dir: &Path) -> std::path::PathBuf {
    let src = dir.join("src");
    std::fs::create_dir_all(src.join("etc/deep/er")).expect("mkdir");
    std::fs::write(src.join("etc/hostname"), b"guest1\n").expect("w");
    std::fs::write(src.join("etc/deep/er/file"), vec![7u8; 100_000]).expect("w");
    std::os::unix::fs::symlink("/etc/hostname", src.join("hn")).expect("ln");
    let img = dir.join("disk.img");
    std::fs::File::create(&img)
        .expect("c")
        .set_len(64 << 20)
        .expect("len");
    let script = "label: gpt\nstart=2048, size=65536, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=\"root\"\nsize=8192, type=0657FD6D-A4AB-43C4-84E5-0933C84B4F4F\n";
    support::sfdisk(&img, script);
    run(
        "mkfs.ext4",
        &[
            "-q",
            "-F",
            "-L",
            "rootfs",
            "-E",
            "offset=1048576",
            "-d",
            src.to_str().expect("u"),
            img.to_str().expect("u"),
            "32M",
        ],
        dir,
    );
    img
}

#[test]
fn filesystems_ls_cat_stat() {
    let tmp = tempfile::tempdir().expect("tmp");
    let img = make_disk(tmp.path());
    let i = img.to_str().expect("u");

    let out = guestctl(&["filesystems", "--json", i]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let blkid = run("blkid", &["-p", "-O", "1048576", i], tmp.path());
    let blkid = String::from_utf8_lossy(&blkid.stdout).into_owned();
    let uuid = list[0]["uuid"].as_str().expect("uuid");
    assert_eq!(list[0]["device"], "/dev/sda1");
    assert_eq!(list[0]["type"], "ext4");
    assert!(
        blkid.contains(&format!("UUID=\"{uuid}\"")) && blkid.contains("LABEL=\"rootfs\""),
        "{blkid}"
    );
    assert_eq!(list[0]["size"], 32 << 20);
    assert_eq!(list[1]["device"], "/dev/sda2");

    // ls -R --json against find on the source tree.
    let out = guestctl(&["ls", "-R", "--json", i, "/"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut ours: Vec<(String, String, u64)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json line"))
        .filter(|v| !v["path"].as_str().expect("p").starts_with("/lost+found"))
        .map(|v| {
            let t = v["type"].as_str().expect("t").to_string();
            let size = if t == "directory" {
                0
            } else {
                v["size"].as_u64().expect("s")
            };
            (v["path"].as_str().expect("p").to_string(), t, size)
        })
        .collect();
    ours.sort();
    let find = run(
        "find",
        &[
            tmp.path().join("src").to_str().expect("u"),
            "-mindepth",
            "1",
            "-printf",
            "/%P\t%y\t%s\n",
        ],
        tmp.path(),
    );
    let mut want: Vec<(String, String, u64)> = String::from_utf8_lossy(&find.stdout)
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            let t = match f[1] {
                "d" => "directory",
                "l" => "symlink",
                _ => "file",
            }
            .to_string();
            let size = if t == "directory" {
                0
            } else {
                f[2].parse().expect("size")
            };
            (f[0].to_string(), t, size)
        })
        .collect();
    want.sort();
    assert_eq!(ours, want);

    // cat follows the symlink inside the guest; works the same on compressed qcow2.
    let out = guestctl(&["cat", i, "/hn"]);
    assert_eq!(out.stdout, b"guest1\n");
    let q = tmp.path().join("disk.qcow2");
    run(
        "qemu-img",
        &["convert", "-c", "-O", "qcow2", i, q.to_str().expect("u")],
        tmp.path(),
    );
    let out = guestctl(&[
        "cat",
        "-m",
        "/dev/sda1",
        q.to_str().expect("u"),
        "/etc/deep/er/file",
    ]);
    assert_eq!(out.stdout, vec![7u8; 100_000]);

    let out = guestctl(&["stat", "--json", i, "/hn"]);
    let st: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(st["type"], "symlink");
    assert_eq!(st["target"], "/etc/hostname");

    // Errors: one clear line, exit 1.
    let out = guestctl(&["cat", i, "/nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("/nope"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = guestctl(&["ls", "-m", "/dev/sda2", i, "/"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn checksum_matches_sha256sum_and_md5sum_of_the_source_tree() {
    let tmp = tempfile::tempdir().expect("tmp");
    let img = make_disk(tmp.path());
    let i = img.to_str().expect("u");
    let src = tmp.path().join("src");
    let out = guestctl(&["checksum", "-R", i, "/"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut ours: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.contains("./lost+found/"))
        .map(str::to_string)
        .collect();
    ours.sort();
    let host = run("sh", &["-c", "find . -type f -exec sha256sum {} +"], &src);
    let mut want: Vec<String> = String::from_utf8_lossy(&host.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    want.sort();
    assert_eq!(ours, want);
    assert!(ours.len() >= 2);

    let out = guestctl(&["checksum", "--type", "md5", i, "/etc/deep/er/file"]);
    let host = run("md5sum", &["etc/deep/er/file"], &src);
    let want = String::from_utf8_lossy(&host.stdout).replace("  etc/", "  /etc/");
    assert_eq!(String::from_utf8_lossy(&out.stdout), want);
    let out = guestctl(&["checksum", i, "/etc"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a directory without -R is an error"
    );
}

/// An MBR disk with /boot on partition 1 and / on partition 2 (both `mkfs.ext4 -d`), mounted
/// as the guest would with `-m /dev/sda1:/boot -m /dev/sda2` (order on the command line does
/// not matter). Oracle: sha256sum over the two source trees combined.
#[test]
fn several_mounts_form_one_tree() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    let root = dir.join("root");
    let boot = dir.join("boot");
    std::fs::create_dir_all(root.join("boot")).expect("mkdir");
    std::fs::create_dir_all(root.join("etc")).expect("mkdir");
    std::fs::create_dir_all(boot.join("grub")).expect("mkdir");
    std::fs::write(root.join("etc/hostname"), b"two-fs\n").expect("w");
    // Hidden by the /boot mount, as on a real system.
    std::fs::write(root.join("boot/under-the-mount"), b"x").expect("w");
    std::fs::write(boot.join("vmlinuz-6.1"), vec![0x5a; 300_000]).expect("w");
    std::fs::write(boot.join("grub/grub.cfg"), b"set timeout=1\n").expect("w");
    let img = dir.join("disk.img");
    std::fs::File::create(&img)
        .expect("c")
        .set_len(80 << 20)
        .expect("len");
    support::sfdisk(
        &img,
        "label: dos\nstart=2048, size=32768, type=83\nstart=34816, size=65536, type=83\n",
    );
    let i = img.to_str().expect("u");
    for (src, offset, size) in [(&boot, "1048576", "16M"), (&root, "17825792", "32M")] {
        let off = format!("offset={offset}");
        run(
            "mkfs.ext4",
            &[
                "-q",
                "-F",
                "-E",
                &off,
                "-d",
                src.to_str().expect("u"),
                i,
                size,
            ],
            dir,
        );
    }

    let out = guestctl(&["filesystems", i]);
    assert!(out.status.success());
    let out = guestctl(&["checksum", "-R", i, "/"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "two filesystems: must ask for -m"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("/dev/sda2"));

    let out = guestctl(&[
        "checksum",
        "-R",
        "-m",
        "/dev/sda1:/boot",
        "-m",
        "/dev/sda2",
        i,
        "/",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut ours: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.contains("/lost+found/"))
        .map(str::to_string)
        .collect();
    ours.sort();
    std::fs::remove_file(root.join("boot/under-the-mount")).expect("rm");
    let script = "cd root && find . -type f -exec sha256sum {} + && cd ../boot && \
                  find . -type f -exec sha256sum {} + | sed 's#  \\./#  ./boot/#'";
    let host = run("sh", &["-c", script], dir);
    let mut want: Vec<String> = String::from_utf8_lossy(&host.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    want.sort();
    assert_eq!(ours, want);
    assert_eq!(ours.len(), 3);

    // `..` out of the mounted /boot comes back to the root filesystem.
    let out = guestctl(&[
        "cat",
        "-m",
        "/dev/sda2",
        "-m",
        "/dev/sda1:/boot",
        i,
        "/boot/grub/../../etc/hostname",
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "two-fs\n");
    // A mountpoint that does not exist is an error that names it.
    let out = guestctl(&["ls", "-m", "/dev/sda2", "-m", "/dev/sda1:/nowhere", i, "/"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nowhere"));
}

/// LVM2 logical volumes appear as `/dev/VG/LV` (fixtures/lvm.img.zst, made by
/// scripts/make-lvm-fixture.sh; oracle: its manifest, recorded from the LVM tools and the
/// kernel's device-mapper): sizes equal `lvs`, the ext4 LV is browsable, thin LVs are reported
/// as unreadable.
#[test]
fn lvm_logical_volumes_are_devices() {
    let tmp = tempfile::tempdir().expect("tmp");
    let img = tmp.path().join("lvm.img");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/lvm.img.zst");
    run(
        "zstd",
        &[
            "-dqf",
            fixture.to_str().expect("u"),
            "-o",
            img.to_str().expect("u"),
        ],
        tmp.path(),
    );
    let manifest = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/lvm.manifest"),
    )
    .expect("manifest");
    let lvs: serde_json::Value = serde_json::from_str(
        manifest
            .lines()
            .find_map(|l| l.strip_prefix("json lvs "))
            .expect("lvs line"),
    )
    .expect("json");
    let i = img.to_str().expect("u");
    let out = guestctl(&["filesystems", "--json", i]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let size_of = |dev: &str| {
        list.as_array()
            .expect("array")
            .iter()
            .find(|f| f["device"] == dev)
            .map(|f| f["size"].as_u64().expect("size"))
    };
    for lv in lvs["report"][0]["lv"].as_array().expect("lvs") {
        let name = lv["lv_name"].as_str().expect("name");
        let want: u64 = lv["lv_size"].as_str().expect("size").parse().expect("n");
        match name {
            "lin" | "str" | "my-data" => {
                assert_eq!(size_of(&format!("/dev/fixvg/{name}")), Some(want), "{name}")
            }
            // Thin LVs cannot be read; hidden sub-LVs are not devices.
            _ => assert_eq!(size_of(&format!("/dev/fixvg/{name}")), None, "{name}"),
        }
    }
    let notes = String::from_utf8_lossy(&out.stderr);
    assert!(
        notes.contains("/dev/fixvg/thin") && notes.contains("thin"),
        "{notes}"
    );
    let lin = list
        .as_array()
        .expect("a")
        .iter()
        .find(|f| f["device"] == "/dev/fixvg/lin")
        .expect("lin");
    assert_eq!(
        (lin["type"].as_str(), lin["label"].as_str()),
        (Some("ext4"), Some("lvm-lin"))
    );
    let out = guestctl(&["ls", "-R", "-m", "/dev/fixvg/lin", i, "/"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.stdout.is_empty());
    // No OS, but the thin LVs cannot be opened: one may be there, so inspect fails naming them.
    let out = guestctl(&["inspect", "--json", i]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    for lv in ["/dev/fixvg/thin", "/dev/fixvg/pool"] {
        assert!(
            err.contains(&format!(
                "warning: {lv}: LVM2 logical volume: guestctl cannot open it"
            )),
            "{err}"
        );
    }
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs guestctl, asserts it fails with exit 1 and prints nothing on stdout; its stderr.
fn fails(args: &[&str]) -> String {
    let out = guestctl(args);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
    assert!(
        out.stdout.is_empty(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    err
}

/// `guestctl filesystems --json`'s `{device: readable}`.
fn readable_flags(img: &str) -> Vec<(String, String, bool)> {
    let out = guestctl(&["filesystems", "--json", img]);
    assert!(out.status.success(), "{}", stderr(&out));
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    list.as_array()
        .expect("array")
        .iter()
        .map(|f| {
            (
                f["device"].as_str().expect("device").to_string(),
                f["type"].as_str().expect("type").to_string(),
                f["readable"].as_bool().expect("readable"),
            )
        })
        .collect()
}

/// The RHEL-family layout (GPT: an empty ESP, then /boot and / on a filesystem guestctl does
/// not read, made on files and copied in with dd), with btrfs since XFS is read now
/// (inspect_linux.rs has the same layout on XFS, found). `inspect` must say what it cannot
/// read and fail (before, it printed `[]` and exited 0), and the file commands must refuse to
/// take the ESP for the guest (`ls` printed nothing and exited 0).
#[test]
fn esp_beside_unreadable_boot_and_root_is_refused_not_silently_empty() {
    let tmp = tempfile::tempdir().expect("tmp");
    let d = tmp.path();
    let esp = support::mkfs_file(d, "esp", 16, "mkfs.vfat", &["-n", "ESP"]);
    let boot = support::mkfs_file(d, "boot", 120, "mkfs.btrfs", &["-q", "-f", "-L", "boot"]);
    let root = support::mkfs_file(d, "root", 128, "mkfs.btrfs", &["-q", "-f", "-L", "root"]);
    let img = support::gpt_disk(
        d,
        "rhel.img",
        &[(&esp, "EF00"), (&boot, "8300"), (&root, "8300")],
    );
    let i = img.to_str().expect("u");

    assert_eq!(
        readable_flags(i),
        [
            ("/dev/sda1".into(), "vfat".into(), true),
            ("/dev/sda2".into(), "btrfs".into(), false),
            ("/dev/sda3".into(), "btrfs".into(), false),
        ]
    );
    let out = guestctl(&["filesystems", i]);
    let text = String::from_utf8_lossy(&out.stdout);
    let marks: Vec<&str> = text
        .lines()
        .map(|l| l.split_whitespace().nth(2).expect("column"))
        .collect();
    assert_eq!(marks, ["readable", "unreadable", "unreadable"], "{text}");

    for json in [true, false] {
        let args: &[&str] = if json {
            &["inspect", "--json", i]
        } else {
            &["inspect", i]
        };
        let err = fails(args);
        for dev in ["/dev/sda2", "/dev/sda3"] {
            assert!(
                err.contains(&format!(
                    "warning: {dev}: btrfs filesystem: guestctl cannot read it, an operating \
                     system on it is not inspected"
                )),
                "{err}"
            );
        }
        assert!(err.contains("error: no operating system found"), "{err}");
        assert!(!err.contains("/dev/sda1"), "the ESP is read: {err}");
    }

    for cmd in [
        &["ls", i, "/"][..],
        &["cat", i, "/etc/os-release"],
        &["checksum", "-R", i, "/"],
    ] {
        let err = fails(cmd);
        for want in [
            "refusing to guess",
            "/dev/sda1 (vfat, label \"ESP\", 16 MiB): readable, not a root filesystem",
            "/dev/sda2 (btrfs, label \"boot\", 120 MiB): unreadable, guestctl cannot read it",
            "/dev/sda3 (btrfs, label \"root\", 128 MiB): unreadable, guestctl cannot read it",
            "-m DEV[:MOUNTPOINT]",
        ] {
            assert!(err.contains(want), "{cmd:?}: no {want:?} in {err}");
        }
        assert_eq!(err.lines().count(), 1, "one error line: {err}");
    }
    // Chosen explicitly, the ESP is listed (empty).
    let out = guestctl(&["ls", "-m", "/dev/sda1", i, "/"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// btrfs (which guestctl does not read) alone, in a GPT partition and on a whole disk:
/// inspect fails naming it, ls refuses for lack of anything readable.
#[test]
fn btrfs_only_disks_are_reported() {
    let tmp = tempfile::tempdir().expect("tmp");
    let d = tmp.path();
    let fs = support::mkfs_file(d, "btrfs", 120, "mkfs.btrfs", &["-q", "-f", "-L", "data"]);
    let part = support::gpt_disk(d, "gpt.img", &[(&fs, "8300")]);
    for (img, dev) in [(&part, "/dev/sda1"), (&fs, "/dev/sda")] {
        let i = img.to_str().expect("u");
        assert_eq!(readable_flags(i), [(dev.into(), "btrfs".into(), false)]);
        let err = fails(&["inspect", "--json", i]);
        assert!(
            err.contains(&format!(
                "warning: {dev}: btrfs filesystem: guestctl cannot read it"
            )),
            "{err}"
        );
        assert!(
            err.contains(&format!("cannot read {dev} (btrfs filesystem)")),
            "{err}"
        );
        let err = fails(&["ls", i, "/"]);
        assert!(
            err.contains("no filesystem guestctl can read")
                && err.contains(&format!(
                    "{dev} (btrfs, label \"data\", 120 MiB): unreadable"
                )),
            "{err}"
        );
    }
}

/// A LUKS volume (cryptsetup luksFormat on a file) beside a FAT data partition with files:
/// the FAT is no root, so ls refuses to guess rather than show it as the guest; with -m it is
/// listed. The LUKS volume is named by inspect.
#[test]
fn luks_beside_a_data_partition_makes_ls_refuse() {
    let tmp = tempfile::tempdir().expect("tmp");
    let d = tmp.path();
    let fat = support::mkfs_file(d, "fat", 8, "mkfs.vfat", &["-n", "DATA"]);
    std::fs::write(d.join("notes.txt"), b"hello\n").expect("w");
    run(
        "mcopy",
        &["-i", fat.to_str().expect("u"), "notes.txt", "::/notes.txt"],
        d,
    );
    let luks = support::luks_file(d, "luks", 4);
    let img = support::gpt_disk(d, "disk.img", &[(&fat, "0700"), (&luks, "8309")]);
    let i = img.to_str().expect("u");
    assert_eq!(
        readable_flags(i),
        [
            ("/dev/sda1".into(), "vfat".into(), true),
            ("/dev/sda2".into(), "crypto_LUKS".into(), false),
        ]
    );
    let err = fails(&["inspect", i]);
    assert!(
        err.contains("warning: /dev/sda2: crypto_LUKS encrypted volume: guestctl cannot read it"),
        "{err}"
    );
    let err = fails(&["cat", i, "/notes.txt"]);
    assert!(
        err.contains("/dev/sda1 (vfat, label \"DATA\", 8 MiB): readable, not a root filesystem")
            && err.contains("/dev/sda2 (crypto_LUKS, 4 MiB): unreadable"),
        "{err}"
    );
    let out = guestctl(&["cat", "-m", "/dev/sda1", i, "/notes.txt"]);
    assert_eq!(out.stdout, b"hello\n", "{}", stderr(&out));
}

/// A bare FAT image (no partition table, no OS) with files: the only filesystem, nothing
/// unreadable, so the file commands use it as before; inspect finds no OS and says `[]`.
#[test]
fn bare_fat_image_with_files_keeps_working() {
    let tmp = tempfile::tempdir().expect("tmp");
    let d = tmp.path();
    let fat = support::mkfs_file(d, "fat.img", 8, "mkfs.vfat", &["-n", "USB"]);
    std::fs::create_dir_all(d.join("docs")).expect("mkdir");
    std::fs::write(d.join("docs/a.txt"), b"alpha\n").expect("w");
    run(
        "mcopy",
        &["-s", "-i", fat.to_str().expect("u"), "docs", "::/docs"],
        d,
    );
    let i = fat.to_str().expect("u");
    let out = guestctl(&["ls", "-R", i, "/"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "/docs\n/docs/a.txt\n");
    assert!(out.stderr.is_empty(), "{}", stderr(&out));
    let out = guestctl(&["cat", i, "/docs/a.txt"]);
    assert_eq!(out.stdout, b"alpha\n");
    let out = guestctl(&["inspect", "--json", i]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "[]");
}

/// A lone readable filesystem that looks like a root (`/etc` and `/usr`, no OS markers)
/// beside an unreadable btrfs is used, and the btrfs is named in a note.
#[test]
fn plausible_root_beside_unreadable_is_used() {
    let tmp = tempfile::tempdir().expect("tmp");
    let d = tmp.path();
    let src = d.join("src");
    std::fs::create_dir_all(src.join("usr")).expect("mkdir");
    std::fs::create_dir_all(src.join("etc")).expect("mkdir");
    std::fs::write(src.join("etc/motd"), b"hi\n").expect("w");
    let sd = src.to_str().expect("u");
    let ext = support::mkfs_file(d, "ext", 8, "mkfs.ext4", &["-q", "-F", "-d", sd]);
    let btrfs = support::mkfs_file(d, "btrfs", 120, "mkfs.btrfs", &["-q", "-f"]);
    let img = support::gpt_disk(d, "disk.img", &[(&ext, "8300"), (&btrfs, "8300")]);
    let i = img.to_str().expect("u");
    let out = guestctl(&["cat", i, "/etc/motd"]);
    assert_eq!(out.stdout, b"hi\n", "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("note: /dev/sda2: btrfs filesystem: guestctl cannot read it, left out"),
        "{err}"
    );
}

/// A FreeBSD-ZFS partition (no ZFS tools here: its four vdev labels carry one uberblock each,
/// the magic 0x00bab10c at the start of a ring slot, which is what blkid and guestctl look
/// for) is named by inspect as a ZFS pool device it cannot read.
#[test]
fn zfs_pool_device_is_reported() {
    let tmp = tempfile::tempdir().expect("tmp");
    let d = tmp.path();
    let size = 8usize << 20;
    let mut part = vec![0u8; size];
    for label in [0, 256 << 10, size - (512 << 10), size - (256 << 10)] {
        let at = label + (128 << 10) + 3 * 1024;
        part[at..at + 8].copy_from_slice(&0x00ba_b10c_u64.to_le_bytes());
    }
    let zfs = d.join("zfs");
    std::fs::write(&zfs, &part).expect("w");
    let img = support::gpt_disk(d, "disk.img", &[(&zfs, "a504")]);
    let i = img.to_str().expect("u");
    assert_eq!(
        readable_flags(i),
        [("/dev/sda1".into(), "zfs_member".into(), false)]
    );
    let err = fails(&["inspect", i]);
    assert!(
        err.contains("warning: /dev/sda1: zfs_member pool device: guestctl cannot read it"),
        "{err}"
    );
}

/// A directory hard-linked into itself (`debugfs ln /d /d/loop`, a corrupt ext4) no longer
/// makes `ls -R` or `checksum -R` loop forever: the second visit is reported, the rest listed,
/// and the exit status says something was skipped.
#[test]
fn directory_loops_end_with_a_named_problem() {
    let tmp = tempfile::tempdir().expect("tmp");
    let d = tmp.path();
    std::fs::create_dir_all(d.join("src/d/e")).expect("mkdir");
    std::fs::write(d.join("src/d/e/f"), b"data\n").expect("w");
    let sd = d.join("src");
    let img = support::mkfs_file(
        d,
        "ext.img",
        8,
        "mkfs.ext4",
        &["-q", "-F", "-d", sd.to_str().expect("u")],
    );
    run(
        "debugfs",
        &["-w", "-R", "ln /d /d/loop", img.to_str().expect("u")],
        d,
    );
    let i = img.to_str().expect("u");
    for args in [&["ls", "-R", i, "/"][..], &["checksum", "-R", i, "/"][..]] {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_guestctl"))
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn");
        let start = std::time::Instant::now();
        let out = loop {
            if let Some(_status) = child.try_wait().expect("wait") {
                break child.wait_with_output().expect("output");
            }
            assert!(start.elapsed().as_secs() < 30, "{args:?} does not end");
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = stderr(&out);
        assert!(
            err.contains("/d/loop") && err.contains("directory loop"),
            "{args:?}: {err}"
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("/d/e/f"), "{args:?}: {text}");
    }
}
