//! `guestctl convert`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use guestctl::convert::{
    convert_to_qcow2, convert_to_qcow2_over, convert_to_raw, convert_to_vdi, convert_to_vhd,
    convert_to_vhdx, convert_to_vmdk, Compression, Qcow2Options, RawOptions, VdiOptions,
    VdiSubformat, VhdOptions, VhdSubformat, VhdxOptions, VhdxSubformat, VmdkOptions, VmdkSubformat,
};
use serde::Serialize;

use super::ImageOpts;

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
enum OutFormat {
    Raw,
    Qcow2,
    Vmdk,
    /// Microsoft VHD (qemu-img calls it vpc).
    #[value(alias = "vpc")]
    Vhd,
    /// VirtualBox VDI.
    Vdi,
    /// Microsoft Hyper-V VHDX.
    Vhdx,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
enum Subformat {
    /// One sparse file, plain grains (qemu-img's default).
    #[value(name = "monolithicSparse")]
    MonolithicSparse,
    /// One sparse file, compressed grains with markers (OVF/OVA appliances).
    #[value(name = "streamOptimized")]
    StreamOptimized,
    /// VHD: the raw data followed by a footer (Azure's format); VHDX: every block allocated.
    Fixed,
    /// VHD, VHDX, VDI: blocks allocated only where the data is not zero (the default; VHDX
    /// zero blocks are in the ZERO state, as qemu-img writes them).
    Dynamic,
    /// VDI: every block has its place in the file (qemu-img's `-o static=on`).
    Static,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Codec {
    Zlib,
    Zstd,
}

#[derive(Args, Debug)]
pub struct ConvertArgs {
    /// SRC DST: the source image (raw, qcow2, vmdk, vhd, vhdx, vdi; its backing chain is
    /// flattened into the
    /// output unless --backing) and the destination file (written under a temporary name,
    /// renamed when complete). With --batch: the sources only.
    #[arg(required = true, value_name = "SRC DST | SRC...")]
    paths: Vec<PathBuf>,
    /// Convert every SRC into --out-dir (named after the source: stem + the format's
    /// extension), going on after failures; exits 1 if any failed, after a summary.
    #[arg(long, requires = "out_dir")]
    batch: bool,
    /// Output directory for --batch.
    #[arg(long, value_name = "DIR", requires = "batch")]
    out_dir: Option<PathBuf>,
    /// Print the --batch summary as JSON on stdout.
    #[arg(long, requires = "batch")]
    json: bool,
    /// Write a self-contained output, with the source's whole backing chain merged in (the
    /// default; spelled out for scripts).
    #[arg(long, conflicts_with = "backing")]
    flatten: bool,
    /// qcow2 output over a backing file: store only the clusters that differ from FILE and
    /// record FILE (as given, with its format) as the backing file. Like qemu, a relative FILE
    /// is resolved against the output's directory, and that is the file compared with.
    #[arg(long, short = 'B', value_name = "FILE")]
    backing: Option<String>,
    /// Output format (vhd is qemu-img's vpc).
    #[arg(
        short = 'O',
        long = "output-format",
        value_enum,
        required_unless_present = "azure"
    )]
    output_format: Option<OutFormat>,
    /// Subformat: monolithicSparse|streamOptimized (-O vmdk), dynamic|fixed (-O vhd,
    /// -O vhdx), dynamic|static (-O vdi).
    #[arg(long, value_enum)]
    subformat: Option<Subformat>,
    /// A VHD that Azure accepts: fixed, with a virtual size that is a whole number of MiB
    /// (implies -O vhd --subformat fixed). A source whose size is not is padded with zeros
    /// up to the next MiB, and a note says so (what `qemu-img resize` to a whole MiB and
    /// `qemu-img convert -O vpc -o subformat=fixed,force_size=on` do in two steps).
    #[arg(long)]
    azure: bool,
    /// Compress qcow2 clusters (zlib by default, like `qemu-img convert -c`); with -O vmdk it
    /// means --subformat streamOptimized (whose grains are always zlib).
    #[arg(short = 'c', long, value_enum, num_args = 0..=1, default_missing_value = "zlib", require_equals = true)]
    compress: Option<Codec>,
    /// Compression level (zlib 0-9, zstd 1-22; vmdk streamOptimized: zlib 0-9).
    #[arg(long)]
    level: Option<i32>,
    /// qcow2 cluster size in bytes (512 to 2097152, a power of two; default 65536).
    #[arg(long)]
    cluster_size: Option<u64>,
    /// vhdx block size (1M to 256M, a power of two; suffixes K, M, G; default: qemu-img's
    /// choice for the disk size, 8M up to 1 GiB, 16M up to 100 GiB, 32M beyond), like
    /// `qemu-img convert -O vhdx -o block_size=`.
    #[arg(long, value_parser = parse_size)]
    block_size: Option<u64>,
    /// After writing, re-read the output through guestctl's own reader and compare it with
    /// the source byte for byte (zero ranges both sides agree on are skipped).
    #[arg(long)]
    verify: bool,
    /// Overwrite an existing destination.
    #[arg(long)]
    force: bool,
    /// Write every byte instead of leaving holes for zero ranges (raw output only: qcow2 and
    /// vmdk refuse it).
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
    if !a.batch && a.paths.len() != 2 {
        usage_error(format!(
            "convert takes SRC DST ({} path(s) given); use --batch --out-dir DIR for many sources",
            a.paths.len()
        ));
    }
    validate(&a)?;
    if a.batch {
        return batch(&a);
    }
    convert_one(&a, &a.paths[0], &a.paths[1])
}

