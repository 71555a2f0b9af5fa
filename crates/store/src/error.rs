//! The store's one error type and the rules that sort driver errors into its kinds.
//!
//! The kind decides what the server does: [`StoreError::Unavailable`] means "the database or
//! Redis is down or overloaded, answer 503 and let Twilio retry", everything else is about the
//! request or the code. Messages never contain connection URLs or passwords: they are built from
//! driver error text, which sqlx and redis-rs keep free of credentials.

use std::time::Duration;

use sea_orm::{DbBackend, DbErr, RuntimeErr, SqlxError};

/// Why a store or queue operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database or Redis cannot be reached right now (connection refused or closed, pool
    /// timeout, database starting up or shutting down, SQLite busy). Retrying later may succeed;
    /// the webhook answers 503.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The database refused the write because of a constraint (unique, foreign key, not null).
    #[error("constraint violated: {0}")]
    Constraint(String),
    /// The value cannot be stored as given (for example a value a table's own check refuses) or
    /// an argument or option is invalid. Retrying the same input fails the same way.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// Something that should not happen: an unexpected row shape, a missing table (migrations not
    /// run), a stopped background task.
    #[error("store bug: {0}")]
    Bug(String),
}

impl StoreError {
    /// The database gave no answer within `limit` (a connection stuck in its statement): an
    /// [`StoreError::Unavailable`]. The statement may still complete after it.
    pub fn no_answer_within(limit: Duration) -> StoreError {
        StoreError::Unavailable(format!(
            "the database did not answer within {} s",
            limit.as_secs()
        ))
    }

    /// True when the backing service is unreachable or overloaded: answer 503, retry later.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }

    /// True for constraint violations (duplicate key, unknown foreign key).
    pub fn is_constraint(&self) -> bool {
        matches!(self, StoreError::Constraint(_))
    }

    /// True when the input itself cannot be stored.
    pub fn is_invalid_input(&self) -> bool {
        matches!(self, StoreError::InvalidInput(_))
    }

    /// Classifies a sea-orm error that happened while doing `context` (e.g. "inserting inbound
    /// messages") on a database of kind `backend`.
    ///
    /// A database that refuses us (no such database, user or password refused: a password
    /// rotated, a database dropped while we run) is [`StoreError::Unavailable`] here: the
    /// webhook answers 503, `/readyz` fails, and everything recovers once `DATABASE_URL` works
    /// again. At start the same refusal is a configuration error ([`Self::from_db_at_start`]).
    pub(crate) fn from_db(backend: DbBackend, context: &str, err: &DbErr) -> StoreError {
        let kind = match (err, sqlx_error(err)) {
            (DbErr::ConnectionAcquire(_), _) => Kind::Unavailable,
            (_, Some(e)) => classify_sqlx(backend, e),
            (DbErr::Conn(_), None) => Kind::Unavailable,
            _ => Kind::Bug,
        };
        let fix = misconfiguration(backend, err);
        let hint = fix.map(|fix| format!(" — {fix}")).unwrap_or_default();
        kind.into_error(format!("{context}: {}{hint}", describe(err)))
    }

    /// [`Self::from_db`] for connecting and migrating at start: a database that refuses
    /// `DATABASE_URL` itself (no such database, user or password refused) is
    /// [`StoreError::InvalidInput`], since waiting will not change it and the operator must.
    pub(crate) fn from_db_at_start(backend: DbBackend, context: &str, err: &DbErr) -> StoreError {
        match StoreError::from_db(backend, context, err) {
            StoreError::Unavailable(msg) if misconfiguration(backend, err).is_some() => {
                StoreError::InvalidInput(msg)
            }
            other => other,
        }
    }

