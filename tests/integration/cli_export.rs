//! `guestctl tar-out` and `copy-out` on an ext4 image made by `mkfs.ext4 -d` from a generated
//! source tree (modes with setuid/setgid/sticky, long and non-UTF-8 names, symlinks absolute,
//! relative, dangling and long, hard links, empty/big/sparse files, a fifo, user xattrs set
//! with setfattr, devices added with `debugfs -w mknod`). Oracles: the source tree itself
//! (`find -printf '%y %m %s %T@ %l %P'`, `sha256sum`), GNU tar (extraction, `tar -tvf`),
//! gzip/zstd, getfattr and python3's tarfile.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::run;

fn guestctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_guestctl"))
        .args(args)
        .output()
        .expect("guestctl")
}

fn ok(o: &Output) {
    assert!(
        o.status.success(),
        "status {:?}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
}

fn sh(script: &str, dir: &Path) -> Output {
    run("bash", &["-c", script], dir)
}

/// Builds the source tree and the image `disk.img` from it; returns (src, image).
fn make_image(dir: &Path) -> (PathBuf, PathBuf) {
    let src = dir.join("src");
    std::fs::create_dir(&src).expect("mkdir");
    let long = "L".repeat(150);
    let script = format!(
        r#"set -e
mkdir -p etc d/sub/deeper sticky private "dir-{long}"
printf 'root:x:0:0::/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n' > etc/passwd
printf 'root:x:0:\nstaff:x:1000:\n' > etc/group
echo hello > d/a
ln d/a d/hard
ln d/a sub-hard-elsewhere
: > empty
head -c 3000000 /dev/urandom > big.bin
head -c 70000 /dev/urandom > d/sub/medium
truncate -s 9M sparse
printf tail >> sparse
echo long > "d/sub/deeper/{long}"
echo inlongdir > "dir-{long}/f"
echo nonutf8 > $'caf\xe9'
ln -s /etc/passwd abs
ln -s ../a d/sub/rel
ln -s does/not/exist dangling
ln -s "/a/target/that/is/longer/than/one/hundred/bytes/{long}" longlink
mkfifo fifo
chown 1000:1000 d/a private
chmod 4755 d/a
chmod 2750 private
chmod 1777 sticky
chmod 0600 empty
setfattr -n user.color -v blue d/a
setfattr -n user.note -v 'two words' big.bin
i=0
find . -depth -print0 | while IFS= read -r -d '' p; do
  i=$((i+1)); touch -h -d "@$((1500000000 + i * 3677))" "$p"
done
touch -h -d @1500099999 "dir-{long}/f" "dir-{long}"
"#
    );
    sh(&script, &src);
    let img = dir.join("disk.img");
    run(
        "mkfs.ext4",
        &[
            "-q",
            "-F",
            "-d",
            src.to_str().expect("u"),
            img.to_str().expect("u"),
            "64M",
        ],
        dir,
    );
    for cmd in ["mknod chr c 4 5", "mknod blk b 8 17"] {
        run("debugfs", &["-w", "-R", cmd, img.to_str().expect("u")], dir);
    }
    (src, img)
}

/// `%y %m %s %T@ %l %P` of every entry below `root` (sizes of directories dropped: host and
/// guest directory sizes differ), sorted, without lost+found and the devices made by debugfs.
fn listing(root: &Path) -> Vec<String> {
    let o = run(
        "find",
        &[".", "-mindepth", "1", "-printf", "%y %m %s %T@ %l|%P\\n"],
        root,
    );
    let mut v: Vec<String> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| !l.contains("|lost+found") && !l.ends_with("|chr") && !l.ends_with("|blk"))
        .map(|l| {
            let f: Vec<&str> = l.splitn(4, ' ').collect();
            if f[0] == "d" {
                format!("d {} - {}", f[1], f[3])
            } else {
                l.to_string()
            }
        })
        .collect();
    v.sort();
    v
}

fn sums(root: &Path) -> Vec<String> {
    let o = sh(
        "find . -path ./lost+found -prune -o -type f -print0 | xargs -0 sha256sum",
        root,
    );
    let mut v: Vec<String> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    v.sort();
    v
}

fn ino(p: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(p).expect("stat").ino()
}

