//! Group commit for `record_inbound`: one transaction (one WAL flush, one fsync) serves every
//! webhook that arrived while the previous one was committing.
//!
//! Callers send their row with a oneshot over an mpsc channel. ONE writer task takes whatever is
//! queued (up to `batch_max`, optionally lingering a little for more), writes it with one
//! statement, then answers each caller New or Duplicate. A caller therefore returns only after
//! its own row is committed. Measurements behind this design: `throughput-feasibility.md`.
//!
//! Failure rules:
//! - A batch that fails for a reason other than "database unavailable" is retried row by row,
//!   so one bad row (one the database refuses: a rule or trigger of its own) fails only its own
//!   caller. (A NUL, which PostgreSQL text cannot hold, is replaced before the row gets here.)
//! - The writer never exits on an error; a panic inside it is logged and the writer restarts.
//!   Callers whose rows were in flight get [`StoreError::Bug`] instead of hanging.
//! - A caller that goes away (client disconnected) does not stop the commit; its answer is
//!   dropped.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::ArrayType;
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, SqliteTransactionMode,
    TransactionOptions, TransactionTrait, Value,
};
use tokio::sync::{Mutex, mpsc, oneshot};

use crate::sql::{self, opt_text, text, ts};
use crate::{NewInbound, Recorded, StoreError};

/// The columns every insert writes, in placeholder order ($1..$11); `state`, `attempts` and
/// `updated_at` are filled from constants and $11.
const COLUMNS: &str = "message_sid, account_sid, from_addr, to_addr, body, num_media, \
    profile_name, wa_id, params, idempotency_token, received_at, state, attempts, updated_at";
const PARAMS_PER_ROW: usize = 11;

/// How long [`Inserter::write_txn`] waits for the rollback of a failed transaction.
const ROLLBACK_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest a webhook waits for its row's commit (Twilio waits 15 s for the whole answer):
/// after it, the caller answers 503 and the writer moves on.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest batch ([`StoreOptions::batch_max`](crate::StoreOptions::batch_max) is capped at
/// it): keeps a multi-row statement under SQLite's 32,766 bound parameters.
pub const MAX_BATCH: usize = 1024;

/// How a batch is written. Chosen per backend at connect; see `BatchStatement`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Strategy {
    /// PostgreSQL: `INSERT … SELECT … FROM UNNEST(arrays)` — one prepared statement for all sizes.
    Unnest,
    /// `INSERT … VALUES (…),(…)` padded to a power of two rows (repeating the last row, which
    /// `ON CONFLICT DO NOTHING` skips), so at most 11 statement texts are ever prepared.
    MultiRowValues,
    /// `BEGIN IMMEDIATE`, one single-row INSERT per row, `COMMIT`.
    RowsInTransaction,
}

/// One inbound message on its way to the table.
#[derive(Debug)]
pub(crate) struct Row {
    pub(crate) msg: NewInbound,
    pub(crate) received_at: DateTime<Utc>,
}

impl Row {
    pub(crate) fn new(msg: NewInbound) -> Row {
        Row {
            msg: msg.normalized(),
            received_at: sql::now(),
        }
    }

    fn push_values(&self, out: &mut Vec<Value>) {
        let m = &self.msg;
        out.push(text(&m.message_sid));
        out.push(text(&m.account_sid));
        out.push(text(&m.from));
        out.push(text(&m.to));
        out.push(text(&m.body));
        out.push(Value::Int(Some(m.num_media)));
        out.push(opt_text(m.profile_name.as_deref()));
        out.push(opt_text(m.wa_id.as_deref()));
        out.push(text(&m.params_json));
        out.push(opt_text(m.idempotency_token.as_deref()));
        out.push(ts(self.received_at));
    }
}

/// Counters for operators and the benchmark (rows per commit shows whether grouping happens).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) batches: AtomicU64,
    pub(crate) rows: AtomicU64,
    pub(crate) fallbacks: AtomicU64,
}

