//! `guestctl info`.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use guestctl::{human_size as human, ImageInfo};

use super::ImageOpts;

#[derive(Args, Debug)]
pub struct InfoArgs {
    /// The image file.
    image: PathBuf,
    /// Print JSON (keys follow `qemu-img info --output=json`; the chain is nested under
    /// `backing-image`).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    open: ImageOpts,
}

pub fn run(a: InfoArgs) -> anyhow::Result<()> {
    let img = guestctl::open_image(&a.image, &a.open.open_options())?;
    let out = &mut std::io::stdout().lock();
    if a.json {
        writeln!(out, "{}", serde_json::to_string_pretty(img.info())?)?;
        return Ok(());
    }
    for (depth, i) in img.info().chain().into_iter().enumerate() {
        if depth > 0 {
            writeln!(out)?;
            writeln!(out, "backing file #{depth}:")?;
        }
        print_one(out, i)?;
    }
    Ok(())
}

fn print_one(out: &mut dyn Write, i: &ImageInfo) -> std::io::Result<()> {
    writeln!(out, "image: {}", i.filename)?;
    writeln!(out, "file format: {}", i.format)?;
    writeln!(
        out,
        "virtual size: {} ({} bytes)",
        human(i.virtual_size),
        i.virtual_size
    )?;
    writeln!(out, "disk size: {}", human(i.actual_size))?;
    if let Some(cs) = i.cluster_size {
        writeln!(out, "cluster size: {cs}")?;
    }
    if let Some(s) = &i.subformat {
        writeln!(out, "subformat: {s}")?;
    }
    if let Some(c) = &i.compression_type {
        writeln!(out, "compression type: {c}")?;
    }
    if let Some(b) = &i.backing_filename {
        writeln!(out, "backing file: {b}")?;
        if let Some(full) = &i.full_backing_filename {
            writeln!(out, "backing file (resolved): {full}")?;
        }
    }
    if let Some(f) = &i.backing_format {
        writeln!(out, "backing file format: {f}")?;
    }
    writeln!(out, "dirty: {}", i.dirty)?;
    writeln!(out, "corrupt: {}", i.corrupt)?;
    if let Some(fs) = &i.format_specific {
        writeln!(out, "format specific information:")?;
        for (k, v) in &fs.data {
            match v {
                serde_json::Value::String(s) => writeln!(out, "    {k}: {s}")?,
                other => writeln!(out, "    {k}: {other}")?,
            }
        }
    }
    Ok(())
}