#[test]
fn tar_out_round_trips_through_gnu_tar() {
    let tmp = tempfile::tempdir().expect("tmp");
    let t = tmp.path();
    let (src, img) = make_image(t);
    let i = img.to_str().expect("u");
    let tarf = t.join("out.tar");
    let o = guestctl(&["tar-out", "--xattrs", i, "/", tarf.to_str().expect("u")]);
    ok(&o);
    assert!(
        o.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    // Extract with GNU tar and compare with the source tree.
    let x = t.join("x");
    std::fs::create_dir(&x).expect("mkdir");
    run(
        "tar",
        &[
            "--xattrs",
            "--xattrs-include=user.*",
            "-xpf",
            tarf.to_str().expect("u"),
            "-C",
            "x",
        ],
        t,
    );
    let want = listing(&src);
    assert!(want.len() > 20, "{want:?}");
    assert_eq!(listing(&x), want);
    assert_eq!(sums(&x), sums(&src));
    assert_eq!(ino(&x.join("d/a")), ino(&x.join("d/hard")));
    assert_eq!(ino(&x.join("d/a")), ino(&x.join("sub-hard-elsewhere")));
    let o = run(
        "getfattr",
        &["--only-values", "-n", "user.color", "d/a"],
        &x,
    );
    assert_eq!(o.stdout, b"blue");
    let o = run(
        "getfattr",
        &["--only-values", "-n", "user.note", "big.bin"],
        &x,
    );
    assert_eq!(o.stdout, b"two words");

    // Names, owners and devices as GNU tar lists them.
    let o = run(
        "tar",
        &["-tvf", tarf.to_str().expect("u"), "--numeric-owner"],
        t,
    );
    let listing_num = String::from_utf8_lossy(&o.stdout).into_owned();
    let line = |text: &str, suffix: &str| -> String {
        text.lines()
            .find(|l| l.ends_with(suffix))
            .unwrap_or_else(|| panic!("no line ending {suffix:?} in\n{text}"))
            .to_string()
    };
    assert!(line(&listing_num, " ./d/a").starts_with("-rwsr-xr-x 1000/1000 "));
    assert!(line(&listing_num, " ./private/").starts_with("drwxr-s--- 1000/1000 "));
    assert!(line(&listing_num, " ./sticky/").starts_with("drwxrwxrwt 0/0 "));
    // debugfs mknod makes mode 0 nodes.
    assert!(
        line(&listing_num, "./chr").starts_with("c--------- 0/0"),
        "{listing_num}"
    );
    assert!(
        line(&listing_num, "./blk").starts_with("b--------- 0/0"),
        "{listing_num}"
    );
    assert!(line(&listing_num, "./chr").contains(" 4,5 "));
    assert!(line(&listing_num, "./blk").contains(" 8,17 "));
    assert!(line(&listing_num, "./fifo").starts_with('p'));
    assert!(listing_num.lines().next().expect("first").ends_with(" ./"));
    let hard = line(&listing_num, " link to ./d/a");
    assert!(hard.starts_with('h'), "{hard}");
    let o = run("tar", &["-tvf", tarf.to_str().expect("u")], t);
    let named = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        line(&named, " ./d/a").starts_with("-rwsr-xr-x alice/staff "),
        "{named}"
    );

    // python3's tarfile: the xattr PAX record and the non-UTF-8 and long names.
    let py = r#"
import sys, tarfile
t = tarfile.open(sys.argv[1], encoding="utf-8", errors="surrogateescape")
for m in t:
    if m.name == "./d/a":
        print("xattr", m.pax_headers.get("SCHILY.xattr.user.color"), m.uname, m.gname, m.uid, m.gid)
    if m.name.encode("utf-8", "surrogateescape") == b"./caf\xe9":
        print("nonutf8", m.size)
    if m.name.endswith("L" * 150):
        print("long", len(m.name))
    if m.name == "./longlink":
        print("longlink", len(m.linkname))
"#;
    let o = run("python3", &["-c", py, tarf.to_str().expect("u")], t);
    let py_out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        py_out.contains("xattr blue alice staff 1000 1000"),
        "{py_out}"
    );
    assert!(py_out.contains("nonutf8 8"), "{py_out}");
    assert!(
        py_out.contains(&format!("long {}", "./d/sub/deeper/".len() + 150)),
        "{py_out}"
    );
    assert!(
        py_out.contains(&format!(
            "longlink {}",
            "/a/target/that/is/longer/than/one/hundred/bytes/".len() + 150
        )),
        "{py_out}"
    );

    // --numeric-owner: no names (GNU tar then shows numbers).
    let numf = t.join("num.tar");
    ok(&guestctl(&[
        "tar-out",
        "--numeric-owner",
        i,
        "/d",
        numf.to_str().expect("u"),
    ]));
    let o = run("tar", &["-tvf", numf.to_str().expect("u")], t);
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        line(&text, " ./a").starts_with("-rwsr-xr-x 1000/1000 "),
        "{text}"
    );

    // Compression: the system tools decompress to the same archive.
    for (flag, tool, name) in [("gzip", "gzip", "out.tgz"), ("zstd", "zstd", "out.tar.zst")] {
        let p = t.join(name);
        ok(&guestctl(&[
            "tar-out",
            "--xattrs",
            "--compress",
            flag,
            i,
            "/",
            p.to_str().expect("u"),
        ]));
        let o = run(tool, &["-dc", p.to_str().expect("u")], t);
        assert_eq!(o.stdout, std::fs::read(&tarf).expect("read"), "{flag}");
    }

    // `-`: the archive on stdout.
    let o = guestctl(&["tar-out", "--xattrs", i, "/", "-"]);
    ok(&o);
    assert_eq!(o.stdout, std::fs::read(&tarf).expect("read"));
}

