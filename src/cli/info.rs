//! `guestctl info`.

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
    if a.json {
        println!("{}", serde_json::to_string_pretty(img.info())?);
        return Ok(());
    }
    for (depth, i) in img.info().chain().into_iter().enumerate() {
        if depth > 0 {
            println!();
            println!("backing file #{depth}:");
        }
        print_one(i);
    }
    Ok(())
}

fn print_one(i: &ImageInfo) {
    println!("image: {}", i.filename);
    println!("file format: {}", i.format);
    println!(
        "virtual size: {} ({} bytes)",
        human(i.virtual_size),
        i.virtual_size
    );
    println!("disk size: {}", human(i.actual_size));
    if let Some(cs) = i.cluster_size {
        println!("cluster size: {cs}");
    }
    if let Some(s) = &i.subformat {
        println!("subformat: {s}");
    }
    if let Some(c) = &i.compression_type {
        println!("compression type: {c}");
    }
    if let Some(b) = &i.backing_filename {
        println!("backing file: {b}");
        if let Some(full) = &i.full_backing_filename {
            println!("backing file (resolved): {full}");
        }
    }
    if let Some(f) = &i.backing_format {
        println!("backing file format: {f}");
    }
    println!("dirty: {}", i.dirty);
    println!("corrupt: {}", i.corrupt);
    if let Some(fs) = &i.format_specific {
        println!("format specific information:");
        for (k, v) in &fs.data {
            match v {
                serde_json::Value::String(s) => println!("    {k}: {s}"),
                other => println!("    {k}: {other}"),
            }
        }
    }
}