/// Writes rows; shared by the group-commit writer and the one-INSERT-per-call mode.
pub(crate) struct Inserter {
    db: DatabaseConnection,
    backend: DbBackend,
    strategy: Strategy,
    single_sql: String,
    unnest_sql: String,
    values_sql: StdMutex<HashMap<usize, Arc<str>>>,
    /// SQLite allows one writer at a time; every write of this store takes this lock first, so
    /// writers queue here instead of sleeping in SQLite's busy handler (steps of up to 100 ms).
    /// `None` on PostgreSQL.
    write_lock: Option<Mutex<()>>,
    pub(crate) counters: Counters,
}

impl Inserter {
    pub(crate) fn new(db: DatabaseConnection, strategy: Strategy) -> Inserter {
        let backend = db.get_database_backend();
        let single_sql = sql::for_backend(
            backend,
            &format!(
                "INSERT INTO inbound_messages ({COLUMNS}) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'received', 0, $11) \
                 ON CONFLICT (message_sid) DO NOTHING"
            ),
        );
        // NULLs travel as '' because sea-query binds text[] without NULL elements; rows were
        // normalized so that '' never means anything else in these three columns.
        let unnest_sql = format!(
            "INSERT INTO inbound_messages ({COLUMNS}) \
             SELECT u.s, u.a, u.f, u.t, u.b, u.n, NULLIF(u.p, ''), NULLIF(u.w, ''), u.j, \
                    NULLIF(u.k, ''), u.r, 'received', 0, u.r \
             FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], \
                         $6::int4[], $7::text[], $8::text[], $9::text[], $10::text[], \
                         $11::timestamptz[]) AS u(s, a, f, t, b, n, p, w, j, k, r) \
             ON CONFLICT (message_sid) DO NOTHING \
             RETURNING message_sid"
        );
        Inserter {
            db,
            backend,
            strategy,
            single_sql,
            unnest_sql,
            values_sql: StdMutex::new(HashMap::new()),
            write_lock: (backend == DbBackend::Sqlite).then(|| Mutex::new(())),
            counters: Counters::default(),
        }
    }

    /// Serialises writers on SQLite (see `write_lock`); a no-op on PostgreSQL.
    pub(crate) async fn write_guard(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match &self.write_lock {
            Some(lock) => Some(lock.lock().await),
            None => None,
        }
    }

    /// Runs `work` in a write transaction (`BEGIN IMMEDIATE` on SQLite, so it never has to
    /// upgrade a read lock) and commits it when `work` succeeds; `begin` and `commit` name the
    /// steps in errors. Take [`Inserter::write_guard`] first.
    ///
    /// When `work` fails the transaction is rolled back before the error is returned. Dropping
    /// it would leave the rollback to a background task (the pool's return of the connection,
    /// or the SQLite worker's queue) that runs after the error is returned: meanwhile its row
    /// locks stay (a concurrent `FOR UPDATE SKIP LOCKED` skips those rows) and, on SQLite, its
    /// write lock outlives the write guard.
    pub(crate) async fn write_txn<T>(
        &self,
        begin: &str,
        commit: &str,
        work: impl AsyncFnOnce(&DatabaseTransaction) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let txn = self
            .db
            .begin_with_options(TransactionOptions {
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                ..Default::default()
            })
            .await
            .map_err(|e| self.err(begin, &e))?;
        match work(&txn).await {
            Ok(value) => {
                txn.commit().await.map_err(|e| self.err(commit, &e))?;
                Ok(value)
            }
            Err(e) => {
                // Bounded: a connection that stopped answering must not hold the error back
                // (dropping the transaction then leaves the rollback to the pool, as before).
                match tokio::time::timeout(ROLLBACK_TIMEOUT, txn.rollback()).await {
                    Ok(Ok(())) => {}
                    Ok(Err(rollback)) => {
                        tracing::debug!(error = %rollback, "rolling back a failed write transaction");
                    }
                    Err(_) => tracing::debug!("rolling back a failed write transaction timed out"),
                }
                Err(e)
            }
        }
    }

    fn err(&self, context: &str, e: &sea_orm::DbErr) -> StoreError {
        StoreError::from_db(self.backend, context, e)
    }

