//! Output safety of `guestctl convert`: a conversion killed mid-way never leaves a file under
//! the final name (its temporary file, `.NAME.XXXXXX.part` beside it, may remain: nothing can
//! clean up after SIGKILL), and running into the file-size limit (`prlimit --fsize`, i.e.
//! `ulimit -f`) is a reported error with exit status 1 and no leftovers, not a silent death by
//! SIGXFSZ.

use crate::support;

use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::*;

/// A 1 GiB sparse raw image holding 96 MiB of incompressible data in three runs.
fn sparse_source(dir: &Path) {
    let f = std::fs::File::create(dir.join("src.raw")).expect("create");
    f.set_len(1 << 30).expect("len");
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut noise = vec![0u8; 32 << 20];
    for w in noise.chunks_exact_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        w.copy_from_slice(&x.to_le_bytes());
    }
    for at in [0u64, 400 << 20, 1000 << 20] {
        f.write_all_at(&noise, at).expect("write");
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("ls")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn killed_convert_never_leaves_the_final_name() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    sparse_source(d);
    for (out, args) in [
        ("out.qcow2", &["-O", "qcow2", "-c"][..]),
        (
            "out.vmdk",
            &["-O", "vmdk", "--subformat", "streamOptimized"],
        ),
        ("out.raw", &["-O", "raw", "--sync"]),
    ] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_guestctl"))
            .args(["convert", "--no-progress", "-j", "1", "src.raw", out])
            .args(args)
            .current_dir(d)
            .spawn()
            .expect("spawn");
        std::thread::sleep(Duration::from_millis(150));
        let running = child.try_wait().expect("wait").is_none();
        child.kill().expect("kill"); // SIGKILL
        let status = child.wait().expect("wait");
        if !running {
            // Too fast to interrupt here (raw output on a fast disk): it must then be whole.
            assert!(status.success(), "{out}: {status:?}");
            qemu_img(&["compare", "-q", "src.raw", out], d);
            std::fs::remove_file(d.join(out)).expect("rm");
            continue;
        }
        assert!(!d.join(out).exists(), "a killed convert left {out}");
        // What may remain is the clearly named temporary file only.
        for n in names(d) {
            if n == "src.raw" {
                continue;
            }
            assert!(
                n.starts_with(&format!(".{out}.")) && n.ends_with(".part"),
                "unexpected leftover {n}"
            );
            std::fs::remove_file(d.join(&n)).expect("rm");
        }
    }
    // The compressed outputs are slow enough to be interrupted every time.
    assert_eq!(names(d), ["src.raw"]);
}

#[test]
fn file_size_limit_is_a_clean_error() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    sparse_source(d);
    for (out, args) in [
        ("out.raw", &["-O", "raw"][..]),
        ("out.qcow2", &["-O", "qcow2"]),
        ("out.vmdk", &["-O", "vmdk"]),
        ("s.vmdk", &["-O", "vmdk", "--subformat", "streamOptimized"]),
    ] {
        let o = Command::new("prlimit")
            .arg("--fsize=16777216") // 16 MiB: the outputs need ~96 MiB
            .arg(env!("CARGO_BIN_EXE_guestctl"))
            .args(["convert", "--no-progress", "src.raw", out])
            .args(args)
            .current_dir(d)
            .output()
            .expect("prlimit (util-linux) must be installed");
        assert_eq!(o.status.code(), Some(1), "{out}: {:?}", o.status);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.starts_with("guestctl: error: ") && err.contains("file-size limit"),
            "{out}: {err}"
        );
        assert_eq!(names(d), ["src.raw"], "{out}: leftovers");
    }
}

/// Outputs get the usual 0666-less-umask mode (the temporary file's 0600 is not kept), for
/// convert (every format) and tar-out.
#[test]
fn outputs_have_the_umask_mode() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/demo.qcow2");
    let gc = env!("CARGO_BIN_EXE_guestctl");
    for (umask, want) in [("022", 0o644), ("077", 0o600), ("002", 0o664)] {
        for (out, args) in [
            ("o.raw", "convert DEMO o.raw -O raw"),
            ("o.qcow2", "convert DEMO o.qcow2 -O qcow2 -c"),
            ("o.vmdk", "convert DEMO o.vmdk -O vmdk"),
            ("o.tar", "tar-out DEMO / o.tar"),
        ] {
            let _ = std::fs::remove_file(d.join(out));
            let cmd = format!(
                "umask {umask}; exec \"$0\" {}",
                args.replace("DEMO", &format!("'{}'", demo.display()))
            );
            let o = Command::new("sh")
                .args(["-c", &cmd, gc])
                .current_dir(d)
                .output()
                .expect("sh");
            assert!(
                o.status.success(),
                "{cmd}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            let mode = std::fs::metadata(d.join(out))
                .expect("out")
                .permissions()
                .mode()
                & 0o777;
            assert_eq!(mode, want, "{args} with umask {umask}: {mode:o}");
        }
    }
}
