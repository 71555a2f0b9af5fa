//! Inbound messages: recording (through group commit), claiming for processing, finishing, and
//! the sweep that finds messages nobody answered.
//!
//! A claim is a lease: `claim_inbound` moves `received → processing` (or takes over a
//! `processing` row whose lease expired) in one conditional `UPDATE … RETURNING`, so two workers
//! or two server instances never both get the row.

use std::time::Duration;

use sea_orm::{ConnectionTrait, EntityTrait, FromQueryResult, Value};

use crate::entity::inbound_messages;
use crate::group_commit::Row;
use crate::sql::{self, text, ts};
use crate::{InboundMessage, InboundState, NewInbound, Recorded, Store, StoreError};

const ALL_COLUMNS: &str = "message_sid, account_sid, from_addr, to_addr, body, num_media, \
    profile_name, wa_id, params, idempotency_token, received_at, state, claimed_by, claimed_at, \
    lease_until, attempts, updated_at";

impl Store {
    /// Records an inbound message durably, idempotent on `message_sid`. Returns only after the
    /// row is committed: [`Recorded::New`] for the first delivery, [`Recorded::Duplicate`] when
    /// the SID was already stored (nothing is changed then).
    ///
    /// Concurrent calls share one transaction (group commit) unless
    /// [`StoreOptions::group_commit`](crate::StoreOptions::group_commit) is off.
    pub async fn record_inbound(&self, msg: NewInbound) -> Result<Recorded, StoreError> {
        if msg.message_sid.is_empty() {
            return Err(StoreError::InvalidInput(
                "inbound message without MessageSid".to_owned(),
            ));
        }
        let row = Row::new(msg);
        match self.group_commit() {
            Some(gc) => gc.submit(row).await,
            None => self.inserter().insert_one(&row).await,
        }
    }

    /// The stored message with this SID.
    pub async fn get_inbound(
        &self,
        message_sid: &str,
    ) -> Result<Option<InboundMessage>, StoreError> {
        inbound_messages::Entity::find_by_id(message_sid.to_owned())
            .one(self.db())
            .await
            .map_err(|e| StoreError::from_db(self.backend(), "reading an inbound message", &e))?
            .map(InboundMessage::try_from)
            .transpose()
    }

    /// Claims a message for processing by `worker` for `lease`. Succeeds for a `received`
    /// message, or a `processing` one whose lease has expired (its worker died). Returns `None`
    /// when the message is unknown, finished, or held by a live lease. Increments `attempts`.
    pub async fn claim_inbound(
        &self,
        message_sid: &str,
        worker: &str,
        lease: Duration,
    ) -> Result<Option<InboundMessage>, StoreError> {
        let now = sql::now();
        let q = format!(
            "UPDATE inbound_messages SET state = 'processing', claimed_by = $1, claimed_at = $2, \
             lease_until = $3, attempts = attempts + 1, updated_at = $2 \
             WHERE message_sid = $4 AND (state = 'received' \
                OR (state = 'processing' AND (lease_until IS NULL OR lease_until < $2))) \
             RETURNING {ALL_COLUMNS}"
        );
        let row = self
            .db()
            .query_one_raw(sql::stmt(
                self.backend(),
                &q,
                vec![
                    text(worker),
                    ts(now),
                    ts(sql::from_now(lease)),
                    text(message_sid),
                ],
            ))
            .await
            .map_err(|e| StoreError::from_db(self.backend(), "claiming an inbound message", &e))?;
        let Some(row) = row else {
            return Ok(None);
        };
        let model = inbound_messages::Model::from_query_result(&row, "")
            .map_err(|e| StoreError::Bug(format!("reading a claimed inbound row: {e}")))?;
        Ok(Some(InboundMessage::try_from(model)?))
    }

    /// Records the outcome of processing and releases the claim. `Received` releases the
    /// message for another try; `Processing` is refused (use [`Store::claim_inbound`]).
    pub async fn finish_inbound(
        &self,
        message_sid: &str,
        state: InboundState,
    ) -> Result<(), StoreError> {
        if state == InboundState::Processing {
            return Err(StoreError::InvalidInput(
                "finish_inbound cannot set state processing; claim the message instead".to_owned(),
            ));
        }
        let res = self
            .db()
            .execute_raw(sql::stmt(
                self.backend(),
                "UPDATE inbound_messages SET state = $1, lease_until = NULL, updated_at = $2 \
                 WHERE message_sid = $3",
                vec![text(state.as_str()), ts(sql::now()), text(message_sid)],
            ))
            .await
            .map_err(|e| StoreError::from_db(self.backend(), "finishing an inbound message", &e))?;
        if res.rows_affected() == 0 {
            return Err(StoreError::InvalidInput(format!(
                "no inbound message with MessageSid {}",
                crate::redact_sid(message_sid)
            )));
        }
        Ok(())
    }

    /// SIDs of messages recorded but not answered: `received` for longer than `older_than`
    /// (younger ones are most likely still in the queue), or `processing` with an expired lease
    /// (the worker died). Oldest first, at most `limit`. The sweep re-enqueues these.
    pub async fn unanswered_inbound(
        &self,
        older_than: Duration,
        limit: u64,
    ) -> Result<Vec<String>, StoreError> {
        let rows = self
            .db()
            .query_all_raw(sql::stmt(
                self.backend(),
                "SELECT message_sid FROM inbound_messages \
                 WHERE (state = 'received' AND received_at < $1) \
                    OR (state = 'processing' AND lease_until < $2) \
                 ORDER BY received_at LIMIT $3",
                vec![
                    ts(sql::ago(older_than)),
                    ts(sql::now()),
                    Value::BigInt(Some(i64::try_from(limit).unwrap_or(i64::MAX))),
                ],
            ))
            .await
            .map_err(|e| StoreError::from_db(self.backend(), "finding unanswered messages", &e))?;
        rows.iter()
            .map(|r| {
                r.try_get::<String>("", "message_sid")
                    .map_err(|e| StoreError::Bug(format!("reading message_sid: {e}")))
            })
            .collect()
    }
}
