//! The brief's program: inspect a guest, mount its filesystems as its fstab does, read a
//! file, list a directory, checksum, download, export a tarball, list the applications.
//!
//!     cargo run --example inspect -- fixtures/demo.qcow2

use guestctl::Guestfs;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let disk = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "fixtures/demo.qcow2".into());
    let out = std::env::temp_dir();
    let g = Guestfs::new()?;
    g.set_verbose(false)?;
    g.add_drive_opts(&disk, None, false)?;
    g.launch()?;
    let roots = g.inspect_os()?;
    if roots.is_empty() {
        return Err("no operating system found".into());
    }
    for root in &roots {
        println!(
            "{root}: {} {} {}.{} ({}), hostname {}",
            g.inspect_get_type(root)?,
            g.inspect_get_distro(root)?,
            g.inspect_get_major_version(root)?,
            g.inspect_get_minor_version(root)?,
            g.inspect_get_arch(root)?,
            g.inspect_get_hostname(root)?
        );
        let mut mps: Vec<(String, String)> = g.inspect_get_mountpoints(root)?.into_iter().collect();
        mps.sort_by_key(|(mp, _)| mp.len());
        for (mp, dev) in &mps {
            g.mount_ro(dev, mp)?;
        }
        print!("{}", g.cat("/etc/os-release")?);
        println!("/etc has {} entries", g.ls("/etc")?.len());
        println!(
            "sha256 /etc/passwd: {}",
            g.checksum("sha256", "/etc/passwd")?
        );
        g.download("/etc/passwd", out.join("passwd"))?;
        g.tar_out_opts("/etc", out.join("etc.tar.gz"), Some("gzip"))?;
        let apps = g.inspect_list_applications2(root)?;
        println!(
            "{} applications, first {:?}",
            apps.len(),
            apps.first().map(|a| &a.app2_name)
        );
        g.umount_all()?;
    }
    g.shutdown()?;
    Ok(())
}
