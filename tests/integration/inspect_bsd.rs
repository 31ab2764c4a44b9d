//! `guestctl inspect` on BSD guests built at test time, no root: root trees with the marker
//! files libguestfs looks for, made into UFS filesystems by `makefs -t ffs` and placed in a
//! GPT disk (FreeBSD, sfdisk with the freebsd-ufs type) or in a NetBSD MBR slice with a
//! disklabel. Oracles: the trees themselves (what was written), `sqlite3` for the FreeBSD
//! pkg database, and `ls`/`cat` through the guest's fstab mounts.

use crate::support;

use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::Command;

use support::run;

fn guestctl(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_guestctl"))
        .args(args)
        .output()
        .expect("guestctl")
}

fn write(root: &Path, path: &str, data: &[u8]) {
    let p = root.join(path.trim_start_matches('/'));
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(p, data).expect("write");
}

fn host_elf(root: &Path) {
    std::fs::create_dir_all(root.join("bin")).expect("mkdir");
    std::fs::copy("/bin/sh", root.join("bin/sh"))
        .or_else(|_| std::fs::copy("/bin/dash", root.join("bin/sh")))
        .expect("copy the host's /bin/sh");
}

fn host_arch() -> String {
    let m = String::from_utf8(run("uname", &["-m"], Path::new("/")).stdout).expect("utf8");
    m.trim().to_string()
}

/// A UFS image of `src` (`version` 1 or 2) of exactly `mib` MiB.
fn makefs(dir: &Path, name: &str, version: u32, mib: u64, src: &Path) -> Vec<u8> {
    let img = dir.join(name);
    run(
        "makefs",
        &[
            "-t",
            "ffs",
            "-s",
            &format!("{mib}m"),
            "-o",
            &format!("version={version}"),
            img.to_str().expect("utf8"),
            src.to_str().expect("utf8"),
        ],
        dir,
    );
    std::fs::read(img).expect("read image")
}

fn put(img: &Path, at: u64, data: &[u8]) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(img)
        .expect("open")
        .write_all_at(data, at)
        .expect("write");
}

fn json(args: &[&str]) -> serde_json::Value {
    let o = guestctl(args);
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).expect("json")
}