    /// One row, one autocommit statement.
    pub(crate) async fn insert_one(&self, row: &Row) -> Result<Recorded, StoreError> {
        let _write = self.write_guard().await;
        let mut values = Vec::with_capacity(PARAMS_PER_ROW);
        row.push_values(&mut values);
        let stmt =
            sea_orm::Statement::from_sql_and_values(self.backend, self.single_sql.as_str(), values);
        let res = self
            .db
            .execute_raw(stmt)
            .await
            .map_err(|e| self.err("inserting an inbound message", &e))?;
        Ok(if res.rows_affected() == 1 {
            Recorded::New
        } else {
            Recorded::Duplicate
        })
    }

    /// Writes a batch; every row gets its own outcome.
    pub(crate) async fn write(&self, rows: &[Row]) -> Vec<Result<Recorded, StoreError>> {
        // A SID twice in one batch: write it once, the later copies are duplicates of it.
        let mut seen: HashSet<&str> = HashSet::with_capacity(rows.len());
        let is_copy: Vec<bool> = rows
            .iter()
            .map(|r| !seen.insert(r.msg.message_sid.as_str()))
            .collect();
        let mut unique: Vec<&Row> = rows
            .iter()
            .zip(&is_copy)
            .filter(|(_, copy)| !**copy)
            .map(|(r, _)| r)
            .collect();
        // Parallel writers insert in SID order, so two batches holding the same SIDs (duplicate
        // deliveries) wait for each other instead of deadlocking.
        unique.sort_unstable_by(|a, b| a.msg.message_sid.cmp(&b.msg.message_sid));
        let index_of: HashMap<&str, usize> = unique
            .iter()
            .enumerate()
            .map(|(i, r)| (r.msg.message_sid.as_str(), i))
            .collect();

        self.counters.batches.fetch_add(1, Ordering::Relaxed);
        self.counters
            .rows
            .fetch_add(rows.len() as u64, Ordering::Relaxed);

        let outcomes: Vec<Result<Recorded, StoreError>> = if unique.len() == 1 {
            vec![self.insert_one(unique[0]).await]
        } else {
            match self.insert_batch(&unique).await {
                Ok(new) => (0..unique.len())
                    .map(|i| {
                        Ok(if new.contains(&i) {
                            Recorded::New
                        } else {
                            Recorded::Duplicate
                        })
                    })
                    .collect(),
                Err(e) if e.is_unavailable() => vec![Err(e); unique.len()],
                Err(e) => {
                    self.counters.fallbacks.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        rows = unique.len(),
                        error = %e,
                        "batch insert failed; retrying its rows one by one so only the bad row fails"
                    );
                    let mut out = Vec::with_capacity(unique.len());
                    for row in &unique {
                        out.push(self.insert_one(row).await);
                    }
                    out
                }
            }
        };

