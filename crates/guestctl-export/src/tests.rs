//! Unit tests over the in-memory filesystem: hostile trees stay inside the destination, the
//! walk goes on after errors, and tar-out's archive reads back (with the `tar` crate's reader).

use std::io::Read;
use std::path::Path;

use guestctl_fs::FileType;

use crate::memfs::MemFs;
use crate::{
    copy_out, tar_out, CopyOptions, Excludes, Problem, Severity, Sink, TarOptions, TarOutput,
};

/// A tree full of traps.
fn hostile() -> MemFs {
    let mut fs = MemFs::new();
    let etc = fs.dir(1, b"etc");
    fs.file(
        etc,
        b"passwd",
        b"root:x:0:0::/root:/bin/sh\nalice:x:1000:1000::/:/bin/sh\n",
    );
    fs.file(etc, b"group", b"staff:x:1000:\n");
    let top = fs.dir(1, b"top");
    fs.file(top, b"..", b"escape via dotdot");
    fs.file(top, b".", b"dot");
    fs.file(top, b"a/b", b"slash");
    fs.file(top, b"", b"empty");
    fs.file(top, b"nul\0x", b"nul");
    // A symlink `x` pointing outside, then a directory `x` whose file must not land there.
    fs.symlink(top, b"x", b"/etc");
    let x = fs.dir(top, b"x");
    fs.file(x, b"shadow", b"written through a symlink!");
    fs.symlink(top, b"up", b"../../..");
    let up2 = fs.dir(top, b"up");
    fs.file(up2, b"evil", b"through ../../..");
    fs.symlink(top, b"abs", b"/etc/passwd");
    let bad = fs.file(top, b"unreadable", b"data");
    fs.fail(bad);
    let baddir = fs.dir(top, b"baddir");
    fs.file(baddir, b"inside", b"never seen");
    fs.fail(baddir);
    fs.file(top, b"zz-after-errors", b"still copied");
    fs.special(top, b"dev", FileType::CharDevice);
    fs.special(top, b"pipe", FileType::Fifo);
    // A directory linked twice (a loop in a corrupt tree).
    let loopd = fs.dir(top, b"loop");
    fs.link(loopd, b"again", loopd);
    fs
}

fn collect(problems: &mut Vec<(Severity, String)>) -> impl FnMut(Problem) + '_ {
    |p: Problem| {
        let mut s = p.error.to_string();
        let mut src = std::error::Error::source(&p.error);
        while let Some(e) = src {
            s.push_str(": ");
            s.push_str(&e.to_string());
            src = e.source();
        }
        problems.push((p.severity, s));
    }
}

