//! Delivery statuses: every callback is stored, the outbound message's status only moves forward.
//!
//! Twilio's lifecycle, as ranks: `accepted`/`scheduled`/`queued` 0 < `sending` 1 < `sent` 2 <
//! `delivered` 3 < `read` 4. `failed`, `undelivered` and `canceled` are terminal: they replace a
//! status of rank ≤ 2 (a message can fail after `sent`, but a `delivered` message stays
//! delivered), and nothing replaces them. The store's own statuses (`pending`, `submitting`,
//! `dry_run`) rank below every Twilio status. Statuses outside this list are stored as events but
//! never change the message.
//!
//! The rule runs inside ONE conditional `UPDATE … WHERE <rank of current status> < <threshold>`,
//! so concurrent callbacks cannot move a status backwards: the database re-checks the condition
//! on the row it locks.

use std::sync::LazyLock;

use sea_orm::{ColumnTrait, DbBackend};
use sea_orm::{ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Value};

use crate::entity::status_events;
use crate::sql::{self, opt_text, text, ts};
use crate::{NewStatusEvent, StatusApplied, StatusEvent, Store, StoreError};

/// Rank of a terminal status.
const TERMINAL: i32 = 100;

/// Twilio message statuses that take part in the forward-only rule.
const RANKS: &[(&str, i32)] = &[
    ("accepted", 0),
    ("scheduled", 0),
    ("queued", 0),
    ("sending", 1),
    ("sent", 2),
    ("delivered", 3),
    ("read", 4),
    ("failed", TERMINAL),
    ("undelivered", TERMINAL),
    ("canceled", TERMINAL),
];

/// The rank of `status`: its place in Twilio's lifecycle, 100 for terminal statuses, -1 for
/// anything else (the store's own `pending`/`submitting`/`dry_run`, unknown values).
pub fn status_rank(status: &str) -> i32 {
    RANKS
        .iter()
        .find(|(s, _)| *s == status)
        .map_or(-1, |(_, r)| *r)
}

/// True for `failed`, `undelivered` and `canceled`.
pub fn is_terminal(status: &str) -> bool {
    status_rank(status) == TERMINAL
}

/// The status may replace a current status whose rank is below this; `None`: never applied.
pub(crate) fn threshold(status: &str) -> Option<i32> {
    match status_rank(status) {
        -1 => None,
        TERMINAL => Some(3),
        r => Some(r),
    }
}

/// Threshold for statuses the store writes itself: the same as Twilio's for Twilio statuses;
/// the store's own statuses replace only each other (rank -1).
pub(crate) fn local_threshold(status: &str) -> i32 {
    threshold(status).unwrap_or(0)
}

/// The rank of the `status` column, as SQL (generated from [`RANKS`] so Rust and SQL agree).
pub(crate) static RANK_SQL: LazyLock<String> = LazyLock::new(|| {
    let mut s = String::from("(CASE status");
    for (status, rank) in RANKS {
        s.push_str(&format!(" WHEN '{status}' THEN {rank}"));
    }
    s.push_str(" ELSE -1 END)");
    s
});

/// Applies `status` to the outbound row with `message_sid` if it moves it forward.
/// Returns whether a row changed.
pub(crate) async fn advance<C: ConnectionTrait>(
    db: &C,
    backend: DbBackend,
    message_sid: &str,
    status: &str,
    threshold: i32,
    error_code: Option<i64>,
    error_message: Option<&str>,
) -> Result<bool, StoreError> {
    let q = format!(
        "UPDATE outbound_messages SET status = $1, error_code = COALESCE($2, error_code), \
         error_message = COALESCE($3, error_message), updated_at = $4 \
         WHERE message_sid = $5 AND {} < $6",
        *RANK_SQL
    );
    let res = db
        .execute_raw(sql::stmt(
            backend,
            &q,
            vec![
                text(status),
                Value::BigInt(error_code),
                opt_text(error_message),
                ts(sql::now()),
                text(message_sid),
                Value::Int(Some(threshold)),
            ],
        ))
        .await
        .map_err(|e| StoreError::from_db(backend, "updating an outbound status", &e))?;
    Ok(res.rows_affected() > 0)
}

impl Store {
    /// Stores a status callback and moves the outbound message's status forward when this
    /// status is later in the lifecycle (see the module rules). Safe under any arrival order
    /// and under concurrent callbacks for the same message.
    ///
    /// The event is committed first, then applied: if the send's `MessageSid` is recorded at the
    /// same moment by [`Store::update_outbound`], one of the two applies the event.
    ///
    /// A database that does not answer within [`crate::WRITE_TIMEOUT`] gives
    /// [`StoreError::Unavailable`] (the callback is answered 503, and Twilio may retry it).
    pub async fn record_status(&self, ev: NewStatusEvent) -> Result<StatusApplied, StoreError> {
        crate::group_commit::within_write_timeout(self.record_status_unbounded(ev)).await
    }

