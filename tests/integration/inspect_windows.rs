//! `guestctl inspect` on a Windows guest laid out like libguestfs's phony Windows image: MBR
//! disk signature "1234", NTFS on partitions 1 and 2 (2 at sector 524288), the phony SOFTWARE
//! and SYSTEM hives at \Windows\System32\Config and a 32-bit PE as cmd.exe. The volume comes
//! from fixtures/windows-root.ntfs.zst (directories only); the hives and cmd.exe are copied in
//! from ../shared/corpus with `ntfscp` (no mount, no root). Oracle: guestfs-tools'
//! inspector/expected-windows.img.xml, every field.

use crate::support;

use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::Command;

use support::inspect_xml::compare;
use support::{corpus, run};

fn guestctl(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_guestctl"))
        .args(args)
        .output()
        .expect("guestctl")
}

const P2_START: u64 = 524_288;
const P2_SECTORS: u64 = 131_072;

fn build(dir: &Path) -> std::path::PathBuf {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/windows-root.ntfs.zst");
    let vol = dir.join("root.ntfs");
    run(
        "zstd",
        &[
            "-dqf",
            fixture.to_str().expect("u"),
            "-o",
            vol.to_str().expect("u"),
        ],
        dir,
    );
    let aux = corpus().join("libguestfs/tests/guests/guest-aux");
    let bin = corpus().join("libguestfs/test-data/binaries/bin-win32.exe");
    for (src, dst) in [
        (
            aux.join("windows-software"),
            "/Windows/System32/Config/SOFTWARE",
        ),
        (
            aux.join("windows-system"),
            "/Windows/System32/Config/SYSTEM",
        ),
        (bin, "/Windows/System32/cmd.exe"),
    ] {
        run(
            "ntfscp",
            &[
                "-f",
                "-q",
                vol.to_str().expect("u"),
                src.to_str().expect("u"),
                dst,
            ],
            dir,
        );
    }
    // Partition 1: a phony boot-loader NTFS, made here.
    let p1 = dir.join("p1.ntfs");
    std::fs::File::create(&p1)
        .expect("c")
        .set_len(16384 * 512)
        .expect("len");
    run(
        "mkntfs",
        &["-q", "-F", "-Q", "-p", "64", p1.to_str().expect("u")],
        dir,
    );
    let img = dir.join("windows.img");
    let disk = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&img)
        .expect("create");
    disk.set_len((P2_START + P2_SECTORS + 64) * 512)
        .expect("len");
    support::sfdisk(
        &img,
        &format!(
            "label: dos\nlabel-id: 0x34333231\nstart=64, size=16384, type=7\n\
             start={P2_START}, size={P2_SECTORS}, type=7\n"
        ),
    );
    for (file, at) in [(&p1, 64u64), (&vol, P2_START)] {
        let data = std::fs::read(file).expect("read");
        disk.write_all_at(&data, at * 512).expect("write");
    }
    // The disk signature is the ASCII "1234" at 0x1b8, as in libguestfs's recipe.
    let mut sig = [0u8; 4];
    disk.read_exact_at(&mut sig, 0x1b8).expect("read");
    assert_eq!(&sig, b"1234");
    img
}

#[test]
fn phony_windows_guest_matches_virt_inspector() {
    let tmp = tempfile::tempdir().expect("tmp");
    let img = build(tmp.path());
    let out = guestctl(&["inspect", "--json", img.to_str().expect("u")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v.as_array().map(Vec::len), Some(1), "{v:#}");
    let os = &v[0];
    compare(os, "expected-windows.img.xml", &[]);
    assert_eq!(os["mountpoints"]["/"], "/dev/sda2");
    assert_eq!(os["drive_mappings"]["C"], "/dev/sda2");
    let fs = &os["filesystems"][0];
    assert_eq!(
        (
            fs["device"].as_str(),
            fs["type"].as_str(),
            fs["uuid"].as_str()
        ),
        (Some("/dev/sda2"), Some("ntfs"), Some("091A29CC586B609C"))
    );

    // The file commands see the Windows tree without -m (one OS: its root), case-insensitive.
    let out = guestctl(&["ls", img.to_str().expect("u"), "/windows/system32/config"]);
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(
        listing.contains("SOFTWARE") && listing.contains("SYSTEM"),
        "{listing}"
    );
}
