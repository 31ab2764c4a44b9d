//! `guestctl inspect` on Linux guests built at test time (sfdisk + `mkfs.ext4 -d`, no root),
//! equivalent to libguestfs's phony Debian, Ubuntu and Arch guests. Oracle: guestfs-tools'
//! `inspector/expected-{debian,ubuntu,archlinux}.img.xml` (what virt-inspector reports for
//! them), field by field, with the package databases taken from libguestfs's test data.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::inspect_xml::{as_text, compare};
use support::{corpus, run};

fn guestctl(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_guestctl"))
        .args(args)
        .output()
        .expect("guestctl")
}

/// One partition: size in MiB, the tree to put in it, mkfs.ext4 options.
pub(crate) struct Part<'a> {
    pub(crate) mib: u64,
    pub(crate) src: &'a Path,
    pub(crate) mkfs: &'a [&'a str],
    /// sfdisk extra fields (`uuid=...`, `name=...`).
    pub(crate) extra: &'a str,
}

pub(crate) fn build_disk(dir: &Path, label: &str, parts: &[Part]) -> PathBuf {
    let img = dir.join(format!("disk-{label}.img"));
    let total: u64 = parts.iter().map(|p| p.mib).sum::<u64>() + 2;
    std::fs::File::create(&img)
        .expect("create")
        .set_len(total << 20)
        .expect("len");
    let mut script = format!("label: {label}\n");
    let mut start = 2048u64;
    for p in parts {
        let sectors = p.mib << 11;
        let ty = if label == "gpt" {
            "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
        } else {
            "83"
        };
        script.push_str(&format!("start={start}, size={sectors}, type={ty}"));
        if !p.extra.is_empty() {
            script.push_str(", ");
            script.push_str(p.extra);
        }
        script.push('\n');
        start += sectors;
    }
    support::sfdisk(&img, &script);
    let mut start = 2048u64;
    for p in parts {
        let off = format!("offset={}", start * 512);
        let size = format!("{}M", p.mib);
        let mut args: Vec<&str> = vec!["-q", "-F", "-E", &off, "-d"];
        let src = p.src.to_str().expect("utf8");
        args.push(src);
        args.extend_from_slice(p.mkfs);
        let i = img.to_str().expect("utf8");
        args.push(i);
        args.push(&size);
        run("mkfs.ext4", &args, dir);
        start += p.mib << 11;
    }
    img
}

pub(crate) fn write(root: &Path, path: &str, data: &[u8]) {
    let p = root.join(path.trim_start_matches('/'));
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(p, data).expect("write");
}

/// A guest's /etc/os-release, /etc/hostname and /etc/fstab under `root`.
fn guest_etc(root: &Path, os_release: &[u8], hostname: &[u8], fstab: &[u8]) {
    write(root, "etc/os-release", os_release);
    write(root, "etc/hostname", hostname);
    write(root, "etc/fstab", fstab);
}

/// The host's own shell: a real ELF binary whose architecture `uname -m` names.
pub(crate) fn host_elf(root: &Path) {
    let dst = root.join("bin");
    std::fs::create_dir_all(&dst).expect("mkdir");
    std::fs::copy("/bin/dash", dst.join("dash")).expect("copy /bin/dash");
    std::os::unix::fs::symlink("dash", dst.join("sh")).expect("ln");
    std::fs::create_dir_all(root.join("usr/bin")).expect("mkdir");
}