#[test]
fn freebsd_guest_on_gpt() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    let root = d.join("root");
    host_elf(&root);
    write(
        &root,
        "/etc/freebsd-update.conf",
        b"KeyPrint 800651ef4b4c71c27e60786d7b487188970f4b4169cc055784e21eb71d410cc5\n",
    );
    write(
        &root,
        "/etc/fstab",
        b"# Device\tMountpoint\tFStype\tOptions\tDump\tPass#\n/dev/gpt/rootfs\t/\tufs\trw\t1\t1\n/dev/ada0p3\tnone\tswap\tsw\t0\t0\n/dev/ada0p4\t/var\tufs\trw\t2\t2\nfdesc\t/dev/fd\tfdescfs\trw\t0\t0\nproc\t/proc\tprocfs\trw\t0\t0\n",
    );
    write(
        &root,
        "/bin/freebsd-version",
        b"#!/bin/sh\nset -e\nUSERLAND_VERSION=\"13.2-RELEASE-p4\"\n: ${ROOT:=}\n",
    );
    write(
        &root,
        "/etc/rc.conf",
        b"hostname=\"freebsd.invalid\"\nsshd_enable=\"YES\"\n",
    );
    write(&root, "/boot/kernel/kernel", b"\x7fELF kernel");
    std::fs::create_dir_all(root.join("var")).expect("mkdir");
    let var = d.join("var");
    write(&var, "/db/zoneinfo", b"Europe/Amsterdam\n");
    std::fs::create_dir_all(var.join("db/pkg")).expect("mkdir");
    let db = var.join("db/pkg/local.sqlite");
    run(
        "sqlite3",
        &[
            db.to_str().expect("utf8"),
            "CREATE TABLE packages (id INTEGER PRIMARY KEY, origin TEXT NOT NULL, name TEXT NOT NULL, \
             version TEXT NOT NULL, comment TEXT NOT NULL, desc TEXT NOT NULL, mtree_id INTEGER, \
             message TEXT, arch TEXT NOT NULL, maintainer TEXT NOT NULL, www TEXT, prefix TEXT NOT NULL, \
             flatsize INTEGER NOT NULL, automatic INTEGER NOT NULL, locked INTEGER NOT NULL DEFAULT 0, \
             licenselogic INTEGER NOT NULL, time INTEGER, manifestdigest TEXT NULL, pkg_format_version INTEGER, \
             dep_formula TEXT NULL, vital INTEGER NOT NULL DEFAULT 0);
             INSERT INTO packages (origin,name,version,comment,desc,arch,maintainer,www,prefix,flatsize,automatic,licenselogic)
               VALUES ('shells/bash','bash','5.2.15','The GNU Project''s Bourne Again SHell','Bash is ...','FreeBSD:13:amd64','x@FreeBSD.org','https://www.gnu.org/software/bash/','/usr/local',1,0,1),
                      ('security/sudo','sudo','1.9.14p3','Allow others to run commands as root','Sudo is ...','FreeBSD:13:amd64','x@FreeBSD.org','https://www.sudo.ws/','/usr/local',1,0,1),
                      ('ports-mgmt/pkg','pkg','1.20.4','Package manager','pkg ...','FreeBSD:13:amd64','x@FreeBSD.org','','/usr/local',1,0,1);",
        ],
        d,
    );
    let want_apps = String::from_utf8(
        run(
            "sqlite3",
            &[
                db.to_str().expect("utf8"),
                "SELECT name, version FROM packages ORDER BY name",
            ],
            d,
        )
        .stdout,
    )
    .expect("utf8");
    let rootfs = makefs(d, "root.ufs", 2, 24, &root);
    let varfs = makefs(d, "var.ufs", 2, 8, &var);
    // GPT: freebsd-boot, freebsd-ufs "rootfs", freebsd-swap, freebsd-ufs.
    let img = d.join("freebsd.img");
    std::fs::File::create(&img)
        .expect("create")
        .set_len(40 << 20)
        .expect("len");
    support::sfdisk(
        &img,
        "label: gpt\n\
         start=2048, size=1024, type=83BD6B9D-7F41-11DC-BE0B-001560B84F0F\n\
         start=4096, size=49152, type=516E7CB6-6ECF-11D6-8FF8-00022D09712B, name=rootfs\n\
         start=53248, size=4096, type=516E7CB5-6ECF-11D6-8FF8-00022D09712B\n\
         start=57344, size=16384, type=516E7CB6-6ECF-11D6-8FF8-00022D09712B\n",
    );
    put(&img, 4096 * 512, &rootfs);
    put(&img, 57344 * 512, &varfs);
    run(
        "qemu-img",
        &[
            "convert",
            "-q",
            "-c",
            "-O",
            "qcow2",
            img.to_str().expect("u"),
            "freebsd.qcow2",
        ],
        d,
    );
    let q = d.join("freebsd.qcow2");
    let q = q.to_str().expect("utf8");

    let fsl = json(&["filesystems", "--json", q]);
    let types: Vec<(String, String)> = fsl
        .as_array()
        .expect("array")
        .iter()
        .map(|f| {
            (
                f["device"].as_str().unwrap_or("").into(),
                f["type"].as_str().unwrap_or("").into(),
            )
        })
        .collect();
    assert!(
        types.contains(&("/dev/sda2".into(), "ufs".into())),
        "{types:?}"
    );
    assert!(
        types.contains(&("/dev/sda4".into(), "ufs".into())),
        "{types:?}"
    );

    let v = json(&["inspect", "--json", q]);
    let os = &v.as_array().expect("array")[0];
    assert_eq!(os["root"], "/dev/sda2", "{os}");
    assert_eq!(os["type"], "freebsd");
    assert_eq!(os["distro"], "freebsd");
    assert_eq!(os["product_name"], "FreeBSD 13.2-RELEASE-p4");
    assert_eq!(
        (os["major_version"].as_u64(), os["minor_version"].as_u64()),
        (Some(13), Some(2))
    );
    assert_eq!(os["osinfo"], "freebsd13.2");
    assert_eq!(os["arch"], host_arch().as_str());
    assert_eq!(os["hostname"], "freebsd.invalid");
    assert_eq!(os["timezone"], "Europe/Amsterdam");
    assert_eq!(os["package_format"], "pkg");
    assert_eq!(os["mountpoints"]["/"], "/dev/sda2");
    assert_eq!(os["mountpoints"]["/var"], "/dev/sda4");
    assert_eq!(os["kernels"][0], "/boot/kernel/kernel");
    let apps: String = os["applications"]
        .as_array()
        .expect("apps")
        .iter()
        .map(|a| {
            format!(
                "{}|{}\n",
                a["name"].as_str().unwrap_or(""),
                a["version"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(apps, want_apps, "applications vs sqlite3");
    let bash = &os["applications"][0];
    assert_eq!(bash["summary"], "The GNU Project's Bourne Again SHell");
    assert_eq!(bash["url"], "https://www.gnu.org/software/bash/");
    // Every fstab line resolved (procfs and fdescfs are not mounts to make).
    assert_eq!(os["warnings"], serde_json::json!([]), "{os}");
    // The file commands use the guest's fstab: /var is the second UFS.
    let o = guestctl(&["cat", q, "/var/db/zoneinfo"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(o.stdout, b"Europe/Amsterdam\n");
    let o = guestctl(&["checksum", q, "/bin/freebsd-version"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let want = support::sha256_file(&root.join("bin/freebsd-version"));
    assert!(String::from_utf8_lossy(&o.stdout).starts_with(&want));
}

/// A BSD disklabel for a slice: partitions (letter index, first sector, sectors, fstype),
/// offsets absolute as NetBSD writes them, the 'c' (whole slice) and 'd' (whole disk) ones
/// included as NetBSD does.
fn disklabel(parts: &[(usize, u32, u32, u8)]) -> Vec<u8> {
    let mut b = vec![0u8; 512];
    let magic = 0x8256_4557u32.to_le_bytes();
    b[0..4].copy_from_slice(&magic);
    b[132..136].copy_from_slice(&magic);
    b[40..44].copy_from_slice(&512u32.to_le_bytes());
    let n = parts.iter().map(|p| p.0 + 1).max().unwrap_or(0).max(5);
    b[138..140].copy_from_slice(&(n as u16).to_le_bytes());
    for &(i, off, size, ty) in parts {
        let o = 148 + 16 * i;
        b[o..o + 4].copy_from_slice(&size.to_le_bytes());
        b[o + 4..o + 8].copy_from_slice(&off.to_le_bytes());
        b[o + 12] = ty;
    }
    let end = 148 + 16 * n;
    let mut x = 0u16;
    for i in (0..end).step_by(2) {
        x ^= u16::from_le_bytes([b[i], b[i + 1]]);
    }
    b[136..138].copy_from_slice(&x.to_le_bytes());
    b
}

#[test]
fn netbsd_guest_in_a_disklabel_slice() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    let root = d.join("root");
    host_elf(&root);
    write(&root, "/netbsd", b"\x7fELF kernel");
    write(
        &root,
        "/etc/release",
        b"NetBSD 9.3 (GENERIC) #0: Thu Aug  4 15:30:37 UTC 2022\n\n    mkrepro@mkrepro.NetBSD.org:/usr/src/sys/arch/amd64/compile/GENERIC\n",
    );
    write(&root, "/etc/fstab", b"/dev/wd0a / ffs rw 1 1\n/dev/wd0b none swap sw 0 0\n/dev/wd0e /home ffs rw 1 2\nkernfs /kern kernfs rw\nptyfs /dev/pts ptyfs rw\n");
    write(&root, "/etc/myname", b"netbsd.invalid\n");
    write(
        &root,
        "/usr/pkg/pkgdb/bash-5.2.15/+COMMENT",
        b"The GNU Bourne Again Shell\n",
    );
    write(
        &root,
        "/usr/pkg/pkgdb/sudo-1.9.14p3/+COMMENT",
        b"Allow others to run commands as root\n",
    );
    std::fs::create_dir_all(root.join("home")).expect("mkdir");
    let home = d.join("home");
    write(&home, "/alice/notes.txt", b"hello from /home\n");
    let rootfs = makefs(d, "root.ffs", 1, 16, &root);
    let homefs = makefs(d, "home.ffs", 2, 4, &home);
    let img = d.join("netbsd.img");
    std::fs::File::create(&img)
        .expect("create")
        .set_len(32 << 20)
        .expect("len");
    // One NetBSD slice (0xa9) from sector 2048; the label: a = root, b = swap, c = slice,
    // d = disk, e = /home.
    support::sfdisk(
        &img,
        "label: dos\nstart=2048, size=63488, type=a9, bootable\n",
    );
    let (a, asz) = (2048 + 64, 16 * 2048);
    let (bb, bsz) = (a + asz, 2048);
    let (e, esz) = (bb + bsz, 4 * 2048);
    put(
        &img,
        (2048 + 1) * 512,
        &disklabel(&[
            (0, a, asz, 7),
            (1, bb, bsz, 1),
            (2, 2048, 63488, 0),
            (3, 0, 65536, 0),
            (4, e, esz, 7),
        ]),
    );
    put(&img, u64::from(a) * 512, &rootfs);
    put(&img, u64::from(e) * 512, &homefs);
    let i = img.to_str().expect("utf8");
    let v = json(&["inspect", "--json", i]);
    let os = &v.as_array().expect("array")[0];
    // Primaries 1-4, no logicals: the label's partitions are sda5 (a), sda6 (b), sda7 (e).
    assert_eq!(os["root"], "/dev/sda5", "{os}");
    assert_eq!(os["type"], "netbsd");
    assert_eq!(
        os["product_name"],
        "NetBSD 9.3 (GENERIC) #0: Thu Aug  4 15:30:37 UTC 2022"
    );
    assert_eq!(
        (os["major_version"].as_u64(), os["minor_version"].as_u64()),
        (Some(9), Some(3))
    );
    assert_eq!(os["osinfo"], "netbsd9.3");
    assert_eq!(os["hostname"], "netbsd.invalid");
    assert_eq!(os["mountpoints"]["/home"], "/dev/sda7");
    let apps: Vec<(String, String, String)> = os["applications"]
        .as_array()
        .expect("apps")
        .iter()
        .map(|a| {
            (
                a["name"].as_str().unwrap_or("").into(),
                a["version"].as_str().unwrap_or("").into(),
                a["summary"].as_str().unwrap_or("").into(),
            )
        })
        .collect();
    assert_eq!(
        apps,
        [
            (
                "bash".into(),
                "5.2.15".into(),
                "The GNU Bourne Again Shell".into()
            ),
            (
                "sudo".into(),
                "1.9.14p3".into(),
                "Allow others to run commands as root".into()
            )
        ]
    );
    let o = guestctl(&["cat", i, "/home/alice/notes.txt"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(o.stdout, b"hello from /home\n");
    let fsl = json(&["filesystems", "--json", i]);
    let sda5 = fsl
        .as_array()
        .expect("array")
        .iter()
        .find(|f| f["device"] == "/dev/sda5")
        .expect("sda5 listed");
    assert_eq!(sda5["type"], "ufs");
}
