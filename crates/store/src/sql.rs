//! Small helpers shared by the statement-writing modules: one SQL text for both backends,
//! timestamps both backends store alike, and error mapping.

use chrono::{DateTime, Utc};
use sea_orm::{DbBackend, Statement, Value};

/// Statements are written once with PostgreSQL's `$1` placeholders; SQLite gets `?1`, its
/// numbered form with the same meaning (a repeated `$1` binds the same value).
pub(crate) fn for_backend(backend: DbBackend, sql: &str) -> String {
    if backend != DbBackend::Sqlite {
        return sql.to_owned();
    }
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    let mut in_string = false;
    while let Some(c) = chars.next() {
        if c == '\'' {
            in_string = !in_string;
        }
        if c == '$' && !in_string && chars.peek().is_some_and(|n| n.is_ascii_digit()) {
            out.push('?');
        } else {
            out.push(c);
        }
    }
    out
}

/// Builds a statement whose placeholders are generated as values are pushed: `$1, $2, …` on
/// PostgreSQL, anonymous `?` on SQLite (sqlx looks every numbered SQLite parameter up by name,
/// a scan that makes binding a many-row statement quadratic).
pub(crate) struct Params {
    backend: DbBackend,
    pub(crate) values: Vec<Value>,
}

impl Params {
    pub(crate) fn new(backend: DbBackend, capacity: usize) -> Params {
        Params {
            backend,
            values: Vec::with_capacity(capacity),
        }
    }

    /// Adds a value and returns its placeholder.
    pub(crate) fn push(&mut self, v: Value) -> String {
        self.values.push(v);
        if self.backend == DbBackend::Sqlite {
            "?".to_owned()
        } else {
            format!("${}", self.values.len())
        }
    }

    /// `(p1, p2, …)` for a list of texts, padded to a power of two by repeating the last one,
    /// so that lists of any length share a few prepared statement texts.
    pub(crate) fn text_list(&mut self, items: &[&str]) -> String {
        let padded = items.len().max(1).next_power_of_two();
        let mut out = String::with_capacity(padded * 5 + 2);
        out.push('(');
        for i in 0..padded {
            if i > 0 {
                out.push_str(", ");
            }
            let item = items.get(i).or(items.last()).copied().unwrap_or_default();
            out.push_str(&self.push(text(item)));
        }
        out.push(')');
        out
    }

    /// The statement with these values.
    pub(crate) fn statement(self, sql: String) -> Statement {
        Statement::from_sql_and_values(self.backend, sql, self.values)
    }
}

/// A statement from SQL written with `$n` placeholders.
pub(crate) fn stmt(backend: DbBackend, sql: &str, values: Vec<Value>) -> Statement {
    Statement::from_sql_and_values(backend, for_backend(backend, sql), values)
}

/// The current time at microsecond precision, the precision PostgreSQL keeps, so that a value
/// read back equals the value written on both backends.
pub(crate) fn now() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now)
}

/// `now - d`, saturating instead of overflowing for absurd durations.
pub(crate) fn ago(d: std::time::Duration) -> DateTime<Utc> {
    let now = now();
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| now.checked_sub_signed(d))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// `now + d`, saturating.
pub(crate) fn from_now(d: std::time::Duration) -> DateTime<Utc> {
    let now = now();
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| now.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// A nullable text value.
pub(crate) fn opt_text(v: Option<&str>) -> Value {
    Value::String(v.map(str::to_owned))
}

/// A non-null text value.
pub(crate) fn text(v: &str) -> Value {
    Value::String(Some(v.to_owned()))
}

/// A timestamp value.
pub(crate) fn ts(v: DateTime<Utc>) -> Value {
    Value::ChronoDateTimeUtc(Some(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_gets_numbered_question_marks_outside_string_literals() {
        assert_eq!(
            for_backend(DbBackend::Sqlite, "SELECT $1, '$2', $10 WHERE a = $1"),
            "SELECT ?1, '$2', ?10 WHERE a = ?1"
        );
        assert_eq!(for_backend(DbBackend::Postgres, "SELECT $1"), "SELECT $1");
    }

    #[test]
    fn params_number_postgres_placeholders_and_pad_lists() {
        let mut p = Params::new(DbBackend::Postgres, 4);
        assert_eq!(p.push(text("a")), "$1");
        assert_eq!(p.text_list(&["x", "y", "z"]), "($2, $3, $4, $5)");
        assert_eq!(
            p.values.last(),
            Some(&text("z")),
            "padded with the last item"
        );
        let mut q = Params::new(DbBackend::Sqlite, 4);
        assert_eq!(q.text_list(&["x"]), "(?)");
        assert_eq!(q.push(text("b")), "?");
    }

    #[test]
    fn time_helpers_round_to_microseconds() {
        let t = now();
        assert_eq!(t.timestamp_subsec_nanos() % 1000, 0);
        assert!(ago(std::time::Duration::from_secs(10)) < t);
        assert!(from_now(std::time::Duration::from_secs(10)) > t);
        assert_eq!(ago(std::time::Duration::MAX), DateTime::<Utc>::MIN_UTC);
    }
}
