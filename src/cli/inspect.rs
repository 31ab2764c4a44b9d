//! `guestctl inspect`: the operating systems on the disks, with virt-inspector's fields.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use guestctl::inspect::{InspectOptions, OsInfo};
use guestctl::Guestfs;

use super::ImageOpts;

#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
    guestctl inspect disk.qcow2                     # a summary per operating system\n  \
    guestctl inspect --json disk.qcow2 | jq '.[0].applications[].name'\n  \
    for i in farm/*.qcow2; do guestctl inspect --json --no-applications \"$i\"; done\n  \
    guestctl inspect root.vmdk -a data.vmdk         # the disks of one guest (/dev/sda, /dev/sdb)\n\n\
What cannot be read inside a guest (an unknown fstab device, a damaged rpmdb page, a damaged\n\
hive) and every filesystem or volume guestctl cannot read (btrfs, LUKS, ZFS, ...) are listed\n\
under warnings. Exit status 1 when an image cannot be opened, or when no operating system is\n\
found but something could not be read (the warnings go to stderr: one may be there, unseen);\n\
0 with `[]` only when every device was looked into and none holds an operating system.\n\
The JSON keys are virt-inspector's element names; docs/INSPECT.md lists them.")]
pub struct InspectArgs {
    /// The disk image.
    image: PathBuf,
    /// More disks of the same guest (the second is /dev/sdb, ...).
    #[arg(short = 'a', long = "add", value_name = "IMAGE")]
    add: Vec<PathBuf>,
    /// JSON output: an array with one object per operating system, keys named after
    /// virt-inspector's XML elements (root, type, distro, product_name, major_version, ...,
    /// mountpoints, filesystems, applications) plus kernels, init_system, build_id, timezone,
    /// machine_id and warnings.
    #[arg(long)]
    json: bool,
    /// Skip the list of installed applications (faster on big guests).
    #[arg(long)]
    no_applications: bool,
    #[command(flatten)]
    image_opts: ImageOpts,
}

pub fn inspect(a: InspectArgs) -> anyhow::Result<()> {
    let g = Guestfs::new()?;
    for p in std::iter::once(&a.image).chain(&a.add) {
        g.add_drive_with(p, a.image_opts.open_options())?;
    }
    g.launch()?;
    let mut notes = Vec::new();
    let opts = InspectOptions {
        applications: !a.no_applications,
    };
    let found = g.inspect_disks(&opts, &mut notes)?;
    for n in &notes {
        eprintln!("guestctl: note: {n}");
    }
    if found.oses.is_empty() {
        for w in found.warnings() {
            eprintln!("guestctl: warning: {w}");
        }
    }
    let oses = found.into_oses()?;
    let mut out = std::io::stdout().lock();
    if a.json {
        serde_json::to_writer_pretty(&mut out, &oses)?;
        writeln!(out)?;
        return Ok(());
    }
    if oses.is_empty() {
        writeln!(out, "no operating system found")?;
    }
    for os in &oses {
        human(&mut out, os)?;
    }
    Ok(())
}

fn human(out: &mut impl Write, os: &OsInfo) -> std::io::Result<()> {
    writeln!(
        out,
        "{}: {} {} {}.{}",
        os.root, os.os_type, os.distro, os.major_version, os.minor_version
    )?;
    let mut field = |k: &str, v: &str| -> std::io::Result<()> {
        if v.is_empty() {
            Ok(())
        } else {
            writeln!(out, "  {k:<20} {v}")
        }
    };
    field("product_name", &os.product_name)?;
    field("product_variant", &os.product_variant)?;
    field("arch", &os.arch)?;
    field("hostname", &os.hostname)?;
    field("osinfo", &os.osinfo)?;
    field("package_format", &os.package_format)?;
    field("package_management", &os.package_management)?;
    field("init_system", &os.init_system)?;
    field("timezone", &os.timezone)?;
    field("machine_id", &os.machine_id)?;
    field("build_id", &os.build_id)?;
    field("windows_systemroot", &os.windows_systemroot)?;
    field(
        "windows_current_control_set",
        &os.windows_current_control_set,
    )?;
    let mps: Vec<String> = os
        .mountpoints
        .iter()
        .map(|(mp, dev)| format!("{mp} {dev}"))
        .collect();
    field("mountpoints", &mps.join(", "))?;
    let maps: Vec<String> = os
        .drive_mappings
        .iter()
        .map(|(l, dev)| format!("{l}: {dev}"))
        .collect();
    field("drive_mappings", &maps.join(", "))?;
    let fss: Vec<String> = os
        .filesystems
        .iter()
        .map(|f| format!("{} {}", f.device, f.fs_type))
        .collect();
    field("filesystems", &fss.join(", "))?;
    field("kernels", &os.kernels.join(", "))?;
    if !os.applications.is_empty() {
        field(
            "applications",
            &format!("{} (--json lists them)", os.applications.len()),
        )?;
    }
    for w in &os.warnings {
        writeln!(out, "  warning: {w}")?;
    }
    Ok(())
}