/// Reports bad usage like clap does (exit status 2).
fn usage_error(msg: String) -> ! {
    clap::Error::raw(clap::error::ErrorKind::WrongNumberOfValues, msg + "\n").exit()
}

fn extension(f: OutFormat) -> &'static str {
    match f {
        OutFormat::Raw => "raw",
        OutFormat::Qcow2 => "qcow2",
        OutFormat::Vmdk => "vmdk",
        OutFormat::Vhd => "vhd",
        OutFormat::Vdi => "vdi",
        OutFormat::Vhdx => "vhdx",
    }
}

impl ConvertArgs {
    /// The output format (--azure means vhd).
    fn format(&self) -> OutFormat {
        self.output_format.unwrap_or(OutFormat::Vhd)
    }
}

/// A size in bytes with an optional K/M/G suffix (powers of 1024).
fn parse_size(s: &str) -> Result<u64, String> {
    let (num, shift) = match s.chars().last() {
        Some('K' | 'k') => (&s[..s.len() - 1], 10),
        Some('M' | 'm') => (&s[..s.len() - 1], 20),
        Some('G' | 'g') => (&s[..s.len() - 1], 30),
        _ => (s, 0),
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(1 << shift))
        .ok_or_else(|| format!("{s:?} is not a size (bytes, or with a K, M or G suffix)"))
}

#[derive(Serialize)]
struct BatchItem {
    source: String,
    destination: Option<String>,
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    seconds: f64,
}

#[derive(Serialize)]
struct BatchSummary {
    converted: usize,
    failed: usize,
    results: Vec<BatchItem>,
}

/// `--batch`: every source in turn, errors collected, a summary at the end.
fn batch(a: &ConvertArgs) -> anyhow::Result<()> {
    let dir = a.out_dir.as_deref().unwrap_or(Path::new("."));
    let mut seen = std::collections::HashSet::new();
    let mut results = Vec::new();
    for src in &a.paths {
        let t = std::time::Instant::now();
        let dst = src
            .file_stem()
            .map(|s| dir.join(format!("{}.{}", s.to_string_lossy(), extension(a.format()))));
        let r = match &dst {
            None => Err(anyhow::anyhow!(
                "{}: source has no file name",
                src.display()
            )),
            Some(d) if !seen.insert(d.clone()) => Err(anyhow::anyhow!(
                "{}: output name {} is already used by an earlier source",
                src.display(),
                d.display()
            )),
            Some(d) => convert_one(a, src, d),
        };
        if let Err(e) = &r {
            super::print_error(e);
        }
        results.push(BatchItem {
            source: src.display().to_string(),
            destination: dst.map(|d| d.display().to_string()),
            ok: r.is_ok(),
            error: r.err().map(|e| format!("{e:#}")),
            seconds: t.elapsed().as_secs_f64(),
        });
    }
    let failed = results.iter().filter(|r| !r.ok).count();
    let summary = BatchSummary {
        converted: results.len() - failed,
        failed,
        results,
    };
    use std::io::Write as _;
    let out = &mut std::io::stdout().lock();
    if a.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&summary)?)?;
    } else {
        for r in &summary.results {
            match (&r.error, &r.destination) {
                (None, Some(d)) => {
                    writeln!(out, "ok      {} -> {d} ({:.2} s)", r.source, r.seconds)?
                }
                (e, _) => writeln!(out, "FAILED  {}: {}", r.source, e.as_deref().unwrap_or(""))?,
            }
        }
        writeln!(
            out,
            "{} converted, {} failed",
            summary.converted, summary.failed
        )?;
    }
    if failed > 0 {
        bail!("{failed} of {} conversions failed", summary.results.len());
    }
    Ok(())
}

