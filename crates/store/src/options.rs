//! Connection and group-commit settings for [`Store::connect`](crate::Store::connect).

use std::time::Duration;

/// How [`Store::connect`](crate::Store::connect) sets up the database and the group-commit writer.
///
/// Build it with struct update syntax so new fields keep old code compiling:
///
/// ```
/// let opts = store::StoreOptions { migrate: true, batch_max: 128, ..Default::default() };
/// assert!(opts.group_commit);
/// ```
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Apply pending migrations while connecting (the server does; `validate-webhook` does not).
    pub migrate: bool,
    /// Group commit: concurrent `record_inbound` calls share one transaction (default). When
    /// false every call runs its own INSERT, which is only useful to measure the difference.
    pub group_commit: bool,
    /// Most rows one group commit writes (`STORE_BATCH_MAX`, default 256, at most 1024).
    pub batch_max: usize,
    /// How long the writer waits for more rows after the queue ran dry, when the batch is not
    /// full (`STORE_BATCH_LINGER_US`, default 0: commit what is there at once).
    pub batch_linger: Duration,
    /// Group-commit writers working in parallel (each commits its own batch). `None`: 1. A
    /// second PostgreSQL writer sends a batch while the first waits for its fsync, but each then
    /// commits half as many rows and PostgreSQL spends more CPU per row: through HTTP, with the
    /// load on the same two cores, one writer acknowledged 1.07× as many webhooks per second
    /// (`bench/README.md`). SQLite has one writer anyway.
    pub writers: Option<usize>,
    /// Which statement writes a batch; see [`BatchStatement`].
    pub batch_statement: BatchStatement,
    /// Pool size. `None`: 10 for PostgreSQL, 4 for SQLite files, 1 for `sqlite::memory:`.
    pub max_connections: Option<u32>,
    /// How long an operation waits for a pooled connection (or for a new one while the database
    /// is unreachable) before failing with [`StoreError::Unavailable`](crate::StoreError::Unavailable).
    /// Keep it well under Twilio's 15 s webhook budget.
    pub acquire_timeout: Duration,
    /// SQLite only: how long a writer waits for another connection's write lock.
    pub sqlite_busy_timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            migrate: false,
            group_commit: true,
            batch_max: 256,
            batch_linger: Duration::ZERO,
            writers: None,
            batch_statement: BatchStatement::default(),
            max_connections: None,
            acquire_timeout: Duration::from_secs(5),
            sqlite_busy_timeout: Duration::from_secs(5),
        }
    }
}

/// The statement a group commit writes its batch with. Every choice is one transaction per
/// batch; they differ in how the rows travel. The crate README has the measurements.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum BatchStatement {
    /// The fastest measured through the server: [`Unnest`](Self::Unnest) on PostgreSQL,
    /// [`MultiRowValues`](Self::MultiRowValues) on SQLite.
    #[default]
    Auto,
    /// PostgreSQL only: `INSERT … SELECT … FROM UNNEST($1::text[], …) ON CONFLICT DO NOTHING
    /// RETURNING message_sid`. One statement text for every batch size, prepared once per
    /// connection, and no padding (the design of the feasibility study). With one writer's
    /// batches of ~30 rows it acknowledged 1.08× as many webhooks per second as multi-row VALUES
    /// through the server, and PostgreSQL spent less CPU per row.
    Unnest,
    /// `INSERT … VALUES (…), (…), … ON CONFLICT DO NOTHING`, with `RETURNING message_sid` on
    /// PostgreSQL; on SQLite the new rows are told apart by rowid. The batch is padded to a power
    /// of two rows by repeating its last row (which the conflict clause skips), so at most 11
    /// statement texts are ever prepared.
    MultiRowValues,
    /// `BEGIN IMMEDIATE`, one single-row `INSERT` per row, `COMMIT`.
    RowsInTransaction,
}
