//! `cargo bench -p store`: committed `record_inbound` calls per second with 64 concurrent
//! callers, on PostgreSQL and SQLite, with group commit and with one INSERT per call.
//!
//! Every call is a new, random-looking `MessageSid` (like Twilio's) with a realistic ~600-byte
//! parameter set, and returns only after its row is committed (PostgreSQL `synchronous_commit`
//! as configured on the server; SQLite WAL with `synchronous=FULL`). Each configuration gets a fresh database, a warm-up,
//! then `BENCH_SECS` (default 5) of measurement, `BENCH_RUNS` (default 3) interleaved runs, the
//! median reported. `BENCH_ONLY=<substring>` runs a subset.
//! PostgreSQL is expected at 127.0.0.1:5432 (user postgres, db test); without it those rows are
//! skipped.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, Database};
use store::{BatchStatement, NewInbound, Recorded, Store, StoreOptions};

const CALLERS: usize = 64;
const PG_ADMIN: &str = "postgres://postgres@127.0.0.1:5432/test";

struct Config {
    name: &'static str,
    pg: bool,
    /// PostgreSQL over TLS (`sslmode=prefer`, the libpq default) instead of `sslmode=disable`.
    tls: bool,
    group_commit: bool,
    statement: BatchStatement,
    linger_us: u64,
    pool: Option<u32>,
    /// Group-commit writers (`None`: the store's default, 1).
    writers: Option<usize>,
    /// SIDs in insertion order instead of random: shows what random index inserts cost.
    sequential_sids: bool,
}

impl Config {
    const fn new(
        name: &'static str,
        pg: bool,
        group_commit: bool,
        statement: BatchStatement,
    ) -> Config {
        Config {
            name,
            pg,
            tls: false,
            group_commit,
            statement,
            linger_us: 0,
            pool: None,
            writers: None,
            sequential_sids: false,
        }
    }
}

struct Outcome {
    rate: f64,
    p50_ms: f64,
    p99_ms: f64,
    rows_per_batch: Option<f64>,
}

fn message(sid: &str) -> NewInbound {
    let body = "Hello, I need help with my order #1234, it has not arrived yet";
    let params = format!(
        concat!(
            r#"{{"SmsMessageSid":"{sid}","NumMedia":"0","ProfileName":"Ana Souza","MessageType":"text","#,
            r#""SmsSid":"{sid}","WaId":"15551234567","SmsStatus":"received","Body":"{body}","#,
            r#""To":"whatsapp:+14155238886","NumSegments":"1","ReferralNumMedia":"0","MessageSid":"{sid}","#,
            r#""AccountSid":"AC3f9a1c7e2b8d4f6a0c5e7b9d1f3a5c7e","From":"whatsapp:+15551234567","ApiVersion":"2010-04-01"}}"#
        ),
        sid = sid,
        body = body
    );
    NewInbound {
        message_sid: sid.to_owned(),
        account_sid: "AC3f9a1c7e2b8d4f6a0c5e7b9d1f3a5c7e".to_owned(),
        from: "whatsapp:+15551234567".to_owned(),
        to: "whatsapp:+14155238886".to_owned(),
        body: body.to_owned(),
        num_media: 0,
        profile_name: Some("Ana Souza".to_owned()),
        wa_id: Some("15551234567".to_owned()),
        params_json: params,
        idempotency_token: Some(format!("idem-{sid}")),
    }
}

/// splitmix64: spreads a counter over the key space the way Twilio's random hex SIDs are spread.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// `SM` + 32 hex digits: random-looking like Twilio's, or in insertion order when `sequential`.
fn sid(run_id: u64, n: u64, sequential: bool) -> String {
    if sequential {
        format!("SM{run_id:016x}{n:016x}")
    } else {
        format!("SM{:016x}{:016x}", mix(run_id ^ (n << 8)), mix(n))
    }
}

async fn run(store: &Store, run_id: u64, secs: f64, sequential: bool) -> (u64, Vec<Duration>) {
    let next = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..CALLERS {
        let store = store.clone();
        let stop = stop.clone();
        let done = done.clone();
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(100_000);
            while !stop.load(Ordering::Relaxed) {
                let sid = sid(run_id, next.fetch_add(1, Ordering::Relaxed), sequential);
                let t = Instant::now();
                match store.record_inbound(message(&sid)).await {
                    Ok(Recorded::New) => {
                        lat.push(t.elapsed());
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(Recorded::Duplicate) => panic!("unexpected duplicate {sid}"),
                    Err(e) => panic!("record_inbound failed: {e}"),
                }
            }
            lat
        }));
    }
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.expect("caller task"));
    }
    (done.load(Ordering::Relaxed), lat)
}

