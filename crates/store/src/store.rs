//! [`Store`]: the connection pool, migrations, health and the group-commit writer.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use migrations::{Migrator, MigratorTrait};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, TransactionTrait,
};

use crate::group_commit::{GroupCommit, Inserter, Strategy};
use crate::{BatchStatement, StoreError, StoreOptions};

/// Key of the PostgreSQL advisory lock held while migrations run, so that two instances
/// starting together apply them once.
const MIGRATION_LOCK_KEY: i64 = 0x7768_6174_7361_7070; // "whatsapp"

/// Durable storage of messages on PostgreSQL (`postgres://…`) or SQLite (`sqlite://…`).
/// Cheap to clone; clones share the pool and the group-commit writer.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    db: DatabaseConnection,
    backend: DbBackend,
    inserter: Arc<Inserter>,
    group_commit: Option<GroupCommit>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.inner.backend)
            .field("group_commit", &self.inner.group_commit.is_some())
            .finish_non_exhaustive()
    }
}

/// Group-commit counters since the store was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Batches written (a batch is one transaction).
    pub batches: u64,
    /// Rows handed to those batches.
    pub rows: u64,
    /// Batches that failed as a whole and were retried row by row.
    pub fallbacks: u64,
}

/// Which database a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Backend {
    /// PostgreSQL.
    Postgres,
    /// SQLite.
    Sqlite,
}

impl Store {
    /// Opens a pool to `database_url` (`postgres://…` or `sqlite://…`), applies pending
    /// migrations when `opts.migrate` is set, and starts the group-commit writer.
    ///
    /// SQLite runs in WAL mode with `synchronous=FULL` (a commit survives power loss) and a busy
    /// timeout; the parent directory of the database file is created, so the default
    /// `sqlite://data/webhook.db?mode=rwc` works in a fresh checkout.
    ///
    /// Errors: [`StoreError::InvalidInput`] for an unsupported URL or option,
    /// [`StoreError::Unavailable`] when the database cannot be reached.
    pub async fn connect(database_url: &str, opts: StoreOptions) -> Result<Store, StoreError> {
        let backend = if database_url.starts_with("postgres://")
            || database_url.starts_with("postgresql://")
        {
            DbBackend::Postgres
        } else if database_url.starts_with("sqlite:") {
            DbBackend::Sqlite
        } else {
            return Err(StoreError::InvalidInput(
                "DATABASE_URL must start with postgres://, postgresql:// or sqlite://".to_owned(),
            ));
        };
        let strategy = match (opts.batch_statement, backend) {
            (BatchStatement::Unnest, DbBackend::Postgres) => Strategy::Unnest,
            (BatchStatement::Unnest, _) => {
                return Err(StoreError::InvalidInput(
                    "BatchStatement::Unnest needs PostgreSQL".to_owned(),
                ));
            }
            (BatchStatement::Auto, DbBackend::Postgres) => Strategy::Unnest,
            (BatchStatement::RowsInTransaction, _) => Strategy::RowsInTransaction,
            (BatchStatement::Auto | BatchStatement::MultiRowValues, _) => Strategy::MultiRowValues,
        };

        let mut co = ConnectOptions::new(database_url.to_owned());
        co.sqlx_logging(false)
            .acquire_timeout(opts.acquire_timeout)
            // A ping on every checkout is one more round trip per group commit; ping only
            // connections idle long enough to have been dropped by the server or a proxy.
            .test_before_acquire_if_idle_for(Duration::from_secs(1));
        let in_memory = backend == DbBackend::Sqlite && database_url.contains(":memory:");
        let max = opts.max_connections.unwrap_or(match backend {
            DbBackend::Postgres => 10,
            _ if in_memory => 1,
            _ => 4,
        });
        co.max_connections(if in_memory { 1 } else { max.max(1) });
        if in_memory {
            // The database lives in its one connection: sqlx's defaults (closed after 10 min
            // idle, replaced after 30 min) would silently start an empty one, without tables.
            co.min_connections(1)
                .idle_timeout(None::<Duration>)
                .max_lifetime(None::<Duration>);
        }
        if backend == DbBackend::Sqlite {
            if !in_memory {
                create_parent_dir(database_url)?;
            }
            let busy = opts.sqlite_busy_timeout;
            co.map_sqlx_sqlite_opts(move |o| {
                o.pragma("journal_mode", "WAL")
                    .pragma("synchronous", "FULL")
                    // A checkpoint runs inline in the committing writer and writes and fsyncs
                    // the database file; every 10,000 pages (~40 MB of WAL) instead of SQLite's
                    // 1,000 measured about +25% inserts/s (random SIDs) for a higher p99.
                    .pragma("wal_autocheckpoint", "10000")
                    .busy_timeout(busy)
                    .foreign_keys(true)
            });
        }
        let db = Database::connect(co)
            .await
            .map_err(|e| StoreError::from_db_at_start(backend, "connecting to the database", &e))?;

        let inserter = Arc::new(Inserter::new(db.clone(), strategy));
        let group_commit = opts.group_commit.then(|| {
            let writers = opts.writers.unwrap_or(1);
            GroupCommit::start(inserter.clone(), opts.batch_max, opts.batch_linger, writers)
        });
        let store = Store {
            inner: Arc::new(Inner {
                db,
                backend,
                inserter,
                group_commit,
            }),
        };
        if opts.migrate {
            store.run_migrations().await?;
        }
        Ok(store)
    }