/// Option combinations that make no sense, refused before anything is opened.
fn validate(a: &ConvertArgs) -> anyhow::Result<()> {
    let fmt = a.format();
    if a.azure {
        if fmt != OutFormat::Vhd {
            bail!(
                "--azure writes a fixed VHD: it cannot be combined with -O {}",
                extension(fmt)
            );
        }
        if matches!(a.subformat, Some(s) if s != Subformat::Fixed) {
            bail!("--azure writes a fixed VHD (Azure accepts no other subformat)");
        }
    }
    if matches!(fmt, OutFormat::Vhd | OutFormat::Vdi) && (a.compress.is_some() || a.level.is_some())
    {
        bail!("VHD and VDI blocks are never compressed: --compress and --level do not apply");
    }
    if fmt == OutFormat::Raw && (a.compress.is_some() || a.level.is_some()) {
        bail!("--compress and --level apply to -O qcow2 and -O vmdk only");
    }
    if fmt != OutFormat::Qcow2 && a.cluster_size.is_some() {
        bail!("--cluster-size applies to -O qcow2 only (vmdk grains are 64 KiB)");
    }
    if fmt != OutFormat::Vhdx && a.block_size.is_some() {
        bail!("--block-size applies to -O vhdx only");
    }
    let sub_ok = match (fmt, a.subformat) {
        (_, None) => true,
        (OutFormat::Vmdk, Some(s)) => {
            matches!(s, Subformat::MonolithicSparse | Subformat::StreamOptimized)
        }
        (OutFormat::Vhd, Some(s)) => matches!(s, Subformat::Fixed | Subformat::Dynamic),
        (OutFormat::Vdi, Some(s)) => matches!(s, Subformat::Static | Subformat::Dynamic),
        (OutFormat::Vhdx, Some(s)) => matches!(s, Subformat::Fixed | Subformat::Dynamic),
        _ => false,
    };
    if !sub_ok {
        bail!(
            "--subformat: monolithicSparse or streamOptimized for -O vmdk, dynamic or fixed for \
             -O vhd and -O vhdx, dynamic or static for -O vdi (none for -O {})",
            extension(fmt)
        );
    }
    if fmt == OutFormat::Vhdx && (a.compress.is_some() || a.level.is_some()) {
        bail!("vhdx blocks are not compressed: --compress and --level do not apply");
    }
    if fmt == OutFormat::Vmdk {
        if matches!(a.compress, Some(Codec::Zstd)) {
            bail!("vmdk grains can only be zlib-compressed");
        }
        if a.subformat == Some(Subformat::MonolithicSparse)
            && (a.compress.is_some() || a.level.is_some())
        {
            bail!("monolithicSparse grains are not compressed; use --subformat streamOptimized");
        }
    }
    if a.backing.is_some() && fmt != OutFormat::Qcow2 {
        bail!("--backing applies to -O qcow2 only");
    }
    if a.preallocate && fmt != OutFormat::Raw {
        bail!(
            "--preallocate is supported for -O raw only: guestctl writes qcow2 and vmdk images \
             sparse (no metadata or data preallocation)"
        );
    }
    Ok(())
}

fn vmdk_subformat(a: &ConvertArgs) -> VmdkSubformat {
    match a.subformat {
        Some(Subformat::StreamOptimized) => VmdkSubformat::StreamOptimized,
        None if a.compress.is_some() || a.level.is_some() => VmdkSubformat::StreamOptimized,
        _ => VmdkSubformat::MonolithicSparse,
    }
}

/// Where a reader of `dst` finds the backing file `name`: relative to `dst`'s directory.
fn backing_path(dst: &Path, name: &str) -> PathBuf {
    let dir = dst
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if Path::new(name).is_absolute() {
        PathBuf::from(name)
    } else {
        dir.join(name)
    }
}

