//! A RHEL-9-like guest (fixtures/rhel9.img.zst, made by scripts/make-rhel-fixture.sh: GPT
//! with BIOS boot, ESP, XFS `/boot` and XFS `/`, fstab by UUID, an rpmdb.sqlite written by rpm
//! 4.18 from rpmbuild-made packages, SELinux labels) inspected and listed like virt-inspector
//! and virt-ls would. Oracles: `fixtures/rhel9.expected` (the script's inputs and
//! `rpm -qa`), `rhel9.find`/`rhel9.sha256` (find and sha256sum over the kernel's mount of `/`
//! with `/boot`), `rhel9.efi` (the ESP read back with mtools).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn guestctl(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_guestctl"))
        .args(args)
        .output()
        .expect("guestctl")
}

pub(crate) fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

pub(crate) fn unzstd(p: &Path) -> Vec<u8> {
    let f = std::fs::File::open(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let mut d = zstd::stream::read::Decoder::new(f).expect("zstd");
    d.window_log_max(31).expect("window");
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut d, &mut out).expect("decompress");
    out
}

/// The disk, decompressed once per test process (sparse: zero runs are skipped, not
/// written) under cargo's per-target temporary directory.
pub(crate) fn disk(_dir: &Path) -> PathBuf {
    static DISK: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DISK.get_or_init(|| {
        use std::io::{Read, Seek, SeekFrom, Write};
        let img = Path::new(env!("CARGO_TARGET_TMPDIR")).join("rhel9.img");
        let f = std::fs::File::open(fixture("rhel9.img.zst")).expect("rhel9.img.zst");
        let mut d = zstd::stream::read::Decoder::new(f).expect("zstd");
        d.window_log_max(31).expect("window");
        let mut out = std::fs::File::create(&img).expect("create");
        let mut buf = vec![0u8; 1 << 16];
        let mut len = 0u64;
        loop {
            let mut n = 0;
            while n < buf.len() {
                match d.read(&mut buf[n..]).expect("decompress") {
                    0 => break,
                    k => n += k,
                }
            }
            if n == 0 {
                break;
            }
            if buf[..n].iter().all(|&b| b == 0) {
                out.seek(SeekFrom::Current(n as i64)).expect("seek");
            } else {
                out.write_all(&buf[..n]).expect("write");
            }
            len += n as u64;
        }
        out.set_len(len).expect("len");
        img
    })
    .clone()
}