/// Every path under `root`, relative, with its type letter (symlinks not followed).
fn tree(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir") {
            let e = e.expect("entry");
            let m = std::fs::symlink_metadata(e.path()).expect("lstat");
            let rel = e
                .path()
                .strip_prefix(root)
                .expect("prefix")
                .to_string_lossy()
                .into_owned();
            let t = if m.is_dir() {
                'd'
            } else if m.file_type().is_symlink() {
                'l'
            } else {
                'f'
            };
            out.push(format!("{t} {rel}"));
            if m.is_dir() {
                stack.push(e.path());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn copy_out_of_a_hostile_tree_stays_inside_dest() {
    let fs = hostile();
    let outer = tempfile::tempdir().expect("tmp");
    let dest = outer.path().join("dest");
    std::fs::create_dir(&dest).expect("mkdir");
    let mut problems = Vec::new();
    let mut sink_fn = collect(&mut problems);
    let mut sink = Sink::new(&mut sink_fn);
    let s = copy_out(&fs, "/top", &dest, &CopyOptions::default(), &mut sink).expect("copy");
    drop(sink_fn);
    // Nothing beside dest.
    assert_eq!(
        tree(outer.path()).first().map(String::as_str),
        Some("d dest")
    );
    assert!(tree(outer.path())
        .iter()
        .all(|p| p.starts_with("d dest") || p.contains("dest/")));
    let got = tree(&dest);
    assert_eq!(
        got,
        [
            "d top",
            "d top/baddir",
            "d top/loop",
            "f top/pipe",
            "f top/zz-after-errors",
            "l top/abs",
            "l top/up",
            "l top/x",
        ],
        "{problems:#?}"
    );
    assert_eq!(
        std::fs::read_link(dest.join("top/x")).expect("link"),
        Path::new("/etc")
    );
    assert_eq!(
        std::fs::read_link(dest.join("top/up")).expect("link"),
        Path::new("../../..")
    );
    assert_eq!(
        std::fs::read(dest.join("top/zz-after-errors")).expect("read"),
        b"still copied"
    );
    let text = problems
        .iter()
        .map(|(_, s)| s.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    for want in [
        "name is . or ..",
        "name contains '/'",
        "empty name",
        "NUL byte",
        "/top/x: skipped: a second entry",
        "/top/up: skipped: a second entry",
        "/top/unreadable: cannot read file: inode",
        "injected read error",
        "/top/baddir: cannot read directory",
        "injected directory error",
        "/top/loop/again: skipped: directory already visited",
    ] {
        assert!(text.contains(want), "missing {want:?} in\n{text}");
    }
    assert!(problems
        .iter()
        .any(|(sev, s)| *sev == Severity::Warning && s.contains("/top/dev: chardev skipped")));
    assert!(s.errors >= 9, "{s:?}");
    // No temporary files left behind.
    assert!(got.iter().all(|p| !p.contains(".part")));
}

#[test]
fn copy_out_never_writes_through_an_existing_host_symlink() {
    let mut fs = MemFs::new();
    let d = fs.dir(1, b"d");
    fs.file(d, b"f", b"guest data");
    let outer = tempfile::tempdir().expect("tmp");
    let dest = outer.path().join("dest");
    let victim = outer.path().join("victim");
    std::fs::create_dir_all(&victim).expect("mkdir");
    std::fs::create_dir(&dest).expect("mkdir");
    // dest/d -> victim (outside) and victim/f exists.
    std::os::unix::fs::symlink(&victim, dest.join("d")).expect("ln");
    std::fs::write(victim.join("f"), b"host data").expect("w");
    for force in [false, true] {
        let mut problems = Vec::new();
        let mut f = collect(&mut problems);
        let mut sink = Sink::new(&mut f);
        let opts = CopyOptions {
            force,
            excludes: Excludes::default(),
        };
        copy_out(&fs, "/d", &dest, &opts, &mut sink).expect("copy");
        drop(f);
        assert_eq!(std::fs::read(victim.join("f")).expect("r"), b"host data");
        assert_eq!(tree(&victim), ["f f"]);
        assert!(
            problems.iter().any(|(_, s)| s.contains("not a directory")),
            "{problems:?}"
        );
    }
    // A host symlink where a file goes: refused without --force, replaced (not written
    // through) with it.
    std::fs::remove_file(dest.join("d")).expect("rm");
    std::fs::create_dir(dest.join("d")).expect("mkdir");
    std::os::unix::fs::symlink(victim.join("f"), dest.join("d/f")).expect("ln");
    let mut problems = Vec::new();
    let mut f = collect(&mut problems);
    let mut sink = Sink::new(&mut f);
    copy_out(&fs, "/d", &dest, &CopyOptions::default(), &mut sink).expect("copy");
    drop(f);
    assert!(problems.iter().any(|(_, s)| s.contains("use --force")));
    let mut problems = Vec::new();
    let mut f = collect(&mut problems);
    let mut sink = Sink::new(&mut f);
    let opts = CopyOptions {
        force: true,
        excludes: Excludes::default(),
    };
    copy_out(&fs, "/d", &dest, &opts, &mut sink).expect("copy");
    drop(f);
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(std::fs::read(victim.join("f")).expect("r"), b"host data");
    assert_eq!(std::fs::read(dest.join("d/f")).expect("r"), b"guest data");
    assert!(!std::fs::symlink_metadata(dest.join("d/f"))
        .expect("m")
        .file_type()
        .is_symlink());
}

#[test]
fn tar_out_of_a_hostile_tree_reads_back_and_goes_on_after_errors() {
    let fs = hostile();
    let dir = tempfile::tempdir().expect("tmp");
    let out = dir.path().join("a.tar");
    let mut problems = Vec::new();
    let mut f = collect(&mut problems);
    let mut sink = Sink::new(&mut f);
    let opts = TarOptions {
        xattrs: true,
        ..TarOptions::default()
    };
    let s =
        tar_out::<std::io::Sink>(&fs, "/", TarOutput::Path(&out), &opts, &mut sink).expect("tar");
    drop(f);
    assert!(s.errors > 0);
    let mut a = tar::Archive::new(std::fs::File::open(&out).expect("open"));
    let mut names = Vec::new();
    for e in a.entries().expect("entries") {
        let mut e = e.expect("entry");
        let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
        let pax: Vec<(String, Vec<u8>)> = match e.pax_extensions().expect("pax") {
            Some(x) => x
                .map(|r| {
                    let r = r.expect("rec");
                    (r.key().expect("key").to_string(), r.value_bytes().to_vec())
                })
                .collect(),
            None => Vec::new(),
        };
        assert!(
            pax.contains(&("SCHILY.xattr.user.test".into(), b"v\x00\xff".to_vec())),
            "{name}"
        );
        assert!(
            pax.contains(&("mtime".into(), b"1600000000.250000000".to_vec())),
            "{name}"
        );
        if name == "./top/zz-after-errors" {
            let mut d = Vec::new();
            e.read_to_end(&mut d).expect("read");
            assert_eq!(d, b"still copied");
        }
        assert_eq!(e.header().username_bytes(), Some(&b"alice"[..]), "{name}");
        assert_eq!(e.header().groupname_bytes(), Some(&b"staff"[..]), "{name}");
        names.push(name);
    }
    assert!(
        names.contains(&"./top/zz-after-errors".to_string()),
        "{names:?}"
    );
    assert!(names.contains(&"./top/x".to_string()));
    assert!(
        names.iter().all(|n| !n.contains("..")
            && !n.contains("shadow")
            && !n.contains("unreadable")
            && !n.contains("inside")),
        "{names:?}"
    );
    let text = problems
        .iter()
        .map(|(_, s)| s.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(text.contains("/top/unreadable: cannot read file"), "{text}");
    assert!(
        text.contains("/top/baddir: cannot read directory"),
        "{text}"
    );
}

#[test]
fn tar_out_fatal_errors_leave_nothing() {
    let fs = hostile();
    let dir = tempfile::tempdir().expect("tmp");
    let out = dir.path().join("a.tar");
    let mut problems = Vec::new();
    let mut f = collect(&mut problems);
    let mut sink = Sink::new(&mut f);
    let r = tar_out::<std::io::Sink>(
        &fs,
        "/nope",
        TarOutput::Path(&out),
        &TarOptions::default(),
        &mut sink,
    );
    assert!(r.is_err());
    let r = tar_out::<std::io::Sink>(
        &fs,
        "/etc/passwd",
        TarOutput::Path(&out),
        &TarOptions::default(),
        &mut sink,
    );
    assert!(r.is_err());
    assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 0);
}

#[test]
fn exclude_skips_whole_directories() {
    let fs = hostile();
    let mut buf = Vec::new();
    let mut problems = Vec::new();
    let mut f = collect(&mut problems);
    let mut sink = Sink::new(&mut f);
    let opts = TarOptions {
        numeric_owner: true,
        excludes: Excludes::new(["top", "*.nothing"]).expect("ok"),
        ..TarOptions::default()
    };
    tar_out(&fs, "/", TarOutput::Writer(&mut buf), &opts, &mut sink).expect("tar");
    drop(f);
    assert!(problems.is_empty(), "{problems:?}");
    let mut a = tar::Archive::new(buf.as_slice());
    let names: Vec<String> = a
        .entries()
        .expect("e")
        .map(|e| {
            let e = e.expect("e");
            assert_eq!(e.header().username_bytes(), Some(&b""[..]));
            String::from_utf8_lossy(&e.path_bytes()).into_owned()
        })
        .collect();
    assert_eq!(names, ["./", "./etc/", "./etc/group", "./etc/passwd"]);
}

/// Two filesystems joined by a mount tree both hold a hard-linked file with the same inode
/// number: each second name must link to its own filesystem's first name, never across.
#[test]
fn tar_out_hard_links_never_cross_mounts() {
    use std::sync::Arc;
    let two_links = |data: &[u8]| {
        let mut fs = MemFs::new();
        let mnt = fs.dir(1, b"mnt");
        let f = fs.file(1, b"a", data);
        fs.link(1, b"b", f);
        fs.nodes[f as usize].meta.nlink = 2;
        (fs, mnt)
    };
    let (root, _) = two_links(b"root data");
    let (other, _) = two_links(b"other data");
    // Same inode numbers on purpose: node ids are equal in both trees.
    let mut tree = guestctl_fs::mount::MountTree::new(Arc::new(root));
    tree.mount("/mnt", Arc::new(other)).expect("mount");
    let dir = tempfile::tempdir().expect("tmp");
    let out = dir.path().join("m.tar");
    let mut problems = Vec::new();
    let mut f = collect(&mut problems);
    let mut sink = Sink::new(&mut f);
    tar_out::<std::io::Sink>(
        &tree,
        "/",
        TarOutput::Path(&out),
        &TarOptions::default(),
        &mut sink,
    )
    .expect("tar");
    drop(f);
    let mut a = tar::Archive::new(std::fs::File::open(&out).expect("open"));
    let mut links = Vec::new();
    for e in a.entries().expect("entries") {
        let e = e.expect("entry");
        if e.header().entry_type() == tar::EntryType::Link {
            let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
            let target =
                String::from_utf8_lossy(&e.link_name_bytes().expect("target")).into_owned();
            links.push((name, target));
        }
    }
    links.sort();
    assert_eq!(
        links,
        [
            ("./b".to_string(), "./a".to_string()),
            ("./mnt/b".to_string(), "./mnt/a".to_string())
        ]
    );
}