    async fn record_status_unbounded(
        &self,
        ev: NewStatusEvent,
    ) -> Result<StatusApplied, StoreError> {
        let _write = self.write_guard().await;
        let ev = ev.normalized();
        if ev.message_sid.is_empty() {
            return Err(StoreError::InvalidInput(
                "status callback without MessageSid".to_owned(),
            ));
        }
        let backend = self.backend();
        let db = self.db();
        let idempotency_token = ev.idempotency_token.as_deref().filter(|t| !t.is_empty());
        db.execute_raw(sql::stmt(
            backend,
            "INSERT INTO status_events \
             (message_sid, status, error_code, params, received_at, idempotency_token) \
             VALUES ($1, $2, $3, $4, $5, $6)",
            vec![
                text(&ev.message_sid),
                text(&ev.status),
                Value::BigInt(ev.error_code),
                text(&ev.params_json),
                ts(sql::now()),
                opt_text(idempotency_token),
            ],
        ))
        .await
        .map_err(|e| StoreError::from_db(backend, "storing a status event", &e))?;

        if let Some(marker) = ev.callback_marker.as_deref().filter(|m| !m.is_empty()) {
            // The send's response was lost: the marker in our StatusCallback URL ties this SID
            // to its row. The marker is derived from the inbound SID, whose unique index finds
            // the row (callback_marker itself has no index). When another reply already holds
            // this SID (an identical reply's lookup took it), it stays there: the event is
            // applied to that row below instead of failing on the unique index.
            let inbound_sid = crate::outbound::inbound_sid_of_marker(marker).unwrap_or(marker);
            db.execute_raw(sql::stmt(
                backend,
                "UPDATE outbound_messages SET message_sid = $1, updated_at = $2 \
                 WHERE inbound_message_sid = $3 AND callback_marker = $4 AND message_sid IS NULL \
                 AND NOT EXISTS (SELECT 1 FROM outbound_messages o WHERE o.message_sid = $1)",
                vec![
                    text(&ev.message_sid),
                    ts(sql::now()),
                    text(inbound_sid),
                    text(marker),
                ],
            ))
            .await
            .map(drop)
            .map_err(|e| {
                StoreError::from_db(backend, "attaching a message SID by callback marker", &e)
            })
            .or_else(|e| {
                // Another reply recorded this SID between the check and the write (PostgreSQL,
                // a concurrent update_outbound): it stays there, as in the NOT EXISTS case.
                if e.is_constraint() { Ok(()) } else { Err(e) }
            })?;
        }

        if let Some(th) = threshold(&ev.status)
            && advance(
                db,
                backend,
                &ev.message_sid,
                &ev.status,
                th,
                ev.error_code,
                ev.error_message.as_deref(),
            )
            .await?
        {
            return Ok(StatusApplied::Advanced);
        }
        let exists = db
            .query_one_raw(sql::stmt(
                backend,
                "SELECT 1 AS one FROM outbound_messages WHERE message_sid = $1",
                vec![text(&ev.message_sid)],
            ))
            .await
            .map_err(|e| StoreError::from_db(backend, "looking up an outbound message", &e))?
            .is_some();
        Ok(if exists {
            StatusApplied::Stale
        } else {
            StatusApplied::UnknownMessage
        })
    }

    /// Every stored status event of a message, in arrival order.
    pub async fn status_events(&self, message_sid: &str) -> Result<Vec<StatusEvent>, StoreError> {
        let rows = status_events::Entity::find()
            .filter(status_events::Column::MessageSid.eq(message_sid))
            .order_by_asc(status_events::Column::Id)
            .all(self.db())
            .await
            .map_err(|e| StoreError::from_db(self.backend(), "reading status events", &e))?;
        Ok(rows.into_iter().map(StatusEvent::from).collect())
    }

    /// Applies stored events of `message_sid` (callbacks that arrived before the SID was known).
    pub(crate) async fn apply_stored_events(&self, message_sid: &str) -> Result<(), StoreError> {
        for ev in self.status_events(message_sid).await? {
            if let Some(th) = threshold(&ev.status) {
                advance(
                    self.db(),
                    self.backend(),
                    message_sid,
                    &ev.status,
                    th,
                    ev.error_code,
                    None,
                )
                .await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifecycle_ranks_follow_twilio() {
        let order = ["queued", "sending", "sent", "delivered", "read"];
        for w in order.windows(2) {
            assert!(status_rank(w[0]) < status_rank(w[1]), "{w:?}");
        }
        assert_eq!(status_rank("accepted"), status_rank("queued"));
        assert!(is_terminal("undelivered"));
        assert!(!is_terminal("read"));
        assert_eq!(status_rank("submitting"), -1);
    }

    #[test]
    fn terminal_errors_replace_only_up_to_sent() {
        let th = threshold("failed").unwrap();
        assert!(status_rank("sent") < th);
        assert!(status_rank("delivered") >= th);
        assert!(status_rank("undelivered") >= th);
        assert_eq!(threshold("receiving"), None);
        assert_eq!(local_threshold("dry_run"), 0);
        assert!(status_rank("pending") < local_threshold("submitting"));
        assert!(status_rank("queued") >= local_threshold("submitting"));
    }

    #[test]
    fn rank_sql_lists_every_status() {
        for (s, r) in RANKS {
            assert!(RANK_SQL.contains(&format!("WHEN '{s}' THEN {r}")), "{s}");
        }
    }
}