    /// Classifies a Redis error that happened while doing `context`.
    pub(crate) fn from_redis(context: &str, err: &deadpool_redis::redis::RedisError) -> StoreError {
        use deadpool_redis::redis::ErrorKind;
        let mut msg = format!("{context}: {err}");
        if msg.contains("certificate") {
            // rustls refused the server's certificate (`rediss://`): say what to do about it.
            msg.push_str(
                " (the Redis server's TLS certificate is not trusted: rediss:// checks it against \
                 the public root certificates; for a provider that uses a self-signed certificate, \
                 append #insecure to REDIS_URL)",
            );
        }
        let transient_code = matches!(
            err.code(),
            // Loading its dataset after a restart, a replica without its primary, out of
            // memory, a read-only replica after failover, a blocked read whose stream was
            // deleted (the next read recreates the group): all pass.
            Some(
                "LOADING"
                    | "MASTERDOWN"
                    | "TRYAGAIN"
                    | "CLUSTERDOWN"
                    | "OOM"
                    | "READONLY"
                    | "UNBLOCKED"
            )
        );
        if err.kind() == ErrorKind::Io
            || err.is_timeout()
            || err.is_connection_dropped()
            || err.is_connection_refusal()
            || err.is_unrecoverable_error()
            || transient_code
        {
            StoreError::Unavailable(msg)
        } else if err.kind() == ErrorKind::InvalidClientConfig {
            StoreError::InvalidInput(msg)
        } else {
            StoreError::Bug(msg)
        }
    }

    /// Classifies a failure to get a Redis connection from the pool.
    pub(crate) fn from_redis_pool(context: &str, err: &deadpool_redis::PoolError) -> StoreError {
        use deadpool_redis::PoolError;
        match err {
            PoolError::Backend(e) => StoreError::from_redis(context, e),
            PoolError::Timeout(_) | PoolError::Closed => {
                StoreError::Unavailable(format!("{context}: {err}"))
            }
            _ => StoreError::Bug(format!("{context}: {err}")),
        }
    }
}

/// The kind before a message is attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Unavailable,
    Constraint,
    InvalidInput,
    Bug,
}

impl Kind {
    fn into_error(self, msg: String) -> StoreError {
        match self {
            Kind::Unavailable => StoreError::Unavailable(msg),
            Kind::Constraint => StoreError::Constraint(msg),
            Kind::InvalidInput => StoreError::InvalidInput(msg),
            Kind::Bug => StoreError::Bug(msg),
        }
    }
}

/// The sqlx error inside a sea-orm error, when there is one.
fn sqlx_error(err: &DbErr) -> Option<&SqlxError> {
    match err {
        DbErr::Conn(RuntimeErr::SqlxError(e))
        | DbErr::Exec(RuntimeErr::SqlxError(e))
        | DbErr::Query(RuntimeErr::SqlxError(e)) => Some(e),
        _ => None,
    }
}

/// The driver's message without sea-orm's "Execution Error:" wrappers.
fn describe(err: &DbErr) -> String {
    match sqlx_error(err) {
        Some(SqlxError::Database(db)) => match db.code() {
            Some(code) => format!("{} (code {code})", db.message()),
            None => db.message().to_owned(),
        },
        Some(other) => other.to_string(),
        None => err.to_string(),
    }
}

/// What to fix when `err` is PostgreSQL refusing `DATABASE_URL` itself.
fn misconfiguration(backend: DbBackend, err: &DbErr) -> Option<&'static str> {
    match sqlx_error(err) {
        Some(SqlxError::Database(db)) if backend == DbBackend::Postgres => {
            db.code().and_then(|code| pg_misconfiguration(&code))
        }
        _ => None,
    }
}

/// PostgreSQL codes that mean `DATABASE_URL` itself must change (it is not a bug of ours), with
/// what to tell the operator.
fn pg_misconfiguration(code: &str) -> Option<&'static str> {
    match code {
        "3D000" => {
            Some("the database named in DATABASE_URL does not exist: create it or fix the name")
        }
        "28000" | "28P01" => {
            Some("PostgreSQL refused the user or password in DATABASE_URL: check them")
        }
        _ => None,
    }
}

fn classify_sqlx(backend: DbBackend, err: &SqlxError) -> Kind {
    match err {
        SqlxError::Io(_)
        | SqlxError::Tls(_)
        | SqlxError::PoolTimedOut
        | SqlxError::PoolClosed
        | SqlxError::WorkerCrashed
        | SqlxError::Protocol(_) => Kind::Unavailable,
        SqlxError::Configuration(_) | SqlxError::InvalidArgument(_) | SqlxError::Encode(_) => {
            Kind::InvalidInput
        }
        SqlxError::Database(db) => {
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            match backend {
                DbBackend::Postgres => classify_pg(&code),
                DbBackend::Sqlite => classify_sqlite(&code),
                _ => Kind::Bug,
            }
        }
        _ => Kind::Bug,
    }
}

