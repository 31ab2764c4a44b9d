//! Command-line parsing and output. No logic of its own: everything is a library call.

mod convert;
mod export;
mod files;
mod info;
mod inspect;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use guestctl::{Format, OpenOptions};

/// Exit codes, like qemu-img: 0 success, 1 the operation failed, 2 bad usage.
pub const EXIT_FAILURE: u8 = 1;

#[derive(Parser, Debug)]
#[command(
    name = "guestctl",
    version,
    about = "Look inside virtual-machine disk images and convert them: in process, read-only, no root, no VM",
    long_about = "guestctl reads raw, qcow2, vmdk, VHD (vpc) and VDI images (with backing chains) in\nprocess.\n\
Nothing is mounted, no VM is started, and input images are never modified.\n\n\
Exit status: 0 on success, 1 when the operation failed (unreadable, corrupt or unsupported\n\
image, refused backing file, I/O error), 2 on invalid usage.",
    after_help = "Examples:\n  guestctl info disk.qcow2\n  guestctl info --json overlay.qcow2\n  guestctl convert disk.vmdk disk.raw -O raw\n  guestctl convert disk.qcow2 disk.vmdk -O vmdk --subformat streamOptimized"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Show an image's format, sizes, features and backing chain (like `qemu-img info`).
    Info(info::InfoArgs),
    /// Find the operating systems on the disks: distro, version, arch, hostname, mountpoints,
    /// applications (like virt-inspector, in milliseconds).
    Inspect(inspect::InspectArgs),
    /// Convert images to raw (sparse), qcow2 (compressed, over a backing file), vmdk (monolithicSparse, streamOptimized), VHD (dynamic, fixed, --azure) or VDI (dynamic, static).
    Convert(convert::ConvertArgs),
    /// List the filesystems of every partition: device, type, size, UUID, label.
    Filesystems(files::FilesystemsArgs),
    /// List a guest directory (-l long, -R recursive, --json lines).
    Ls(files::LsArgs),
    /// Print a guest file to stdout.
    Cat(files::CatArgs),
    /// Show a guest file's metadata (inode, mode, owner, times, links).
    Stat(files::StatArgs),
    /// Hash a guest file, or every file under a directory with -R (like sha256sum).
    Checksum(files::ChecksumArgs),
    /// Copy guest files and directory trees into a host directory (like virt-copy-out).
    CopyOut(export::CopyOutArgs),
    /// Write a guest directory as a tar archive (gzip/zstd, xattrs, excludes; like virt-tar-out).
    TarOut(export::TarOutArgs),
}

/// How to open images: shared by every command that reads one.
#[derive(Args, Debug, Clone)]
pub struct ImageOpts {
    /// Image format (raw, qcow2, vmdk, vpc, vdi); default: detected from magic bytes, never the
    /// file name.
    #[arg(short = 'f', long = "format", value_parser = parse_format)]
    pub format: Option<Format>,
    /// Allow backing/extent/data files under this path prefix even when they are absolute or
    /// outside the image's directory (repeatable). Protocol and json: names are never followed.
    #[arg(long = "allow-backing", value_name = "PATH-PREFIX")]
    pub allow_backing: Vec<PathBuf>,
    /// Do not open backing files: unallocated ranges read as zeros.
    #[arg(long = "no-backing")]
    pub no_backing: bool,
}

impl ImageOpts {
    /// The library options these flags mean.
    pub fn open_options(&self) -> OpenOptions {
        OpenOptions {
            format: self.format,
            allow_backing: self.allow_backing.clone(),
            follow_backing: !self.no_backing,
        }
    }
}

fn parse_format(s: &str) -> Result<Format, String> {
    Format::from_name(s)
        .ok_or_else(|| format!("unknown format {s:?} (expected raw, qcow2, vmdk, vpc or vdi)"))
}

/// Parses arguments, runs the command and prints errors with their cause chain.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Info(a) => info::run(a),
        Command::Inspect(a) => inspect::inspect(a),
        Command::Convert(a) => convert::run(a),
        Command::Filesystems(a) => files::filesystems(a),
        Command::Ls(a) => files::ls(a),
        Command::Cat(a) => files::cat(a),
        Command::Stat(a) => files::stat(a),
        Command::Checksum(a) => files::checksum(a),
        Command::CopyOut(a) => export::copy_out(a),
        Command::TarOut(a) => export::tar_out(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // The reader went away (`| head`): stop quietly, like ripgrep or any Unix filter.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            print_error(&e);
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

/// Whether writing the output failed because its reader closed the pipe.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

pub(crate) fn print_error(e: &anyhow::Error) {
    eprintln!("guestctl: error: {e}");
    for cause in e.chain().skip(1) {
        eprintln!("  caused by: {cause}");
    }
}