pub(crate) fn inspect_json(img: &Path) -> serde_json::Value {
    let out = guestctl(&["inspect", "--json", img.to_str().expect("utf8")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v.as_array().map(Vec::len), Some(1), "{v:#}");
    v[0].clone()
}

#[test]
fn debian_like_guest_with_boot_and_var_partitions() {
    let tmp = tempfile::tempdir().expect("tmp");
    let d = tmp.path();
    let (root, boot, var) = (d.join("root"), d.join("boot"), d.join("var"));
    for p in [&root, &boot, &var] {
        std::fs::create_dir_all(p).expect("mkdir");
    }
    host_elf(&root);
    for m in ["boot", "var", "usr", "home"] {
        std::fs::create_dir_all(root.join(m)).expect("mkdir");
    }
    write(&root, "etc/debian_version", b"5.0.1\n");
    write(&root, "etc/hostname", b"debian.invalid\n");
    write(
        &root,
        "etc/fstab",
        b"# phony Debian\nLABEL=BOOT /boot ext2 default 0 0\n\
          UUID=01234567-0123-0123-0123-012345678902 / ext2 default 0 0\n\
          PARTUUID=8e2ae3bb-5e1a-4cd2-9b49-9d0c5f4f0a03 /var ext2 default 0 0\n\
          proc /proc proc defaults 0 0\n",
    );
    write(&boot, "vmlinuz-2.6.26-2-amd64", b"not really a kernel");
    let status = std::fs::read(corpus().join("libguestfs/test-data/phony-guests/debian-packages"))
        .expect("debian-packages");
    write(&var, "lib/dpkg/status", &status);
    let img = build_disk(
        d,
        "gpt",
        &[
            Part {
                mib: 8,
                src: &boot,
                mkfs: &["-L", "BOOT", "-U", "01234567-0123-0123-0123-012345678901"],
                extra: "",
            },
            Part {
                mib: 16,
                src: &root,
                mkfs: &["-U", "01234567-0123-0123-0123-012345678902"],
                extra: "",
            },
            Part {
                mib: 8,
                src: &var,
                mkfs: &["-U", "01234567-0123-0123-0123-012345678904"],
                extra: "uuid=8E2AE3BB-5E1A-4CD2-9B49-9D0C5F4F0A03",
            },
        ],
    );
    let os = inspect_json(&img);
    compare(&os, "expected-debian.img.xml", &["root"]);
    // The same disk converted by qemu-img to fixed VHD, dynamic VHD and VDI inspects the same.
    for (fmt, opts, name) in [
        ("vpc", "subformat=fixed", "disk.fixed.vhd"),
        ("vpc", "subformat=dynamic", "disk.dynamic.vhd"),
        ("vdi", "static=off", "disk.vdi"),
    ] {
        let i = img.to_str().expect("u");
        run("qemu-img", &["convert", "-O", fmt, "-o", opts, i, name], d);
        assert_eq!(inspect_json(&d.join(name)), os, "{name}");
    }
    assert_eq!(os["root"], "/dev/sda2");
    assert_eq!(os["mountpoints"]["/"], "/dev/sda2");
    assert_eq!(os["mountpoints"]["/boot"], "/dev/sda1");
    assert_eq!(os["mountpoints"]["/var"], "/dev/sda3", "PARTUUID= mapped");
    assert_eq!(os["kernels"][0], "2.6.26-2-amd64");
    let fs: Vec<&str> = os["filesystems"]
        .as_array()
        .expect("fs")
        .iter()
        .map(|f| f["device"].as_str().expect("dev"))
        .collect();
    assert_eq!(fs, ["/dev/sda2", "/dev/sda1", "/dev/sda3"]);
    assert!(os["warnings"].as_array().expect("w").is_empty(), "{os:#}");

    // Without -m the file commands see the guest's own tree: /var and /boot are mounted from
    // its fstab (three filesystems, one OS).
    let i = img.to_str().expect("u");
    let out = guestctl(&["cat", i, "/var/lib/dpkg/status"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, status);
    let out = guestctl(&["ls", i, "/boot"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("vmlinuz-2.6.26-2-amd64"));
}

#[test]
fn ubuntu_like_guest_on_mbr() {
    let tmp = tempfile::tempdir().expect("tmp");
    let d = tmp.path();
    let (root, boot) = (d.join("root"), d.join("boot"));
    std::fs::create_dir_all(root.join("boot")).expect("mkdir");
    std::fs::create_dir_all(&boot).expect("mkdir");
    host_elf(&root);
    write(
        &root,
        "etc/lsb-release",
        b"DISTRIB_ID=Ubuntu\nDISTRIB_RELEASE=10.10\nDISTRIB_CODENAME=maverick\n\
          DISTRIB_DESCRIPTION=\"Ubuntu 10.10 (Phony Pharaoh)\"\n",
    );
    write(&root, "etc/debian_version", b"squeeze/sid\n");
    write(&root, "etc/hostname", b"ubuntu.invalid\n");
    write(
        &root,
        "etc/fstab",
        b"LABEL=BOOT /boot ext2 default 0 0\n/dev/sda2 / ext2 default 0 0\n\
          /dev/mapper/cryptswap1 none swap sw 0 0\n",
    );
    let status = std::fs::read(corpus().join("libguestfs/test-data/phony-guests/debian-packages"))
        .expect("debian-packages");
    write(&root, "var/lib/dpkg/status", &status);
    let img = build_disk(
        d,
        "dos",
        &[
            Part {
                mib: 8,
                src: &boot,
                mkfs: &["-L", "BOOT"],
                extra: "",
            },
            Part {
                mib: 16,
                src: &root,
                mkfs: &[],
                extra: "",
            },
        ],
    );
    let os = inspect_json(&img);
    compare(&os, "expected-ubuntu.img.xml", &[]);
    assert_eq!(os["mountpoints"]["/boot"], "/dev/sda1");
    let w = os["warnings"].as_array().expect("w");
    assert!(
        w.iter()
            .any(|w| w.as_str().expect("s").contains("/dev/mapper/cryptswap1")),
        "the unmapped swap device is reported: {w:?}"
    );
}

#[test]
fn archlinux_like_guest_whole_partition() {
    let tmp = tempfile::tempdir().expect("tmp");
    let d = tmp.path();
    let root = d.join("root");
    host_elf(&root);
    write(&root, "etc/arch-release", b"");
    write(&root, "etc/hostname", b"archlinux.test\n");
    write(
        &root,
        "etc/fstab",
        b"UUID=01234567-0123-0123-0123-012345678902 / ext4 rw,relatime 0 1\n",
    );
    let desc = std::fs::read(corpus().join("libguestfs/test-data/phony-guests/archlinux-package"))
        .expect("archlinux-package");
    write(
        &root,
        "var/lib/pacman/local/test-package-1:0.1-1/desc",
        &desc,
    );
    let img = build_disk(
        d,
        "dos",
        &[Part {
            mib: 16,
            src: &root,
            mkfs: &["-U", "01234567-0123-0123-0123-012345678902"],
            extra: "",
        }],
    );
    let os = inspect_json(&img);
    compare(&os, "expected-archlinux.img.xml", &[]);
    assert_eq!(os["mountpoints"]["/"], "/dev/sda1");
}

#[test]
fn no_operating_system_is_not_an_error() {
    let tmp = tempfile::tempdir().expect("tmp");
    let d = tmp.path();
    let data = d.join("data");
    write(&data, "just/some/file", b"x");
    let img = build_disk(
        d,
        "gpt",
        &[Part {
            mib: 8,
            src: &data,
            mkfs: &[],
            extra: "",
        }],
    );
    let out = guestctl(&["inspect", "--json", img.to_str().expect("u")]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "[]");
}

/// A GPT disk with no partitions (sgdisk -o), and one whose only partition holds nothing
/// recognised (zeros, as after `wipefs`): nothing to read, nothing unreadable, so inspect says
/// `[]` (text: "no operating system found") and exits 0, like before; the file commands fail
/// for lack of a filesystem.
#[test]
fn empty_gpt_disks_are_no_operating_system() {
    let tmp = tempfile::tempdir().expect("tmp");
    let d = tmp.path();
    let zeros = d.join("zeros");
    std::fs::File::create(&zeros)
        .expect("c")
        .set_len(4 << 20)
        .expect("len");
    let empty = support::gpt_disk(d, "empty.img", &[]);
    let wiped = support::gpt_disk(d, "wiped.img", &[(&zeros, "8300")]);
    for img in [&empty, &wiped] {
        let i = img.to_str().expect("u");
        let out = guestctl(&["inspect", "--json", i]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "[]");
        assert!(
            out.stderr.is_empty(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = guestctl(&["inspect", i]);
        assert!(out.status.success());
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "no operating system found\n"
        );
        let out = guestctl(&["ls", i, "/"]);
        assert_eq!(out.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&out.stderr).contains("no filesystem guestctl can read"));
    }
}

/// A Linux guest on ext4 whose fstab mounts /home from a btrfs partition (by UUID), beside a
/// LUKS volume its fstab does not name. Inspection finds the OS and warns about both (the
/// btrfs with its mountpoint); the file commands use the ext4 root and note what they left
/// out.
#[test]
fn linux_root_beside_unreadable_btrfs_and_luks() {
    let tmp = tempfile::tempdir().expect("tmp");
    let d = tmp.path();
    let root = d.join("root");
    host_elf(&root);
    std::fs::create_dir_all(root.join("home")).expect("mkdir");
    guest_etc(
        &root,
        b"NAME=\"Fedora Linux\"\nID=fedora\nVERSION_ID=39\n",
        b"mixed.invalid\n",
        b"UUID=01234567-0123-0123-0123-0123456789ab / ext4 defaults 0 1\n\
          UUID=89abcdef-0123-0123-0123-0123456789ab /home btrfs subvol=home 0 0\n",
    );
    let ext = support::mkfs_file(
        d,
        "root.ext4",
        16,
        "mkfs.ext4",
        &[
            "-q",
            "-F",
            "-U",
            "01234567-0123-0123-0123-0123456789ab",
            "-d",
            root.to_str().expect("u"),
        ],
    );
    let btrfs = support::mkfs_file(
        d,
        "home.btrfs",
        120,
        "mkfs.btrfs",
        &["-q", "-f", "-U", "89abcdef-0123-0123-0123-0123456789ab"],
    );
    let luks = support::luks_file(d, "vault", 4);
    let img = support::gpt_disk(
        d,
        "disk.img",
        &[(&ext, "8300"), (&btrfs, "8302"), (&luks, "8309")],
    );
    let os = inspect_json(&img);
    assert_eq!(os["root"], "/dev/sda1");
    assert_eq!(os["distro"], "fedora");
    assert_eq!(os["mountpoints"]["/home"], "/dev/sda2");
    let warnings: Vec<&str> = os["warnings"]
        .as_array()
        .expect("warnings")
        .iter()
        .map(|w| w.as_str().expect("w"))
        .filter(|w| !w.starts_with("applications:"))
        .collect();
    assert_eq!(
        warnings,
        [
            "/dev/sda2: btrfs filesystem: guestctl cannot read it, the files under /home are \
             not inspected",
            "/dev/sda3: crypto_LUKS encrypted volume: guestctl cannot read it, an operating \
             system on it is not inspected",
        ],
        "{os:#}"
    );

    let i = img.to_str().expect("u");
    let out = guestctl(&["cat", i, "/etc/hostname"]);
    assert_eq!(out.stdout, b"mixed.invalid\n");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "note: /dev/sda2 on /home: btrfs filesystem: guestctl cannot read it, left out"
        ) && err.contains(
            "note: /dev/sda3: crypto_LUKS encrypted volume: guestctl cannot read it, left out"
        ),
        "{err}"
    );
    let out = guestctl(&["ls", i, "/"]);
    assert!(out.status.success());
    let names = String::from_utf8_lossy(&out.stdout);
    assert!(
        names.lines().any(|l| l == "etc") && names.lines().any(|l| l == "home"),
        "{names}"
    );
}

/// A Fedora-33-like guest whose rpmdb.sqlite is libguestfs's Fedora dump loaded with sqlite3;
/// /etc/redhat-release and hostname in /etc/sysconfig/network (the legacy places). Oracle for
/// the applications: `rpm --dbpath -qa` on the same database.
#[test]
fn fedora_like_guest_with_sqlite_rpmdb() {
    let tmp = tempfile::tempdir().expect("tmp");
    let d = tmp.path();
    let (root, rpmdir) = rpm_guest_root(
        d,
        "etc/os-release",
        b"NAME=Fedora\nVERSION=\"33 (Server Edition)\"\nID=fedora\nVERSION_ID=33\n\
          PRETTY_NAME=\"Fedora 33 (Server Edition)\"\n",
        "var/lib/rpm",
    );
    write(
        &root,
        "etc/redhat-release",
        b"Fedora release 33 (Thirty Three)\n",
    );
    write(
        &root,
        "etc/sysconfig/network",
        b"NETWORKING=yes\nHOSTNAME=fedora.invalid\n",
    );
    let dump = corpus().join("libguestfs/test-data/phony-guests/fedora-db.sql.xz");
    run(
        "sh",
        &[
            "-c",
            &format!("xz -dc {} | sqlite3 rpmdb.sqlite", dump.display()),
        ],
        &rpmdir,
    );
    let want = rpm_qa_lines(&rpmdir, "sqlite");
    let os = inspect_root(d, &root, 24);
    assert_eq!(os["distro"], "fedora");
    assert_eq!(os["product_name"], "Fedora 33 (Server Edition)");
    assert_eq!(
        (os["major_version"].as_u64(), os["minor_version"].as_u64()),
        (Some(33), Some(0))
    );
    assert_eq!(os["osinfo"], "fedora33");
    assert_eq!(os["package_format"], "rpm");
    assert_eq!(os["package_management"], "dnf");
    assert_eq!(os["hostname"], "fedora.invalid");
    let ours = app_lines(&os);
    assert_eq!(ours, want);
    assert!(ours.len() >= 10);
}

/// A root tree in `d/root` for an rpm guest: the host's ELF, `release` (a path) holding
/// `text`, an fstab mounting `LABEL=root` on `/`, and an empty rpm database folder `rpm`.
/// Returns the root and that folder.
fn rpm_guest_root(d: &Path, release: &str, text: &[u8], rpm: &str) -> (PathBuf, PathBuf) {
    let root = d.join("root");
    host_elf(&root);
    write(&root, release, text);
    write(&root, "etc/fstab", b"LABEL=root / ext4 defaults 1 1\n");
    let rpmdir = root.join(rpm);
    std::fs::create_dir_all(&rpmdir).expect("mkdir");
    (root, rpmdir)
}

/// Inspects a GPT disk of one `mib`-MiB ext4 partition labelled `root` made from `root`.
fn inspect_root(d: &Path, root: &Path, mib: u64) -> serde_json::Value {
    let img = build_disk(
        d,
        "gpt",
        &[Part {
            mib,
            src: root,
            mkfs: &["-L", "root"],
            extra: "",
        }],
    );
    inspect_json(&img)
}

/// The inspected applications as sorted `NAME EPOCH:VERSION-RELEASE.ARCH` lines.
fn app_lines(os: &serde_json::Value) -> Vec<String> {
    let mut v: Vec<String> = os["applications"]
        .as_array()
        .expect("apps")
        .iter()
        .map(|a| {
            format!(
                "{} {}:{}-{}.{}",
                as_text(&a["name"]),
                a["epoch"],
                as_text(&a["version"]),
                as_text(&a["release"]),
                as_text(&a["arch"])
            )
        })
        .collect();
    v.sort();
    v
}

/// `rpm --dbpath DIR [--define '_db_backend B'] -qa` as sorted `NAME EPOCH:VERSION-RELEASE.ARCH`
/// lines, without gpg-pubkey.
fn rpm_qa_lines(dir: &Path, backend: &str) -> Vec<String> {
    let qa = Command::new("rpm")
        .arg("--dbpath")
        .arg(dir)
        .args(["--define", &format!("_db_backend {backend}")])
        .args([
            "-qa",
            "--qf",
            "%{NAME} %{EPOCHNUM}:%{VERSION}-%{RELEASE}.%{ARCH}\\n",
        ])
        .output()
        .expect("rpm (apt-get install rpm)");
    assert!(qa.status.success());
    let mut want: Vec<String> = String::from_utf8_lossy(&qa.stdout)
        .lines()
        .filter(|l| !l.starts_with("gpg-pubkey "))
        .map(str::to_string)
        .collect();
    want.sort();
    want
}

/// A CentOS-7-like guest whose `/var/lib/rpm/Packages` is a real CentOS 7 Berkeley DB rpmdb
/// (Debian's golang-github-knqyf263-go-rpmdb-dev ships it). Oracle: Debian's rpm reading the
/// same file with its `bdb_ro` backend.
#[test]
fn centos_like_guest_with_berkeley_db_rpmdb() {
    let src = Path::new(
        "/usr/share/gocode/src/github.com/knqyf263/go-rpmdb/pkg/testdata/centos7-plain/Packages",
    );
    assert!(
        src.is_file(),
        "{} is missing: apt-get install golang-github-knqyf263-go-rpmdb-dev (scripts/test.sh does)",
        src.display()
    );
    let tmp = tempfile::tempdir().expect("tmp");
    let d = tmp.path();
    let (root, rpmdir) = rpm_guest_root(
        d,
        "etc/redhat-release",
        b"CentOS Linux release 7.9.2009 (Core)\n",
        "var/lib/rpm",
    );
    std::fs::copy(src, rpmdir.join("Packages")).expect("copy");
    let want = rpm_qa_lines(&rpmdir, "bdb_ro");
    // rpm leaves index files and a lock beside it: the guest holds only Packages.
    for e in std::fs::read_dir(&rpmdir).expect("read_dir") {
        let p = e.expect("entry").path();
        if p.file_name().is_some_and(|n| n != "Packages") {
            std::fs::remove_file(p).expect("rm");
        }
    }
    let os = inspect_root(d, &root, 40);
    assert_eq!(os["distro"], "centos");
    assert_eq!(os["package_format"], "rpm");
    let ours = app_lines(&os);
    assert!(ours.len() > 100, "{:#?}", os["warnings"]);
    assert_eq!(ours, want);
    let w = os["warnings"].as_array().expect("warnings");
    assert!(
        !w.iter()
            .any(|w| w.as_str().is_some_and(|s| s.contains("rpm"))),
        "{w:#?}"
    );
}

/// An openSUSE-like guest whose `/usr/lib/sysimage/rpm/Packages.db` is the ndb fixture written
/// by rpm (fixtures/rpmdb-ndb). Oracle: that rpm's `-qa`, stored beside it.
#[test]
fn suse_like_guest_with_ndb_rpmdb() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/rpmdb-ndb");
    let tmp = tempfile::tempdir().expect("tmp");
    let d = tmp.path();
    let (root, rpmdir) = rpm_guest_root(
        d,
        "etc/os-release",
        b"NAME=\"openSUSE Leap\"\nVERSION=\"15.5\"\nID=\"opensuse-leap\"\n\
          ID_LIKE=\"suse opensuse\"\nVERSION_ID=\"15.5\"\n",
        "usr/lib/sysimage/rpm",
    );
    run(
        "sh",
        &[
            "-c",
            &format!(
                "xz -dc {} > Packages.db",
                fixtures.join("Packages.db.xz").display()
            ),
        ],
        &rpmdir,
    );
    let listing = std::fs::read_to_string(fixtures.join("rpm-qa.txt")).expect("rpm-qa.txt");
    let mut want: Vec<String> = listing
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('|').collect();
            format!("{} {}:{}-{}.{}", f[0], f[1], f[2], f[3], f[4])
        })
        .collect();
    want.sort();
    let os = inspect_root(d, &root, 16);
    assert_eq!(os["package_format"], "rpm");
    assert_eq!(app_lines(&os), want);
    assert_eq!(want.len(), 259);
}