#[test]
fn tar_out_exclude_and_failures() {
    let tmp = tempfile::tempdir().expect("tmp");
    let t = tmp.path();
    let (_src, img) = make_image(t);
    let i = img.to_str().expect("u");
    let out = t.join("ex.tar");
    ok(&guestctl(&[
        "tar-out",
        "--exclude",
        "*.bin",
        "--exclude",
        "sub",
        "--exclude",
        "etc/group",
        i,
        "/",
        out.to_str().expect("u"),
    ]));
    let o = run("tar", &["-tf", out.to_str().expect("u")], t);
    let names = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(names.lines().any(|l| l == "./d/a"), "{names}");
    assert!(names.lines().any(|l| l == "./etc/passwd"), "{names}");
    for gone in ["./big.bin", "./d/sub/", "./d/sub/medium", "./etc/group"] {
        assert!(!names.lines().any(|l| l == gone), "{gone} in {names}");
    }
    assert!(!names.contains("deeper"));

    // Failures: exit 1, a line naming the cause, nothing under OUT and no temporary file.
    let fail_dir = t.join("fail");
    std::fs::create_dir(&fail_dir).expect("mkdir");
    let out = fail_dir.join("o.tar");
    let o = guestctl(&["tar-out", i, "/no/such/dir", out.to_str().expect("u")]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("/no/such/dir"));
    let o = guestctl(&[
        "tar-out",
        i,
        "/",
        t.join("missing/o.tar").to_str().expect("u"),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(!t.join("missing").exists());
    // The file-size limit hits in the middle of the archive (EFBIG).
    let o = Command::new("prlimit")
        .args(["--fsize=1000000", "--"])
        .arg(env!("CARGO_BIN_EXE_guestctl"))
        .args(["tar-out", i, "/", out.to_str().expect("u")])
        .output()
        .expect("prlimit");
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("o.tar"));
    assert_eq!(std::fs::read_dir(&fail_dir).expect("ls").count(), 0);
    // The same through the compressor thread (random data does not compress below the limit).
    let o = Command::new("prlimit")
        .args(["--fsize=1000000", "--"])
        .arg(env!("CARGO_BIN_EXE_guestctl"))
        .args([
            "tar-out",
            "--compress",
            "zstd",
            i,
            "/",
            out.to_str().expect("u"),
        ])
        .output()
        .expect("prlimit");
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("file-size limit")
            || String::from_utf8_lossy(&o.stderr).contains("too large"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(std::fs::read_dir(&fail_dir).expect("ls").count(), 0);
}

#[test]
fn copy_out_files_and_trees() {
    let tmp = tempfile::tempdir().expect("tmp");
    let t = tmp.path();
    let (src, img) = make_image(t);
    let i = img.to_str().expect("u");
    let dest = t.join("dest");
    std::fs::create_dir(&dest).expect("mkdir");
    let d = dest.to_str().expect("u");

    // A tree and a file: dest/d (equal to src/d) and dest/passwd.
    let o = guestctl(&["copy-out", i, "/d", "/etc/passwd", d]);
    ok(&o);
    assert_eq!(listing(&dest.join("d")), listing(&src.join("d")));
    assert_eq!(sums(&dest.join("d")), sums(&src.join("d")));
    assert_eq!(
        std::fs::read(dest.join("passwd")).expect("r"),
        std::fs::read(src.join("etc/passwd")).expect("r")
    );
    let (a, b) = (
        run("stat", &["-c", "%a %Y", "passwd"], &dest).stdout,
        run("stat", &["-c", "%a %Y", "etc/passwd"], &src).stdout,
    );
    assert_eq!(a, b);

    // Refused without --force (exit 1, the host file unchanged), replaced with it.
    std::fs::write(dest.join("passwd"), b"host file").expect("w");
    let o = guestctl(&["copy-out", i, "/etc/passwd", d]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--force"));
    assert_eq!(std::fs::read(dest.join("passwd")).expect("r"), b"host file");
    ok(&guestctl(&["copy-out", "--force", i, "/etc/passwd", d]));
    assert_eq!(
        std::fs::read(dest.join("passwd")).expect("r"),
        std::fs::read(src.join("etc/passwd")).expect("r")
    );

    // The whole filesystem: everything but the device nodes (skipped with a warning).
    let all = t.join("all");
    std::fs::create_dir(&all).expect("mkdir");
    let o = guestctl(&["copy-out", i, "/", all.to_str().expect("u")]);
    ok(&o);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("warning: /chr: chardev skipped"), "{err}");
    assert!(err.contains("warning: /blk: blockdev skipped"), "{err}");
    // Hard links become separate copies with the same contents and metadata.
    let strip = |v: Vec<String>| v;
    assert_eq!(strip(listing(&all)), strip(listing(&src)));
    assert_eq!(sums(&all), sums(&src));
    assert!(std::fs::read_dir(&all).expect("ls").all(|e| !e
        .expect("e")
        .file_name()
        .to_string_lossy()
        .ends_with(".part")));
}