async fn measure(cfg: &Config, url: &str, secs: f64) -> Outcome {
    let store = Store::connect(
        url,
        StoreOptions {
            migrate: true,
            group_commit: cfg.group_commit,
            batch_statement: cfg.statement,
            max_connections: cfg.pool,
            batch_linger: Duration::from_micros(cfg.linger_us),
            writers: cfg.writers,
            ..Default::default()
        },
    )
    .await
    .expect("connect");
    // Warm-up: connections, prepared statements, caches.
    run(&store, 1, 1.0, cfg.sequential_sids).await;
    let before = store.stats();
    let started = Instant::now();
    let (n, mut lat) = run(&store, 2, secs, cfg.sequential_sids).await;
    let elapsed = started.elapsed().as_secs_f64();
    let after = store.stats();
    lat.sort();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    let batches = after.batches - before.batches;
    Outcome {
        rate: n as f64 / elapsed,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        rows_per_batch: (batches > 0).then(|| (after.rows - before.rows) as f64 / batches as f64),
    }
}

async fn pg_database(tls: bool) -> Option<(String, String)> {
    let admin = Database::connect(PG_ADMIN).await.ok()?;
    let name = format!(
        "store_bench_{}_{}",
        std::process::id(),
        Instant::now().elapsed().subsec_nanos()
    );
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .ok()?;
    let mode = if tls { "prefer" } else { "disable" };
    let url = format!("postgres://postgres@127.0.0.1:5432/{name}?sslmode={mode}");
    Some((name, url))
}

async fn drop_pg_database(name: &str) {
    if let Ok(admin) = Database::connect(PG_ADMIN).await {
        let _ = admin
            .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await;
    }
}