    /// Applies pending migrations. On PostgreSQL this holds an advisory lock, so instances that
    /// start together wait for each other instead of racing.
    pub async fn run_migrations(&self) -> Result<(), StoreError> {
        let backend = self.backend();
        let err =
            |e: sea_orm::DbErr| StoreError::from_db_at_start(backend, "applying migrations", &e);
        if backend == DbBackend::Postgres {
            let txn = self.db().begin().await.map_err(err)?;
            txn.execute_unprepared(&format!(
                "SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})"
            ))
            .await
            .map_err(err)?;
            Migrator::up(&txn, None).await.map_err(err)?;
            txn.commit().await.map_err(err)?;
        } else {
            Migrator::up(self.db(), None).await.map_err(err)?;
        }
        Ok(())
    }

    /// Names of migrations not yet applied to this database (empty when up to date). Read-only:
    /// it does not create the migrations table.
    pub async fn pending_migrations(&self) -> Result<Vec<String>, StoreError> {
        let pending = Migrator::get_pending_migrations_read_only(self.db())
            .await
            .map_err(|e| StoreError::from_db(self.backend(), "reading applied migrations", &e))?;
        Ok(pending.iter().map(|m| m.name().to_owned()).collect())
    }

    /// Round trip to the database (for `/readyz`).
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.db()
            .ping()
            .await
            .map_err(|e| StoreError::from_db(self.backend(), "pinging the database", &e))
    }

    /// Closes the pool. Later calls on any clone fail with [`StoreError::Unavailable`].
    pub async fn close(&self) {
        if let Err(e) = self.db().close_by_ref().await {
            tracing::warn!(error = %e, "closing the database pool");
        }
    }

    /// The database kind.
    pub fn backend_kind(&self) -> Backend {
        match self.inner.backend {
            DbBackend::Postgres => Backend::Postgres,
            _ => Backend::Sqlite,
        }
    }

    /// Group-commit counters (rows per batch = `rows / batches`).
    pub fn stats(&self) -> StoreStats {
        let c = &self.inner.inserter.counters;
        StoreStats {
            batches: c.batches.load(Ordering::Relaxed),
            rows: c.rows.load(Ordering::Relaxed),
            fallbacks: c.fallbacks.load(Ordering::Relaxed),
        }
    }

    /// The underlying sea-orm connection, for queries this crate does not offer.
    pub fn connection(&self) -> &DatabaseConnection {
        &self.inner.db
    }

    pub(crate) fn db(&self) -> &DatabaseConnection {
        &self.inner.db
    }

    pub(crate) fn backend(&self) -> DbBackend {
        self.inner.backend
    }

    /// Taken around every write on SQLite, so writers wait in order instead of in SQLite's busy
    /// handler; `None` (no waiting) on PostgreSQL.
    pub(crate) async fn write_guard(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        self.inner.inserter.write_guard().await
    }

    /// Runs `work` in a write transaction, committed when it succeeds and rolled back before
    /// its error returns otherwise (see `Inserter::write_txn`); take [`Store::write_guard`]
    /// first.
    pub(crate) async fn write_txn<T>(
        &self,
        begin: &str,
        commit: &str,
        work: impl AsyncFnOnce(&sea_orm::DatabaseTransaction) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.inner.inserter.write_txn(begin, commit, work).await
    }

    pub(crate) fn inserter(&self) -> &Inserter {
        &self.inner.inserter
    }

    pub(crate) fn group_commit(&self) -> Option<&GroupCommit> {
        self.inner.group_commit.as_ref()
    }
}

