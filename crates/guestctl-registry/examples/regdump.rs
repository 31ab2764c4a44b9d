//! Prints every key and value of a hive: `cargo run --example regdump -- HIVE [-v]`.

use guestctl_registry::{walk, Hive, ValueType};

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next() else {
        eprintln!("usage: regdump HIVE [-v]");
        std::process::exit(2);
    };
    let verbose = args.next().is_some();
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("{path}: {e}");
            std::process::exit(1);
        }
    };
    let hive = match Hive::from_bytes(bytes) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("{path}: {e}");
            std::process::exit(1);
        }
    };
    println!(
        "dirty={} checksum_ok={} truncated={} bins={}",
        hive.dirty(),
        hive.checksum_ok(),
        hive.truncated(),
        hive.effective_bins_size()
    );
    let stats = walk(&hive, true, |p, _k, values| {
        if !verbose {
            return;
        }
        println!("[{p}]");
        for v in values {
            let shown = match v.value_type() {
                ValueType::Sz | ValueType::ExpandSz => format!("{:?}", v.as_string()),
                ValueType::MultiSz => format!("{:?}", v.as_multi_string()),
                ValueType::Dword | ValueType::DwordBigEndian | ValueType::Qword => {
                    format!("{:?}", v.as_u64())
                }
                _ => format!("{} bytes", v.data_len()),
            };
            println!("  {:?} type {} = {shown}", v.name(), v.data_type());
        }
    });
    match stats {
        Ok(s) => {
            println!(
                "keys={} values={} data={} errors={}",
                s.keys,
                s.values,
                s.data_bytes,
                s.errors.len()
            );
            for e in s.errors.iter().take(5) {
                println!("  error: {e}");
            }
        }
        Err(e) => println!("walk failed: {e}"),
    }
}