/// Median and p99 latency of write(8 KiB) + fdatasync in the temp directory: the floor of every
/// durable commit, and the number that moves most between machines and moments.
fn fsync_probe() -> String {
    use std::io::Write;
    let Ok(dir) = tempfile::tempdir() else {
        return "unknown".to_owned();
    };
    let Ok(mut f) = std::fs::File::create(dir.path().join("probe")) else {
        return "unknown".to_owned();
    };
    let block = [7u8; 8192];
    let mut lat = Vec::new();
    for _ in 0..100 {
        let t = Instant::now();
        if f.write_all(&block).and_then(|_| f.sync_data()).is_err() {
            return "unknown".to_owned();
        }
        lat.push(t.elapsed());
    }
    lat.sort();
    format!("median {:?}, p99 {:?}", lat[50], lat[98])
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing special: keep it quick.
    let quick = !std::env::args().any(|a| a == "--bench");
    let secs: f64 = std::env::var("BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if quick { 0.5 } else { 5.0 });
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let rounds: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if quick { 1 } else { 3 });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");

    use BatchStatement::{Auto, MultiRowValues, RowsInTransaction, Unnest};
    let configs = [
        Config::new(
            "PostgreSQL group commit (UNNEST, 1 writer: the default)",
            true,
            true,
            Auto,
        ),
        Config {
            writers: Some(2),
            ..Config::new(
                "PostgreSQL group commit (UNNEST, 2 writers)",
                true,
                true,
                Unnest,
            )
        },
        Config::new(
            "PostgreSQL group commit (multi-row VALUES)",
            true,
            true,
            MultiRowValues,
        ),
        Config {
            linger_us: 200,
            ..Config::new(
                "PostgreSQL group commit (UNNEST, linger 200us)",
                true,
                true,
                Unnest,
            )
        },
        Config {
            tls: true,
            ..Config::new(
                "PostgreSQL group commit (multi-row, over TLS)",
                true,
                true,
                MultiRowValues,
            )
        },
        Config {
            tls: true,
            ..Config::new(
                "PostgreSQL group commit (UNNEST, over TLS)",
                true,
                true,
                Unnest,
            )
        },
        Config {
            pool: Some(16),
            ..Config::new(
                "PostgreSQL one INSERT per call (pool 16)",
                true,
                false,
                Auto,
            )
        },
        Config::new(
            "SQLite group commit (multi-row VALUES)",
            false,
            true,
            MultiRowValues,
        ),
        Config::new(
            "SQLite group commit (rows in one transaction)",
            false,
            true,
            RowsInTransaction,
        ),
        Config {
            linger_us: 200,
            ..Config::new(
                "SQLite group commit (multi-row, linger 200us)",
                false,
                true,
                MultiRowValues,
            )
        },
        Config {
            sequential_sids: true,
            ..Config::new(
                "SQLite group commit (multi-row, sequential SIDs)",
                false,
                true,
                MultiRowValues,
            )
        },
        Config {
            pool: Some(4),
            ..Config::new("SQLite one INSERT per call (pool 4)", false, false, Auto)
        },
    ];

    println!(
        "fdatasync of an 8 KiB write on this disk right now: {}",
        fsync_probe()
    );
    println!(
        "record_inbound, {CALLERS} concurrent callers, {secs} s per configuration, committed rows only, median of {rounds} interleaved runs"
    );
    println!(
        "| {:<46} | {:>10} | {:>8} | {:>8} | {:>10} | all runs",
        "configuration", "inserts/s", "p50 ms", "p99 ms", "rows/batch"
    );
    println!(
        "|{:-<48}|{:->12}|{:->10}|{:->10}|{:->12}|----------|",
        "", "", "", "", ""
    );
    // Runs are interleaved (every configuration once, then again) so that a noisy moment on a
    // shared machine spreads over all configurations; the table shows each one's median run.
    let selected: Vec<&Config> = configs
        .iter()
        .filter(|c| only.is_empty() || c.name.contains(&only))
        .collect();
    let mut runs: Vec<Vec<Outcome>> = selected.iter().map(|_| Vec::new()).collect();
    for _ in 0..rounds {
        for (cfg, out) in selected.iter().zip(runs.iter_mut()) {
            let outcome = rt.block_on(async {
                if cfg.pg {
                    let (name, url) = pg_database(cfg.tls).await?;
                    let o = measure(cfg, &url, secs).await;
                    drop_pg_database(&name).await;
                    Some(o)
                } else {
                    let dir = tempfile::tempdir().expect("tempdir");
                    let url = format!(
                        "sqlite://{}?mode=rwc",
                        dir.path().join("bench.db").display()
                    );
                    Some(measure(cfg, &url, secs).await)
                }
            });
            out.extend(outcome);
        }
    }
    let mut results: Vec<(&str, f64)> = Vec::new();
    for (cfg, mut out) in selected.iter().zip(runs) {
        if out.is_empty() {
            println!(
                "| {:<46} | {:>10} | {:>8} | {:>8} | {:>10} |",
                cfg.name, "skipped", "", "", "(no PostgreSQL)"
            );
            continue;
        }
        out.sort_by(|a, b| a.rate.total_cmp(&b.rate));
        let all: Vec<String> = out.iter().map(|o| format!("{:.0}", o.rate)).collect();
        let o = &out[out.len() / 2];
        println!(
            "| {:<46} | {:>10.0} | {:>8.2} | {:>8.2} | {:>10} | {}",
            cfg.name,
            o.rate,
            o.p50_ms,
            o.p99_ms,
            o.rows_per_batch
                .map_or("-".to_owned(), |r| format!("{r:.1}")),
            all.join(" / ")
        );
        results.push((cfg.name, o.rate));
    }
    println!("fdatasync probe after the runs: {}", fsync_probe());
    let rate = |prefix: &str| {
        results
            .iter()
            .find(|(n, _)| n.starts_with(prefix))
            .map(|(_, r)| *r)
    };
    for (db, best, single) in [
        (
            "PostgreSQL",
            "PostgreSQL group commit (UNNEST, 1 writer",
            "PostgreSQL one INSERT",
        ),
        (
            "SQLite",
            "SQLite group commit (multi-row VALUES)",
            "SQLite one INSERT",
        ),
    ] {
        if let (Some(g), Some(s)) = (rate(best), rate(single)) {
            println!("{db}: group commit is {:.1}x one INSERT per call", g / s);
        }
    }
}