/// What a `sqlite:` `DATABASE_URL` names, read as the store opens it (shared with
/// `validate-webhook`'s database check, so the two agree).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqliteTarget<'a> {
    /// `sqlite::memory:`, `?mode=memory` or no path: nothing on disk.
    Memory,
    /// A file (relative paths from the working directory); `creates` when `mode=rwc` lets
    /// SQLite create it.
    File {
        /// The path as written in the URL.
        path: &'a str,
        /// `mode=rwc` is set.
        creates: bool,
    },
}

/// Reads a `sqlite:` URL (`sqlite://data/webhook.db?mode=rwc`, `sqlite:file.db`,
/// `sqlite::memory:`); `None` for any other database.
///
/// ```
/// use store::{SqliteTarget, sqlite_target};
/// assert_eq!(
///     sqlite_target("sqlite://data/webhook.db?mode=rwc"),
///     Some(SqliteTarget::File { path: "data/webhook.db", creates: true })
/// );
/// assert_eq!(sqlite_target("sqlite::memory:"), Some(SqliteTarget::Memory));
/// assert_eq!(sqlite_target("postgres://db/x"), None);
/// ```
pub fn sqlite_target(database_url: &str) -> Option<SqliteTarget<'_>> {
    let rest = database_url.strip_prefix("sqlite:")?;
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path.is_empty() || path == ":memory:" || query.contains("mode=memory") {
        return Some(SqliteTarget::Memory);
    }
    Some(SqliteTarget::File {
        path,
        creates: query.split('&').any(|kv| kv == "mode=rwc"),
    })
}

/// `sqlite://data/webhook.db?mode=rwc` → creates `data/`. Without `mode=rwc` SQLite does not
/// create the file: a missing one is a configuration mistake, said now with its fix rather
/// than retried forever as "unable to open database file".
fn create_parent_dir(database_url: &str) -> Result<(), StoreError> {
    let Some(SqliteTarget::File { path, creates }) = sqlite_target(database_url) else {
        return Ok(());
    };
    if !creates && !Path::new(path).exists() {
        return Err(StoreError::InvalidInput(format!(
            "DATABASE_URL: the SQLite file {path} does not exist and the URL lacks ?mode=rwc, \
             so it is not created; fix: append ?mode=rwc to create it, or point DATABASE_URL at \
             the existing file"
        )));
    }
    if let Some(parent) = Path::new(path).parent()
        && !parent.as_os_str().is_empty()
        && !parent.exists()
    {
        std::fs::create_dir_all(parent).map_err(|e| {
            StoreError::Unavailable(format!(
                "creating the directory {} for the SQLite database: {e}",
                parent.display()
            ))
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_file_without_mode_rwc_is_a_configuration_error() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("missing.db");
        let err = create_parent_dir(&format!("sqlite://{}", db.display())).unwrap_err();
        assert!(matches!(err, StoreError::InvalidInput(_)), "{err:?}");
        assert!(err.to_string().contains("?mode=rwc"), "{err}");
        create_parent_dir(&format!("sqlite://{}?mode=rwc", db.display())).unwrap();
        std::fs::write(&db, b"").unwrap();
        create_parent_dir(&format!("sqlite:{}", db.display())).unwrap();
    }

    #[test]
    fn parent_dir_of_the_default_url_is_created() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("nested/deeper/webhook.db");
        let url = format!("sqlite://{}?mode=rwc", db.display());
        create_parent_dir(&url).unwrap();
        assert!(dir.path().join("nested/deeper").is_dir());
    }
}
