//! `guestctl convert`.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::bail;
use clap::{Args, ValueEnum};
use guestctl::convert::{convert_to_qcow2, convert_to_raw, Compression, Qcow2Options, RawOptions};

use super::ImageOpts;

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
enum OutFormat {
    Raw,
    Qcow2,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Codec {
    Zlib,
    Zstd,
}

#[derive(Args, Debug)]
pub struct ConvertArgs {
    /// Source image (raw, qcow2, vmdk; its backing chain is flattened into the output).
    src: PathBuf,
    /// Destination file: written under a temporary name, renamed when complete.
    dst: PathBuf,
    /// Output format.
    #[arg(short = 'O', long = "output-format", value_enum)]
    output_format: OutFormat,
    /// Compress qcow2 clusters (zlib by default, like `qemu-img convert -c`).
    #[arg(short = 'c', long, value_enum, num_args = 0..=1, default_missing_value = "zlib", require_equals = true)]
    compress: Option<Codec>,
    /// Compression level (zlib 0-9, zstd 1-22).
    #[arg(long)]
    level: Option<i32>,
    /// qcow2 cluster size in bytes (512 to 2097152, a power of two).
    #[arg(long, default_value_t = 65536)]
    cluster_size: u64,
    /// After writing, re-read the output through guestctl's own reader and compare it with
    /// the source byte for byte (zero ranges both sides agree on are skipped).
    #[arg(long)]
    verify: bool,
    /// Overwrite an existing destination.
    #[arg(long)]
    force: bool,
    /// Write every byte instead of leaving holes for zero ranges.
    #[arg(long)]
    preallocate: bool,
    /// fdatasync the output before renaming it into place, so a crash right after the command
    /// returns cannot leave a renamed but incomplete file (slower: waits for the disk).
    #[arg(long)]
    sync: bool,
    /// Worker threads (default: one per core).
    #[arg(short = 'j', long = "threads", default_value_t = 0)]
    threads: usize,
    /// Show a progress bar (default: when stderr is a terminal).
    #[arg(short = 'p', long, overrides_with = "no_progress")]
    progress: bool,
    /// Never show a progress bar.
    #[arg(long)]
    no_progress: bool,
    #[command(flatten)]
    open: ImageOpts,
}

pub fn run(a: ConvertArgs) -> anyhow::Result<()> {
    let img = guestctl::open_image(&a.src, &a.open.open_options())?;
    let dev = img.device();
    if a.output_format == OutFormat::Raw && (a.compress.is_some() || a.level.is_some()) {
        bail!("--compress and --level apply to -O qcow2 only");
    }
    if a.dst.as_os_str().is_empty() {
        bail!("empty destination path");
    }
    let opts = RawOptions {
        force: a.force,
        preallocate: a.preallocate,
        threads: a.threads,
        sync: a.sync,
        source_files: guestctl::image_files(img.info()),
    };
    let show = !a.no_progress && (a.progress || std::io::stderr().is_terminal());
    let bar = if show {
        let b = indicatif::ProgressBar::new(dev.size());
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        Some(b)
    } else {
        None
    };
    let tick = |n: u64| {
        if let Some(b) = &bar {
            b.inc(n);
        }
    };
    match a.output_format {
        OutFormat::Raw => {
            convert_to_raw(dev.as_ref(), &a.dst, &opts, &tick)?;
        }
        OutFormat::Qcow2 => {
            let q = Qcow2Options {
                cluster_size: a.cluster_size,
                compression: a.compress.map(|c| match c {
                    Codec::Zlib => Compression::Zlib,
                    Codec::Zstd => Compression::Zstd,
                }),
                level: a.level,
            };
            convert_to_qcow2(dev.as_ref(), &a.dst, &opts, &q, &tick)?;
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    if a.verify {
        let format = match a.output_format {
            OutFormat::Raw => guestctl::Format::Raw,
            OutFormat::Qcow2 => guestctl::Format::Qcow2,
        };
        let out = guestctl::open_image(
            &a.dst,
            &guestctl::OpenOptions {
                format: Some(format),
                follow_backing: false,
                ..guestctl::OpenOptions::default()
            },
        )?;
        if let Some(off) = guestctl::convert::first_difference(dev.as_ref(), out.device().as_ref())?
        {
            bail!(
                "verification failed: {} differs from {} at guest offset {off:#x}",
                a.dst.display(),
                a.src.display()
            );
        }
    }
    Ok(())
}
