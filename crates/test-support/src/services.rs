//! Real services for tests: a fresh PostgreSQL database or SQLite file per test, a unique Redis
//! key prefix, and the rule that a missing service skips the test locally but fails it when
//! `CI=true` (so CI can never pass by skipping silently).

use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sea_orm::{ConnectionTrait, Database};

/// Admin connection used to create and drop test databases.
pub const PG_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
/// Base URL of test databases (`{PG_BASE}/{name}`).
pub const PG_BASE: &str = "postgres://postgres@127.0.0.1:5432";
/// PostgreSQL's address on this machine.
pub const PG_ADDR: &str = "127.0.0.1:5432";
/// Redis on this machine.
pub const REDIS_URL: &str = "redis://127.0.0.1:6379";
/// Redis's address on this machine.
pub const REDIS_ADDR: &str = "127.0.0.1:6379";

/// Runs `sql` on the database at `database_url` (one connection, closed after).
pub async fn execute_sql(database_url: &str, sql: &str) {
    let db = Database::connect(database_url)
        .await
        .unwrap_or_else(|e| panic!("connect to {database_url}: {e}"));
    db.execute_unprepared(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    db.close().await.ok();
}

/// A name no other test (or concurrent test run) uses: `prefix` + pid + time + counter.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!(
        "{prefix}{}_{}_{}",
        std::process::id(),
        nanos % 1_000_000_000_000,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A unique, well-formed Twilio SID with this two-letter prefix (`SM`, `MM`, …).
pub fn sid(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!(
        "{prefix}{:08x}{:016x}{:08x}",
        std::process::id(),
        nanos as u64,
        n as u32
    )
}

fn reachable(addr: &str) -> bool {
    let Ok(addr) = addr.parse::<SocketAddr>() else {
        return false;
    };
    TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok()
}

/// True when `service` answers at `addr`. Otherwise panics under `CI=true`, or prints why the
/// test is skipped and returns false.
pub fn require(service: &str, addr: &str) -> bool {
    if reachable(addr) {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{service} at {addr} is required when CI=true but is not reachable");
    }
    eprintln!(
        "skipping: {service} at {addr} is not reachable (set CI=true to make this a failure)"
    );
    false
}

/// True when Redis is up (see [`require`]).
pub fn require_redis() -> bool {
    require("Redis", REDIS_ADDR)
}

/// A database that lives as long as this value (PostgreSQL databases are dropped on drop).
#[derive(Debug)]
pub enum TestDb {
    /// A fresh database on the local PostgreSQL.
    Postgres {
        /// Database name.
        name: String,
    },
    /// A fresh SQLite file in a temporary directory.
    Sqlite {
        /// The directory holding `webhook.db`.
        dir: tempfile::TempDir,
    },
}

impl TestDb {
    /// A fresh PostgreSQL database, or `None` when PostgreSQL is missing (local runs only).
    pub async fn postgres() -> Option<TestDb> {
        if !require("PostgreSQL", PG_ADDR) {
            return None;
        }
        let name = unique("wa_test_");
        let admin = Database::connect(PG_ADMIN_URL)
            .await
            .expect("connect to PostgreSQL as admin");
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create test database");
        admin.close().await.ok();
        Some(TestDb::Postgres { name })
    }

    /// A fresh SQLite file in a temporary directory.
    pub fn sqlite() -> TestDb {
        TestDb::Sqlite {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    /// The `DATABASE_URL` of this database.
    pub fn url(&self) -> String {
        match self {
            TestDb::Postgres { name } => format!("{PG_BASE}/{name}"),
            TestDb::Sqlite { dir } => format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("webhook.db").display()
            ),
        }
    }

    /// Which backend this is, for test names and messages.
    pub fn kind(&self) -> &'static str {
        match self {
            TestDb::Postgres { .. } => "postgres",
            TestDb::Sqlite { .. } => "sqlite",
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let TestDb::Postgres { name } = self else {
            return;
        };
        let name = name.clone();
        // Drop may run inside a test's runtime: do the async cleanup on a thread of its own.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok(admin) = Database::connect(PG_ADMIN_URL).await {
                    let _ = admin
                        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                    let _ = admin.close().await;
                }
            });
        })
        .join();
    }
}

/// A `redis-server` of its own that speaks only TLS, on a free port, with the self-signed
/// certificate in `crates/test-support/certs/` (trusted by nothing). Stopped when dropped.
#[derive(Debug)]
pub struct TlsRedis {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl TlsRedis {
    /// Starts it, or returns `None` when `redis-server` is not installed (local runs only:
    /// under `CI=true` that panics, as [`require`] does).
    pub fn start() -> Option<TlsRedis> {
        const CERT: &str = include_str!("../certs/redis-test.crt");
        const KEY: &str = include_str!("../certs/redis-test.key");
        let dir = tempfile::tempdir().expect("tempdir");
        let (cert, key) = (dir.path().join("redis.crt"), dir.path().join("redis.key"));
        std::fs::write(&cert, CERT).expect("write the test certificate");
        std::fs::write(&key, KEY).expect("write the test key");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let spawned = std::process::Command::new("redis-server")
            .args(["--port", "0", "--bind", "127.0.0.1", "--tls-port"])
            .arg(port.to_string())
            .arg("--tls-cert-file")
            .arg(&cert)
            .arg("--tls-key-file")
            .arg(&key)
            .args([
                "--tls-auth-clients",
                "no",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
        let child = match spawned {
            Ok(c) => c,
            Err(e) => {
                if std::env::var("CI").is_ok_and(|v| v == "true") {
                    panic!("redis-server is required when CI=true but could not start: {e}");
                }
                eprintln!("skipping: redis-server could not start ({e})");
                return None;
            }
        };
        let redis = TlsRedis {
            child,
            port,
            _dir: dir,
        };
        let addr = format!("127.0.0.1:{port}");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !reachable(&addr) {
            assert!(
                std::time::Instant::now() < deadline,
                "redis-server with TLS did not listen on {addr} within 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(redis)
    }

    /// The TLS port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `rediss://localhost:<port>` followed by `suffix` (e.g. `/#insecure`).
    pub fn url(&self, suffix: &str) -> String {
        format!("rediss://localhost:{}{suffix}", self.port)
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
