//! `bench-fsync-probe`: how long a durable commit's flush takes on this disk, right now.
//!
//! Every acknowledged webhook waits for one `fdatasync` (PostgreSQL's WAL flush or SQLite's WAL
//! commit), so the disk's flush latency, and above all its tail, bounds the p99 of the durable
//! configurations. On a machine shared with other work (builds writing gigabytes) the tail moves a
//! lot; `bench/load.sh` runs this before each database configuration and keeps the line next to
//! the result.
//!
//! Usage: `bench-fsync-probe DIR [COUNT]`: writes 8 KiB and calls `fdatasync` COUNT times
//! (default 1000) in a temporary file in DIR, then prints
//! `BENCH_FSYNC n=… p50_us=… p99_us=… p999_us=… max_us=…`.

use anyhow::Context;
use std::io::{Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("❌ bench-fsync-probe: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(
        args.next()
            .context("usage: bench-fsync-probe DIR [COUNT]")?,
    );
    let count: usize = match args.next() {
        Some(n) => n.parse().context("COUNT: not a number")?,
        None => 1000,
    };
    let path = dir.join(format!(".bench-fsync-probe-{}", std::process::id()));
    let result = probe(&path, count.max(1));
    let _ = std::fs::remove_file(&path);
    let mut lat = result?;
    lat.sort_unstable();
    let at = |q: f64| lat[((lat.len() as f64 * q) as usize).min(lat.len() - 1)];
    println!(
        "BENCH_FSYNC n={} p50_us={} p99_us={} p999_us={} max_us={}",
        lat.len(),
        at(0.5),
        at(0.99),
        at(0.999),
        lat[lat.len() - 1]
    );
    Ok(())
}

fn probe(path: &std::path::Path, count: usize) -> anyhow::Result<Vec<u64>> {
    let mut file = std::fs::File::create(path)
        .with_context(|| format!("could not create {}", path.display()))?;
    let block = [0x5au8; 8192];
    let mut lat = Vec::with_capacity(count);
    for i in 0..count {
        file.seek(SeekFrom::Start((i % 128) as u64 * 8192))?;
        file.write_all(&block)?;
        let t = Instant::now();
        file.sync_data().context("fdatasync failed")?;
        lat.push(u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX));
    }
    Ok(lat)
}