/// Converts `src` to `dst` with the options of `a`.
fn convert_one(a: &ConvertArgs, src: &Path, dst: &Path) -> anyhow::Result<()> {
    let img = guestctl::open_image(src, &a.open.open_options())?;
    let mut dev = img.device();
    if a.azure {
        let mib = 1u64 << 20;
        let rounded = dev.size().div_ceil(mib) * mib;
        if rounded != dev.size() {
            eprintln!(
                "guestctl: note: {}: virtual size {} bytes is not a whole number of MiB, as \
                 Azure requires: the VHD is padded with zeros to {rounded} bytes",
                src.display(),
                dev.size()
            );
            dev = std::sync::Arc::new(guestctl::block::ZeroExtended::new(dev, rounded));
        }
    }
    if dst.as_os_str().is_empty() {
        bail!("empty destination path");
    }
    let mut opts = RawOptions {
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
    match a.format() {
        OutFormat::Raw => {
            convert_to_raw(dev.as_ref(), dst, &opts, &tick)?;
        }
        OutFormat::Qcow2 => {
            let mut q = Qcow2Options {
                cluster_size: a.cluster_size.unwrap_or(65536),
                compression: a.compress.map(|c| match c {
                    Codec::Zlib => Compression::Zlib,
                    Codec::Zstd => Compression::Zstd,
                }),
                level: a.level,
                ..Qcow2Options::default()
            };
            match &a.backing {
                None => convert_to_qcow2(dev.as_ref(), dst, &opts, &q, &tick)?,
                Some(name) => {
                    let at = backing_path(dst, name);
                    let base =
                        guestctl::open_image(&at, &a.open.open_options()).with_context(|| {
                            format!(
                            "cannot open the backing file {name:?} (a relative name is resolved \
                             against the output's directory, as qemu does: {})",
                            at.display()
                        )
                        })?;
                    opts.source_files.extend(guestctl::image_files(base.info()));
                    q.backing_file = Some(name.clone());
                    q.backing_format = Some(base.info().format.name().to_string());
                    convert_to_qcow2_over(
                        dev.as_ref(),
                        base.device().as_ref(),
                        dst,
                        &opts,
                        &q,
                        &tick,
                    )?;
                }
            }
        }
        OutFormat::Vmdk => {
            let v = VmdkOptions {
                subformat: vmdk_subformat(a),
                level: a.level,
            };
            convert_to_vmdk(dev.as_ref(), dst, &opts, &v, &tick)?;
        }
        OutFormat::Vhd => {
            let v = VhdOptions {
                subformat: match a.subformat {
                    Some(Subformat::Fixed) => VhdSubformat::Fixed,
                    _ if a.azure => VhdSubformat::Fixed,
                    _ => VhdSubformat::Dynamic,
                },
            };
            convert_to_vhd(dev.as_ref(), dst, &opts, &v, &tick)?;
        }
        OutFormat::Vdi => {
            let v = VdiOptions {
                subformat: match a.subformat {
                    Some(Subformat::Static) => VdiSubformat::Static,
                    _ => VdiSubformat::Dynamic,
                },
            };
            convert_to_vdi(dev.as_ref(), dst, &opts, &v, &tick)?;
        }
        OutFormat::Vhdx => {
            let x = VhdxOptions {
                subformat: match a.subformat {
                    Some(Subformat::Fixed) => VhdxSubformat::Fixed,
                    _ => VhdxSubformat::Dynamic,
                },
                block_size: a.block_size,
            };
            convert_to_vhdx(dev.as_ref(), dst, &opts, &x, &tick)?;
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    if a.verify {
        let format = match a.format() {
            OutFormat::Raw => guestctl::Format::Raw,
            OutFormat::Qcow2 => guestctl::Format::Qcow2,
            OutFormat::Vmdk => guestctl::Format::Vmdk,
            OutFormat::Vhd => guestctl::Format::Vpc,
            OutFormat::Vdi => guestctl::Format::Vdi,
            OutFormat::Vhdx => guestctl::Format::Vhdx,
        };
        let out = guestctl::open_image(
            dst,
            &guestctl::OpenOptions {
                format: Some(format),
                follow_backing: a.backing.is_some(),
                // The backing file the user named is allowed wherever it is.
                allow_backing: a
                    .open
                    .allow_backing
                    .iter()
                    .cloned()
                    .chain(a.backing.as_ref().map(|n| backing_path(dst, n)))
                    .collect(),
            },
        )?;
        let mut out_dev = out.device();
        // vmdk, VHD, VHDX and VDI sizes are whole sectors: a source that is not was padded with
        // zeros (as qemu does); compare the source's bytes and check the padding reads as zero.
        let padded = dev.size().div_ceil(512) * 512;
        if a.format() != OutFormat::Raw && out_dev.size() == padded && padded > dev.size() {
            let mut tail = vec![0u8; (padded - dev.size()) as usize];
            out_dev.read_exact_at(dev.size(), &mut tail)?;
            if tail.iter().any(|&b| b != 0) {
                bail!(
                    "verification failed: {} has non-zero padding after the source's last byte",
                    dst.display()
                );
            }
            out_dev = std::sync::Arc::new(guestctl::block::Slice::new(out_dev, 0, dev.size())?);
        }
        if let Some(off) = guestctl::convert::first_difference(dev.as_ref(), out_dev.as_ref())? {
            bail!(
                "verification failed: {} differs from {} at guest offset {off:#x}",
                dst.display(),
                src.display()
            );
        }
    }
    Ok(())
}