        rows.iter()
            .zip(is_copy)
            .map(|(row, copy)| {
                let outcome = index_of
                    .get(row.msg.message_sid.as_str())
                    .and_then(|&u| outcomes.get(u));
                match (outcome, copy) {
                    (Some(Ok(_)), true) => Ok(Recorded::Duplicate),
                    (Some(outcome), _) => outcome.clone(),
                    (None, _) => Err(StoreError::Bug("batch row without an outcome".to_owned())),
                }
            })
            .collect()
    }

    /// Indices (into `rows`) of the rows that were inserted; the rest already existed.
    async fn insert_batch(&self, rows: &[&Row]) -> Result<HashSet<usize>, StoreError> {
        let _write = self.write_guard().await;
        match self.strategy {
            Strategy::Unnest => {
                let stmt = self.unnest_statement(rows);
                let returned = self
                    .db
                    .query_all_raw(stmt)
                    .await
                    .map_err(|e| self.err("inserting a batch of inbound messages", &e))?;
                self.new_indices(rows, &returned)
            }
            Strategy::MultiRowValues => {
                let padded = rows.len().next_power_of_two();
                let sqlite = self.backend == DbBackend::Sqlite;
                let mut values = Vec::with_capacity(padded * (PARAMS_PER_ROW + 1));
                for i in 0..padded {
                    let row = rows[i.min(rows.len() - 1)];
                    row.push_values(&mut values);
                    if sqlite {
                        // Anonymous `?` placeholders cannot be reused: updated_at gets its own.
                        values.push(ts(row.received_at));
                    }
                }
                let sql = self.values_sql(padded);
                let stmt = sea_orm::Statement::from_sql_and_values(self.backend, &*sql, values);
                if sqlite {
                    return self.sqlite_insert_values(rows, stmt).await;
                }
                let returned = self
                    .db
                    .query_all_raw(stmt)
                    .await
                    .map_err(|e| self.err("inserting a batch of inbound messages", &e))?;
                self.new_indices(rows, &returned)
            }
            Strategy::RowsInTransaction => {
                self.write_txn(
                    "starting a batch transaction",
                    "committing a batch of inbound messages",
                    async |txn| {
                        let mut new = HashSet::with_capacity(rows.len());
                        for (i, row) in rows.iter().enumerate() {
                            let mut values = Vec::with_capacity(PARAMS_PER_ROW);
                            row.push_values(&mut values);
                            let stmt = sea_orm::Statement::from_sql_and_values(
                                self.backend,
                                self.single_sql.as_str(),
                                values,
                            );
                            let res = txn.execute_raw(stmt).await.map_err(|e| {
                                self.err("inserting a batch of inbound messages", &e)
                            })?;
                            if res.rows_affected() == 1 {
                                new.insert(i);
                            }
                        }
                        Ok(new)
                    },
                )
                .await
            }
        }
    }

    /// SQLite without `RETURNING`: sqlx ships every returned row from its worker thread as a
    /// message of its own, which cost about a tenth of the throughput. The rows one INSERT
    /// adds get consecutive rowids ending at `last_insert_rowid()` (the writer holds the write
    /// lock for the statement), so the new SIDs are only looked up when some row was a
    /// duplicate, which is rare.
    async fn sqlite_insert_values(
        &self,
        rows: &[&Row],
        stmt: sea_orm::Statement,
    ) -> Result<HashSet<usize>, StoreError> {
        let res = self
            .db
            .execute_raw(stmt)
            .await
            .map_err(|e| self.err("inserting a batch of inbound messages", &e))?;
        let inserted = res.rows_affected();
        if inserted == rows.len() as u64 {
            return Ok((0..rows.len()).collect());
        }
        if inserted == 0 {
            return Ok(HashSet::new());
        }
        let last = i64::try_from(res.last_insert_id())
            .map_err(|_| StoreError::Bug("rowid out of range".to_owned()))?;
        let first = last - i64::try_from(inserted).unwrap_or(i64::MAX) + 1;
        let returned = self
            .db
            .query_all_raw(sql::stmt(
                self.backend,
                "SELECT message_sid FROM inbound_messages WHERE rowid BETWEEN $1 AND $2",
                vec![Value::BigInt(Some(first)), Value::BigInt(Some(last))],
            ))
            .await
            .map_err(|e| self.err("reading which batch rows were new", &e))?;
        self.new_indices(rows, &returned)
    }

    fn new_indices(
        &self,
        rows: &[&Row],
        returned: &[sea_orm::QueryResult],
    ) -> Result<HashSet<usize>, StoreError> {
        let mut inserted = HashSet::with_capacity(returned.len());
        for r in returned {
            let sid: String = r
                .try_get("", "message_sid")
                .map_err(|e| StoreError::Bug(format!("reading RETURNING message_sid: {e}")))?;
            inserted.insert(sid);
        }
        Ok(rows
            .iter()
            .enumerate()
            .filter(|(_, r)| inserted.contains(&r.msg.message_sid))
            .map(|(i, _)| i)
            .collect())
    }

    fn unnest_statement(&self, rows: &[&Row]) -> sea_orm::Statement {
        let n = rows.len();
        let mut cols: [Vec<Value>; 10] = Default::default();
        for c in &mut cols {
            c.reserve_exact(n);
        }
        let mut received = Vec::with_capacity(n);
        let s = |v: &str| Value::String(Some(v.to_owned()));
        let o = |v: &Option<String>| Value::String(Some(v.clone().unwrap_or_default()));
        for r in rows {
            let m = &r.msg;
            cols[0].push(s(&m.message_sid));
            cols[1].push(s(&m.account_sid));
            cols[2].push(s(&m.from));
            cols[3].push(s(&m.to));
            cols[4].push(s(&m.body));
            cols[5].push(Value::Int(Some(m.num_media)));
            cols[6].push(o(&m.profile_name));
            cols[7].push(o(&m.wa_id));
            cols[8].push(s(&m.params_json));
            cols[9].push(o(&m.idempotency_token));
            received.push(ts(r.received_at));
        }
        let mut values = Vec::with_capacity(PARAMS_PER_ROW);
        for (i, col) in cols.into_iter().enumerate() {
            let ty = if i == 5 {
                ArrayType::Int
            } else {
                ArrayType::String
            };
            values.push(Value::Array(ty, Some(Box::new(col))));
        }
        values.push(Value::Array(
            ArrayType::ChronoDateTimeUtc,
            Some(Box::new(received)),
        ));
        sea_orm::Statement::from_sql_and_values(self.backend, self.unnest_sql.as_str(), values)
    }

    /// The multi-row INSERT for `rows` rows. PostgreSQL numbers its placeholders and reuses
    /// `received_at` for `updated_at`. SQLite gets anonymous `?` placeholders (12 per row):
    /// with numbered ones sqlx looks each parameter's name up, a linear scan inside SQLite per
    /// parameter, which made binding a 64-row batch quadratic and the writer's main cost.
    fn values_sql(&self, rows: usize) -> Arc<str> {
        let mut cache = match self.values_sql.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let sqlite = self.backend == DbBackend::Sqlite;
        cache
            .entry(rows)
            .or_insert_with(|| {
                let mut sql = format!("INSERT INTO inbound_messages ({COLUMNS}) VALUES ");
                for r in 0..rows {
                    let p = r * PARAMS_PER_ROW;
                    if r > 0 {
                        sql.push_str(", ");
                    }
                    sql.push('(');
                    for c in 1..=PARAMS_PER_ROW {
                        if sqlite {
                            sql.push_str("?, ");
                        } else {
                            sql.push_str(&format!("${}, ", p + c));
                        }
                    }
                    if sqlite {
                        sql.push_str("'received', 0, ?)");
                    } else {
                        sql.push_str(&format!("'received', 0, ${})", p + PARAMS_PER_ROW));
                    }
                }
                sql.push_str(" ON CONFLICT (message_sid) DO NOTHING");
                if !sqlite {
                    sql.push_str(" RETURNING message_sid");
                }
                Arc::from(sql)
            })
            .clone()
    }
}