/// Malformed guest data never aborts inspection: what cannot be read becomes a warning and the
/// rest is still reported.
#[test]
fn malformed_guest_files_give_warnings_not_errors() {
    let tmp = tempfile::tempdir().expect("tmp");
    let d = tmp.path();
    let root = d.join("root");
    host_elf(&root);
    // os-release without ID, but a legacy file to fall back on.
    write(
        &root,
        "etc/os-release",
        b"\xff\xfe garbage \x00\x01\nNAME=\"unterminated\n",
    );
    write(
        &root,
        "etc/redhat-release",
        b"CentOS Linux release 7.9.2009 (Core)\n",
    );
    write(
        &root,
        "etc/fstab",
        b"UUID=no-such-uuid /data ext4 defaults 0 0\nonly-one-field\n\
          /dev/mapper/vg-home /home ext4 defaults 0 0\n\x00\x01\x02 / x\n",
    );
    write(&root, "etc/hostname", &[0xff; 300]);
    // An rpmdb that is not a database.
    write(
        &root,
        "var/lib/rpm/rpmdb.sqlite",
        b"SQLite format 3\0 but then nothing",
    );
    let img = build_disk(
        d,
        "gpt",
        &[Part {
            mib: 16,
            src: &root,
            mkfs: &[],
            extra: "",
        }],
    );
    let os = inspect_json(&img);
    assert_eq!(os["distro"], "centos");
    assert_eq!(
        (os["major_version"].as_u64(), os["minor_version"].as_u64()),
        (Some(7), Some(9))
    );
    assert_eq!(os["package_format"], "rpm");
    let w: Vec<String> = os["warnings"]
        .as_array()
        .expect("warnings")
        .iter()
        .map(|w| w.as_str().expect("s").to_string())
        .collect();
    let has = |s: &str| w.iter().any(|x| x.contains(s));
    assert!(has("/etc/os-release"), "{w:#?}");
    assert!(has("no-such-uuid"), "{w:#?}");
    assert!(has("/dev/mapper/vg-home"), "{w:#?}");
    assert!(has("line 2"), "malformed fstab line: {w:#?}");
    assert!(has("rpmdb.sqlite"), "{w:#?}");
    assert!(os["applications"].as_array().expect("apps").is_empty());
}