/// PostgreSQL SQLSTATE classes: <https://www.postgresql.org/docs/current/errcodes-appendix.html>.
fn classify_pg(code: &str) -> Kind {
    match code {
        // connection exceptions, insufficient resources, operator intervention (shutdown,
        // cannot connect now), read-only transaction after a failover, serialization failure
        // and deadlock (retry succeeds).
        c if c.starts_with("08") || c.starts_with("53") || c.starts_with("57P") => {
            Kind::Unavailable
        }
        "25006" | "40001" | "40P01" | "55P03" | "57014" => Kind::Unavailable,
        c if c.starts_with("23") => Kind::Constraint,
        // No such database, user or password refused: the database turns us away now (see
        // `StoreError::from_db_at_start` for the same at start).
        c if pg_misconfiguration(c).is_some() => Kind::Unavailable,
        // data exceptions: invalid byte sequence (NUL), string too long, bad datetime ...
        c if c.starts_with("22") => Kind::InvalidInput,
        _ => Kind::Bug,
    }
}

/// SQLite result codes (extended codes keep the primary code in the low byte):
/// <https://www.sqlite.org/rescode.html>.
fn classify_sqlite(code: &str) -> Kind {
    let Ok(extended) = code.parse::<i64>() else {
        return Kind::Bug;
    };
    match extended & 0xff {
        // BUSY, LOCKED, NOMEM, READONLY, IOERR, FULL, CANTOPEN, PROTOCOL
        5 | 6 | 7 | 8 | 10 | 13 | 14 | 15 => Kind::Unavailable,
        // CONSTRAINT
        19 => Kind::Constraint,
        // TOOBIG, MISMATCH, RANGE
        18 | 20 | 25 => Kind::InvalidInput,
        _ => Kind::Bug,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pg_codes_map_to_the_kind_the_server_acts_on() {
        assert_eq!(classify_pg("08006"), Kind::Unavailable);
        assert_eq!(classify_pg("57P01"), Kind::Unavailable);
        assert_eq!(classify_pg("53300"), Kind::Unavailable);
        assert_eq!(classify_pg("23505"), Kind::Constraint);
        assert_eq!(classify_pg("22021"), Kind::InvalidInput);
        assert_eq!(classify_pg("42P01"), Kind::Bug);
        assert_eq!(classify_pg("3D000"), Kind::Unavailable, "no such database");
        assert_eq!(classify_pg("28P01"), Kind::Unavailable, "bad password");
    }

    #[test]
    fn sqlite_extended_codes_use_the_primary_code() {
        assert_eq!(classify_sqlite("5"), Kind::Unavailable);
        assert_eq!(classify_sqlite("517"), Kind::Unavailable); // SQLITE_BUSY_SNAPSHOT
        assert_eq!(classify_sqlite("2067"), Kind::Constraint); // SQLITE_CONSTRAINT_UNIQUE
        assert_eq!(classify_sqlite("1"), Kind::Bug);
        assert_eq!(classify_sqlite("garbage"), Kind::Bug);
    }

    #[test]
    fn a_deleted_stream_under_a_blocked_read_is_transient() {
        use deadpool_redis::redis::{RedisError, Value, parse_redis_value};
        // What Redis 7 answers a blocked XREADGROUP when the stream is deleted.
        let Ok(Value::ServerError(reply)) =
            parse_redis_value(b"-UNBLOCKED the stream key no longer exists\r\n")
        else {
            panic!("a RESP error reply parses as a server error");
        };
        let unblocked = RedisError::from(reply);
        assert_eq!(unblocked.code(), Some("UNBLOCKED"));
        let e = StoreError::from_redis("reading jobs (XREADGROUP)", &unblocked);
        assert!(e.is_unavailable(), "{e}");
    }

    #[test]
    fn pool_timeout_is_unavailable() {
        let err = DbErr::ConnectionAcquire(sea_orm::ConnAcquireErr::Timeout);
        let e = StoreError::from_db(DbBackend::Postgres, "pinging", &err);
        assert!(e.is_unavailable(), "{e}");
        assert!(e.to_string().starts_with("store unavailable: pinging"));
    }
}
