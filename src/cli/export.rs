//! `guestctl copy-out` and `tar-out`: extract guest files (library: `guestctl::export`).

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use guestctl::export::{
    self, Compression, CopyOptions, Excludes, Problem, Severity, Sink, TarOptions, TarOutput,
};

use super::files::Disks;

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Compress {
    Gzip,
    Zstd,
}

#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
guestctl copy-out disk.qcow2 /etc/hostname .          # a file: ./hostname\n  \
guestctl copy-out disk.qcow2 /etc /home/alice backup/ # trees: backup/etc, backup/alice\n  \
guestctl copy-out -m /dev/sda2 disk.img / rootfs/      # the whole filesystem into rootfs/\n  \
guestctl copy-out --force disk.img /etc/hosts .        # replace ./hosts\n\n\
Modes (with setuid/setgid/sticky) and times are kept; guest symlinks become symlinks with the\n\
same target and are never followed; fifos are created; device nodes and sockets are skipped\n\
with a warning. Nothing is written outside DESTDIR: hostile names (.., names with /) are\n\
skipped and reported. Errors are printed as they happen and the copy goes on; the exit status\n\
is 1 if anything failed. Ownership is not changed (use tar-out to keep owners).")]
pub struct CopyOutArgs {
    #[command(flatten)]
    disks: Disks,
    /// Guest paths to copy, then the existing host directory to copy them into (last).
    #[arg(value_name = "PATH... DESTDIR", num_args = 2.., required = true)]
    paths: Vec<String>,
    /// Replace existing host files and symlinks (directories are merged, never replaced).
    #[arg(long)]
    force: bool,
}

#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
guestctl tar-out disk.qcow2 /etc etc.tar\n  \
guestctl tar-out disk.qcow2 / root.tar.zst --compress zstd --xattrs\n  \
guestctl tar-out disk.img /home - --exclude '*.cache' --exclude tmp | tar -tvf -\n  \
guestctl tar-out -m /dev/sda2 disk.img /var/log logs.tgz --compress gzip --numeric-owner\n\n\
Entries are named ./, ./etc/, ./etc/passwd like `tar -C DIR -cf - .`. Owners, modes, times\n\
(nanoseconds as PAX mtime), symlinks, hard links, devices and fifos are stored; long and\n\
non-UTF-8 names work. User/group names come from the guest's own /etc/passwd and /etc/group.\n\
OUT is written as .OUT.XXXXXX.part beside it and renamed when complete; a failed run leaves\n\
nothing under OUT. Unreadable entries are reported and skipped, and the exit status is 1.")]
pub struct TarOutArgs {
    #[command(flatten)]
    disks: Disks,
    /// Guest directory to archive (its contents become ./...).
    dir: String,
    /// Output file, or `-` for stdout.
    out: PathBuf,
    /// Compress the archive.
    #[arg(long, value_enum)]
    compress: Option<Compress>,
    /// Store numeric uid/gid only (no user/group names).
    #[arg(long)]
    numeric_owner: bool,
    /// Store extended attributes (PAX SCHILY.xattr records, as GNU tar --xattrs).
    #[arg(long)]
    xattrs: bool,
    /// Leave out entries matching GLOB (repeatable). Without '/' it matches any path
    /// component (`*.log`, `cache`); with '/' the path relative to DIR. Excluded directories
    /// are not descended.
    #[arg(long, value_name = "GLOB")]
    exclude: Vec<String>,
}

/// Prints each problem as one line: `guestctl: [warning: ]PATH: WHAT: CAUSE: CAUSE`.
fn print_problem(p: Problem) {
    let mut line = p.error.to_string();
    let mut src = std::error::Error::source(&p.error);
    while let Some(s) = src {
        line.push_str(": ");
        line.push_str(&s.to_string());
        src = s.source();
    }
    match p.severity {
        Severity::Error => eprintln!("guestctl: error: {line}"),
        Severity::Warning => eprintln!("guestctl: warning: {line}"),
    }
}

fn progress_bar() -> Option<indicatif::ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let pb = indicatif::ProgressBar::new_spinner();
    pb.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} {bytes} copied ({bytes_per_sec}) {elapsed}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    pb.enable_steady_tick(std::time::Duration::from_millis(200));
    Some(pb)
}

fn finish(summary: export::Summary, what: &str) -> anyhow::Result<()> {
    if summary.errors > 0 {
        bail!(
            "{what}: {} error(s), {} entries written (see above)",
            summary.errors,
            summary.entries
        );
    }
    Ok(())
}

pub fn copy_out(a: CopyOutArgs) -> anyhow::Result<()> {
    let (dest, paths) = a
        .paths
        .split_last()
        .context("need at least one guest path and a destination directory")?;
    let dest = PathBuf::from(dest);
    let fs = a.disks.filesystem()?;
    let opts = CopyOptions {
        force: a.force,
        ..CopyOptions::default()
    };
    let pb = progress_bar();
    let summary = {
        let tick = |n: u64| {
            if let Some(pb) = &pb {
                pb.inc(n);
            }
        };
        let mut problems = |p: Problem| match &pb {
            Some(pb) => pb.suspend(|| print_problem(p)),
            None => print_problem(p),
        };
        let mut sink = Sink::new(&mut problems).with_progress(&tick);
        let mut failed_args = Vec::new();
        for p in paths {
            if let Err(e) = export::copy_out(fs.as_ref(), p, &dest, &opts, &mut sink) {
                // One bad argument does not stop the others.
                sink.report(e);
                failed_args.push(p.as_str());
            }
        }
        if !failed_args.is_empty() {
            eprintln!("guestctl: could not copy: {}", failed_args.join(", "));
        }
        sink.summary()
    };
    if let Some(pb) = pb {
        pb.finish_and_clear();
    }
    finish(summary, "copy-out")
}

pub fn tar_out(a: TarOutArgs) -> anyhow::Result<()> {
    let fs = a.disks.filesystem()?;
    let opts = TarOptions {
        compression: match a.compress {
            None => Compression::None,
            Some(Compress::Gzip) => Compression::Gzip,
            Some(Compress::Zstd) => Compression::Zstd,
        },
        numeric_owner: a.numeric_owner,
        xattrs: a.xattrs,
        excludes: Excludes::new(a.exclude.iter().map(String::as_bytes))?,
    };
    let pb = progress_bar();
    let summary = {
        let tick = |n: u64| {
            if let Some(pb) = &pb {
                pb.inc(n);
            }
        };
        let mut problems = |p: Problem| match &pb {
            Some(pb) => pb.suspend(|| print_problem(p)),
            None => print_problem(p),
        };
        let mut sink = Sink::new(&mut problems).with_progress(&tick);
        let out = if a.out.as_os_str() == "-" {
            TarOutput::Writer(std::io::stdout())
        } else {
            TarOutput::Path(&a.out)
        };
        let r = export::tar_out(fs.as_ref(), &a.dir, out, &opts, &mut sink);
        if let Some(pb) = &pb {
            pb.finish_and_clear();
        }
        r.with_context(|| {
            format!(
                "tar-out of {} failed; nothing was written to {}",
                a.dir,
                a.out.display()
            )
        })?
    };
    finish(summary, "tar-out")
}