/// The RHEL-family layout that inspected as `[]` before XFS was read: GPT with an empty ESP,
/// an XFS /boot and an XFS / (mkfs.xfs -p from host trees, copied in with dd), fstab by UUID.
/// Now the OS is found with its three mounts and no warning about any of its filesystems,
/// and the file commands see its tree.
#[test]
fn rhel_like_guest_on_xfs_with_an_esp() {
    let tmp = tempfile::tempdir().expect("tmp");
    let d = tmp.path();
    let (root, boot) = (d.join("root"), d.join("boot"));
    host_elf(&root);
    for m in ["boot", "usr/lib"] {
        std::fs::create_dir_all(root.join(m)).expect("mkdir");
    }
    std::fs::create_dir_all(boot.join("efi")).expect("mkdir");
    guest_etc(
        &root,
        b"NAME=\"Red Hat Enterprise Linux\"\nID=\"rhel\"\nVERSION_ID=\"9.4\"\n",
        b"rhel9.invalid\n",
        b"UUID=11111111-2222-3333-4444-555555555555 / xfs defaults 0 0\n\
          UUID=66666666-7777-8888-9999-000000000000 /boot xfs defaults 0 0\n\
          UUID=ABCD-1234 /boot/efi vfat umask=0077 0 2\n",
    );
    write(
        &boot,
        "vmlinuz-5.14.0-427.el9.x86_64",
        b"not really a kernel",
    );
    let xfs = |name: &str, src: &Path, uuid: &str| {
        let proto = d.join(format!("{name}.proto"));
        std::fs::write(&proto, support::xfs_proto(src)).expect("proto");
        let p = proto.to_str().expect("u").to_string();
        support::mkfs_file(
            d,
            name,
            32,
            "mkfs.xfs",
            &["-q", "-f", "-m", &format!("uuid={uuid}"), "-p", &p],
        )
    };
    let esp = support::mkfs_file(d, "esp", 16, "mkfs.vfat", &["-i", "ABCD1234"]);
    let boot = xfs("boot.xfs", &boot, "66666666-7777-8888-9999-000000000000");
    let root = xfs("root.xfs", &root, "11111111-2222-3333-4444-555555555555");
    let img = support::gpt_disk(
        d,
        "rhel.img",
        &[(&esp, "EF00"), (&boot, "8300"), (&root, "8300")],
    );
    let os = inspect_json(&img);
    assert_eq!(os["root"], "/dev/sda3");
    assert_eq!(os["distro"], "rhel");
    assert_eq!(
        (os["major_version"].as_u64(), os["minor_version"].as_u64()),
        (Some(9), Some(4))
    );
    assert_eq!(os["hostname"], "rhel9.invalid");
    assert_eq!(os["mountpoints"]["/boot"], "/dev/sda2");
    assert_eq!(os["mountpoints"]["/boot/efi"], "/dev/sda1");
    let warnings = os["warnings"].as_array().expect("warnings");
    assert!(
        warnings
            .iter()
            .all(|w| !w.as_str().expect("w").contains("/dev/sda")),
        "{os:#}"
    );
    let out = guestctl(&["ls", img.to_str().expect("u"), "/boot"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "efi\nvmlinuz-5.14.0-427.el9.x86_64\n"
    );
}