pub(crate) fn expected() -> Vec<(String, String)> {
    std::fs::read_to_string(fixture("rhel9.expected"))
        .expect("rhel9.expected")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn one(exp: &[(String, String)], key: &str) -> String {
    exp.iter()
        .find(|(k, _)| k == key)
        .unwrap_or_else(|| panic!("rhel9.expected has no {key}"))
        .1
        .clone()
}

#[test]
fn rhel9_guest_inspects_like_virt_inspector() {
    let tmp = tempfile::tempdir().expect("tmp");
    let img = disk(tmp.path());
    let out = guestctl(&["inspect", "--json", img.to_str().expect("utf8")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let oses = v.as_array().expect("list");
    assert_eq!(oses.len(), 1, "{v}");
    let os = &oses[0];
    let exp = expected();
    for key in [
        "type",
        "distro",
        "product_name",
        "arch",
        "hostname",
        "package_format",
        "package_management",
        "osinfo",
        "root",
        "timezone",
        "machine_id",
    ] {
        assert_eq!(os[key].as_str(), Some(one(&exp, key).as_str()), "{key}");
    }
    for key in ["major_version", "minor_version"] {
        assert_eq!(
            os[key].as_u64().map(|n| n.to_string()),
            Some(one(&exp, key)),
            "{key}"
        );
    }
    let mut mps = BTreeMap::new();
    for (k, v) in &exp {
        if k == "mountpoint" {
            let (mp, dev) = v.split_once(' ').expect("mountpoint line");
            mps.insert(mp.to_string(), dev.to_string());
        }
    }
    let ours: BTreeMap<String, String> = os["mountpoints"]
        .as_object()
        .expect("mountpoints")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
        .collect();
    assert_eq!(ours, mps);
    // Filesystems with their UUIDs (the BIOS boot partition holds none).
    for (k, v) in &exp {
        if k != "filesystem" {
            continue;
        }
        let f: Vec<&str> = v.split(' ').collect();
        if f[1] == "unknown" {
            continue;
        }
        let hit = os["filesystems"]
            .as_array()
            .expect("filesystems")
            .iter()
            .any(|x| x["device"] == f[0] && x["type"] == f[1] && x["uuid"] == f[2]);
        assert!(hit, "filesystem {v} in {}", os["filesystems"]);
    }
    let kernel = one(&exp, "kernel");
    let version = kernel.trim_start_matches("/boot/vmlinuz-");
    assert!(
        os["kernels"]
            .as_array()
            .expect("kernels")
            .iter()
            .any(|k| k == version),
        "{}",
        os["kernels"]
    );
    // Applications: exactly `rpm -qa` (name, epoch, version, release, arch).
    let mut want: Vec<String> = exp
        .iter()
        .filter(|(k, _)| k == "package")
        .map(|(_, v)| v.replace('\t', " "))
        .collect();
    want.sort();
    let mut got: Vec<String> = os["applications"]
        .as_array()
        .expect("applications")
        .iter()
        .map(|a| {
            format!(
                "{} {} {} {} {}",
                a["name"].as_str().unwrap_or_default(),
                a["epoch"],
                a["version"].as_str().unwrap_or_default(),
                a["release"].as_str().unwrap_or_default(),
                a["arch"].as_str().unwrap_or_default()
            )
        })
        .collect();
    got.sort();
    assert_eq!(got, want);
    assert!(got.len() >= 20);
    assert_eq!(
        os["warnings"].as_array().map(Vec::len),
        Some(0),
        "{}",
        os["warnings"]
    );
}

/// One `.find` line: type, mode, uid, gid, links, size, mtime (seconds), target.
pub(crate) fn find_oracle() -> BTreeMap<String, String> {
    let text = String::from_utf8(unzstd(&fixture("rhel9.find.zst"))).expect("utf8");
    let mut m = BTreeMap::new();
    for l in text.lines() {
        let f: Vec<&str> = l.splitn(8, ' ').collect();
        let (path, target) = f[7].split_once(" -> ").expect("arrow");
        let path = path.trim_start_matches('.');
        let path = if path.is_empty() { "/" } else { path };
        let secs = f[6].split('.').next().expect("secs");
        m.insert(
            path.to_string(),
            format!(
                "{} {} {} {} {} {} {secs} {target}",
                f[0], f[1], f[2], f[3], f[4], f[5]
            ),
        );
    }
    m
}

#[test]
fn rhel9_whole_tree_lists_and_hashes_like_the_kernel_mount() {
    let tmp = tempfile::tempdir().expect("tmp");
    let img = disk(tmp.path());
    let out = guestctl(&["ls", "-R", "--json", img.to_str().expect("utf8"), "/"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut ours = BTreeMap::new();
    let mut efi = BTreeMap::new();
    for l in String::from_utf8_lossy(&out.stdout).lines() {
        let v: serde_json::Value = serde_json::from_str(l).expect("json line");
        let path = v["path"].as_str().expect("path").to_string();
        let t = match v["type"].as_str().expect("type") {
            "file" => 'f',
            "directory" => 'd',
            "symlink" => 'l',
            "chardev" => 'c',
            "blockdev" => 'b',
            "fifo" => 'p',
            "socket" => 's',
            other => panic!("type {other}"),
        };
        let mode = u32::from_str_radix(v["mode"].as_str().expect("mode"), 8).expect("octal");
        let line = format!(
            "{t} {mode:o} {} {} {} {} {} {}",
            v["uid"],
            v["gid"],
            v["nlink"],
            v["size"],
            v["mtime"],
            v["target"].as_str().unwrap_or_default()
        );
        if path.starts_with("/boot/efi/") {
            efi.insert(path, (t, v["size"].as_u64().expect("size")));
        } else {
            ours.insert(path, line);
        }
    }
    let mut want = find_oracle();
    // The ESP was not mounted when the oracle was taken (no vfat in that kernel): its
    // mountpoint is compared by rhel9.efi below, not as an XFS directory.
    want.remove("/");
    want.remove("/boot/efi");
    ours.remove("/boot/efi");
    let diff: Vec<String> = want
        .iter()
        .filter(|(k, v)| ours.get(*k) != Some(v))
        .map(|(k, v)| format!("{k}: ours {:?} want {v:?}", ours.get(k)))
        .chain(
            ours.keys()
                .filter(|k| !want.contains_key(*k))
                .map(|k| format!("extra {k}")),
        )
        .collect();
    assert!(
        diff.is_empty(),
        "{} differences:\n{}",
        diff.len(),
        diff[..diff.len().min(15)].join("\n")
    );
    assert!(ours.len() > 5000, "{}", ours.len());

    // Content: every file's sha256 (XFS and the ESP).
    let out = guestctl(&["checksum", "-R", img.to_str().expect("utf8"), "/"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sums: BTreeMap<String, String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once("  "))
        .map(|(h, p)| (p.trim_start_matches('.').to_string(), h.to_string()))
        .collect();
    let text = String::from_utf8(unzstd(&fixture("rhel9.sha256.zst"))).expect("utf8");
    let mut n = 0;
    for l in text.lines() {
        let (h, p) = l.split_once("  ").expect("sha256sum line");
        let p = p.trim_start_matches('.');
        assert_eq!(sums.get(p).map(String::as_str), Some(h), "{p}");
        n += 1;
    }
    assert!(n > 100);
    let esp = std::fs::read_to_string(fixture("rhel9.efi")).expect("rhel9.efi");
    for l in esp.lines() {
        let f: Vec<&str> = l.split(' ').collect();
        assert_eq!(sums.get(f[2]).map(String::as_str), Some(f[1]), "{}", f[2]);
        assert_eq!(
            efi.get(f[2]).map(|e| e.1.to_string()),
            Some(f[0].to_string()),
            "{}",
            f[2]
        );
    }

    // The 5,000-entry directory and the fragmented file, read byte-exactly.
    let exp = expected();
    let frag = one(&exp, "fragmented");
    let f: Vec<&str> = frag.split(' ').collect();
    let out = guestctl(&["cat", img.to_str().expect("utf8"), f[0]]);
    assert!(out.status.success());
    assert_eq!(out.stdout.len().to_string(), f[1]);
    use sha2::Digest;
    assert_eq!(format!("{:x}", sha2::Sha256::digest(&out.stdout)), f[2]);
    let many = one(&exp, "many");
    let m: Vec<&str> = many.split(' ').collect();
    let out = guestctl(&["ls", img.to_str().expect("utf8"), m[0]]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .count()
            .to_string(),
        m[1]
    );
}

#[test]
fn a_closed_pipe_ends_quietly() {
    let tmp = tempfile::tempdir().expect("tmp");
    let img = disk(tmp.path());
    let mut child = Command::new(env!("CARGO_BIN_EXE_guestctl"))
        .args(["ls", "-R", img.to_str().expect("utf8"), "/"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    // Read one line, then hang up.
    let mut stdout = child.stdout.take().expect("stdout");
    let mut first = [0u8; 64];
    std::io::Read::read(&mut stdout, &mut first).expect("read");
    drop(stdout);
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success(), "{:?}", out.status);
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
