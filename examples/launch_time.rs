//! Times new → add_drive_ro → launch → inspect_os → mount_ro → cat, in process, and prints
//! the median of N runs (the page cache is warm after the first).
//!
//!     cargo run --release --example launch_time -- fixtures/demo.qcow2 [RUNS]

use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let disk = args.next().unwrap_or_else(|| "fixtures/demo.qcow2".into());
    let runs: usize = args.next().map(|n| n.parse()).transpose()?.unwrap_or(21);
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs.max(1) {
        let t = Instant::now();
        let g = guestctl::Guestfs::new()?;
        g.add_drive_ro(&disk)?;
        g.launch()?;
        let roots = g.inspect_os()?;
        let root = roots.first().ok_or("no operating system")?;
        for (mp, dev) in g.inspect_get_mountpoints(root)? {
            g.mount_ro(&dev, &mp)?;
        }
        let text = g.cat("/etc/os-release")?;
        std::hint::black_box(text);
        times.push(t.elapsed());
    }
    times.sort();
    let median = times[times.len() / 2];
    println!(
        "launch+inspect+cat {disk}: median {:.2} ms over {} runs (min {:.2} ms, max {:.2} ms)",
        median.as_secs_f64() * 1e3,
        times.len(),
        times[0].as_secs_f64() * 1e3,
        times[times.len() - 1].as_secs_f64() * 1e3
    );
    Ok(())
}