/// A row waiting for its commit.
struct Pending {
    row: Row,
    reply: oneshot::Sender<Result<Recorded, StoreError>>,
}

/// The handle callers use; cloning it shares the one writer.
#[derive(Clone)]
pub(crate) struct GroupCommit {
    tx: mpsc::Sender<Pending>,
}

impl GroupCommit {
    /// Starts `writers` writers (each with a supervisor that restarts it after a panic). They
    /// take turns collecting a batch from the one queue, then write in parallel: while one
    /// batch waits for its commit's fsync, the next is already being gathered and sent.
    pub(crate) fn start(
        inserter: Arc<Inserter>,
        batch_max: usize,
        linger: Duration,
        writers: usize,
    ) -> GroupCommit {
        let batch_max = batch_max.clamp(1, MAX_BATCH);
        let (tx, rx) = mpsc::channel(batch_max * 4);
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..writers.max(1) {
            let (inserter, rx) = (inserter.clone(), rx.clone());
            tokio::spawn(async move {
                loop {
                    let run =
                        tokio::spawn(run_writer(inserter.clone(), rx.clone(), batch_max, linger));
                    match run.await {
                        Ok(()) => break, // every sender dropped: the store is gone
                        Err(e) if e.is_panic() => {
                            tracing::error!("group-commit writer panicked; restarting it");
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                        Err(_) => break, // runtime shutting down
                    }
                }
            });
        }
        GroupCommit { tx }
    }

    /// Hands a row to the writer and waits for its commit.
    pub(crate) async fn submit(&self, row: Row) -> Result<Recorded, StoreError> {
        submit(&self.tx, row).await
    }
}

/// `write`'s result, or [`StoreError::Unavailable`] when the database has not answered within
/// [`WRITE_TIMEOUT`] (what it was writing may still be committed later; Twilio's retry is then
/// a duplicate).
pub(crate) async fn within_write_timeout<T>(
    write: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    tokio::time::timeout(WRITE_TIMEOUT, write)
        .await
        .unwrap_or_else(|_| Err(StoreError::no_answer_within(WRITE_TIMEOUT)))
}

/// Waits at most [`WRITE_TIMEOUT`] for the row's commit, however many batches are ahead of it.
async fn submit(tx: &mpsc::Sender<Pending>, row: Row) -> Result<Recorded, StoreError> {
    within_write_timeout(submit_unbounded(tx, row)).await
}

async fn submit_unbounded(tx: &mpsc::Sender<Pending>, row: Row) -> Result<Recorded, StoreError> {
    let (reply, answer) = oneshot::channel();
    tx.send(Pending { row, reply })
        .await
        .map_err(|_| StoreError::Bug("the group-commit writer has stopped".to_owned()))?;
    answer.await.map_err(|_| {
        StoreError::Bug(
            "the group-commit writer stopped before answering; the row may or may not be committed"
                .to_owned(),
        )
    })?
}

async fn run_writer(
    inserter: Arc<Inserter>,
    rx: Arc<Mutex<mpsc::Receiver<Pending>>>,
    batch_max: usize,
    linger: Duration,
) {
    let mut batch: Vec<Pending> = Vec::with_capacity(batch_max);
    loop {
        {
            // Only one writer collects at a time; the lock is released before writing.
            let mut rx = rx.lock().await;
            let Some(first) = rx.recv().await else {
                return;
            };
            batch.push(first);
            while batch.len() < batch_max {
                match rx.try_recv() {
                    Ok(p) => batch.push(p),
                    Err(_) => break,
                }
            }
            if !linger.is_zero() && batch.len() < batch_max {
                let deadline = tokio::time::Instant::now() + linger;
                while batch.len() < batch_max {
                    match tokio::time::timeout_at(deadline, rx.recv()).await {
                        Ok(Some(p)) => batch.push(p),
                        _ => break,
                    }
                }
            }
        }
        let (rows, replies): (Vec<Row>, Vec<_>) = batch.drain(..).map(|p| (p.row, p.reply)).unzip();
        // A database that stops answering (a silent network, a hung server) must not hold the
        // writer: its callers get "unavailable" and the next batch takes another connection.
        let results = match tokio::time::timeout(WRITE_TIMEOUT, inserter.write(&rows)).await {
            Ok(results) => results,
            Err(_) => vec![Err(StoreError::no_answer_within(WRITE_TIMEOUT)); rows.len()],
        };
        for (reply, result) in replies.into_iter().zip(results) {
            // The caller may be gone (client disconnected): the row is committed regardless.
            let _ = reply.send(result);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(sid: &str) -> Row {
        Row::new(NewInbound {
            message_sid: sid.to_owned(),
            ..Default::default()
        })
    }

    #[tokio::test]
    async fn a_writer_that_dies_fails_its_callers_instead_of_hanging() {
        let (tx, mut rx) = mpsc::channel::<Pending>(4);
        // A "writer" that takes one row and drops it unanswered, then stops.
        let writer = tokio::spawn(async move {
            let p = rx.recv().await;
            drop(p);
        });
        let err = submit(&tx, row("SM1")).await.unwrap_err();
        assert!(matches!(err, StoreError::Bug(_)), "{err:?}");
        writer.await.unwrap();
        let err = submit(&tx, row("SM2")).await.unwrap_err();
        assert!(err.to_string().contains("has stopped"), "{err}");
    }

    #[test]
    fn empty_optional_strings_are_stored_as_null() {
        let r = Row::new(NewInbound {
            profile_name: Some(String::new()),
            wa_id: Some("1555".into()),
            idempotency_token: Some(String::new()),
            ..Default::default()
        });
        assert_eq!(r.msg.profile_name, None);
        assert_eq!(r.msg.wa_id.as_deref(), Some("1555"));
        assert_eq!(r.msg.idempotency_token, None);
    }
}
