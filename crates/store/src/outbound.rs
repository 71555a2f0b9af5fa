//! Outbound replies: created before the send (so a crash mid-send leaves a trace and is never
//! resent blindly), then updated with Twilio's answer.

use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Value};

use crate::entity::outbound_messages;
use crate::sql::{self, text, ts};
use crate::status::{RANK_SQL, local_threshold};
use crate::{NewOutbound, OutboundMessage, OutboundUpdate, Store, StoreError};

/// The callback marker of the reply to `inbound_message_sid` (unique because there is at most
/// one reply per inbound message).
pub(crate) fn callback_marker(inbound_message_sid: &str) -> String {
    format!("{MARKER_PREFIX}{inbound_message_sid}")
}

const MARKER_PREFIX: &str = "re";

/// The inbound SID a callback marker was made from (`None` when `marker` is not one of ours).
pub(crate) fn inbound_sid_of_marker(marker: &str) -> Option<&str> {
    marker.strip_prefix(MARKER_PREFIX)
}

impl Store {
    /// Creates the reply row for an inbound message (status `pending`), or returns the row that
    /// already exists: there is at most one reply per inbound message, whoever asks first wins.
    /// Check [`OutboundMessage::is_final`] and [`OutboundMessage::is_in_doubt`] before sending.
    /// Fails with [`StoreError::Constraint`] when the inbound message is unknown.
    pub async fn create_outbound(&self, new: NewOutbound) -> Result<OutboundMessage, StoreError> {
        let new = new.normalized();
        let _write = self.write_guard().await;
        let backend = self.backend();
        let now = sql::now();
        let from = Some(new.from.as_str()).filter(|f| !f.is_empty());
        self.db()
            .execute_raw(sql::stmt(
                backend,
                // A retry collides on inbound_message_sid, the one unique column it writes.
                "INSERT INTO outbound_messages (inbound_message_sid, to_addr, from_addr, body, \
                 callback_marker, status, attempts, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, 'pending', 0, $6, $6) \
                 ON CONFLICT (inbound_message_sid) DO NOTHING",
                vec![
                    text(&new.inbound_message_sid),
                    text(&new.to),
                    sql::opt_text(from),
                    text(&new.body),
                    text(&callback_marker(&new.inbound_message_sid)),
                    ts(now),
                ],
            ))
            .await
            .map_err(|e| StoreError::from_db(backend, "creating an outbound message", &e))?;
        self.outbound_for_inbound(&new.inbound_message_sid)
            .await?
            .ok_or_else(|| {
                StoreError::Bug("outbound row missing right after its insert".to_owned())
            })
    }

    /// Applies `update` to outbound row `id`. The status only moves forward (a late `queued`
    /// from the send response does not undo a `delivered` callback). When the update carries
    /// Twilio's SID, status callbacks that arrived before it are applied now.
    pub async fn update_outbound(&self, id: i64, update: OutboundUpdate) -> Result<(), StoreError> {
        let _write = self.write_guard().await;
        let backend = self.backend();
        let mut sets = vec![
            "attempts = attempts + $1".to_owned(),
            "updated_at = $2".to_owned(),
        ];
        let mut values = vec![
            Value::Int(Some(i32::try_from(update.add_attempts).unwrap_or(i32::MAX))),
            ts(sql::now()),
        ];
        let param = |values: &mut Vec<Value>, v: Value| {
            values.push(v);
            format!("${}", values.len())
        };
        let sid = update.message_sid.as_deref().filter(|s| !s.is_empty());
        if let Some(sid) = sid {
            // The first SID recorded stays: a status callback's marker may have attached the
            // message this send created before its response came back; a different SID now
            // would be a second message, and the row keeps describing the first.
            let p = param(&mut values, text(sid));
            sets.push(format!("message_sid = COALESCE(message_sid, {p})"));
            if update.error_code.is_none() && update.error_message.is_none() {
                // The first SID: the errors of earlier tries (unreachable, in doubt) are over.
                // (SET reads the row as it was, so a SID a callback attached keeps its error.)
                sets.push(
                    "error_code = CASE WHEN message_sid IS NULL THEN NULL ELSE error_code END"
                        .to_owned(),
                );
                sets.push(
                    "error_message = CASE WHEN message_sid IS NULL THEN NULL ELSE error_message END"
                        .to_owned(),
                );
            }
        }
        if let Some(status) = &update.status {
            let th = param(&mut values, Value::Int(Some(local_threshold(status))));
            let s = param(&mut values, text(status));
            sets.push(format!(
                "status = CASE WHEN {} < {th} THEN {s} ELSE status END",
                *RANK_SQL
            ));
        }
        if let Some(code) = update.error_code {
            let p = param(&mut values, Value::BigInt(Some(code)));
            sets.push(format!("error_code = {p}"));
        }
        if let Some(msg) = &update.error_message {
            let p = param(&mut values, text(msg));
            sets.push(format!("error_message = {p}"));
        }
        let id_param = param(&mut values, Value::BigInt(Some(id)));
        let q = format!(
            "UPDATE outbound_messages SET {} WHERE id = {id_param}",
            sets.join(", ")
        );
        let res = self
            .db()
            .execute_raw(sql::stmt(backend, &q, values))
            .await
            .map_err(|e| StoreError::from_db(backend, "updating an outbound message", &e))?;
        if res.rows_affected() == 0 {
            return Err(StoreError::InvalidInput(format!(
                "no outbound message with id {id}"
            )));
        }
        if let Some(sid) = sid {
            self.apply_stored_events(sid).await?;
        }
        Ok(())
    }

    /// Outbound row by id.
    pub async fn get_outbound(&self, id: i64) -> Result<Option<OutboundMessage>, StoreError> {
        self.find_outbound(outbound_messages::Column::Id.eq(id))
            .await
    }

    /// The reply to an inbound message, if one was created.
    pub async fn outbound_for_inbound(
        &self,
        inbound_message_sid: &str,
    ) -> Result<Option<OutboundMessage>, StoreError> {
        self.find_outbound(outbound_messages::Column::InboundMessageSid.eq(inbound_message_sid))
            .await
    }

    /// The reply Twilio knows as `message_sid`.
    pub async fn outbound_by_message_sid(
        &self,
        message_sid: &str,
    ) -> Result<Option<OutboundMessage>, StoreError> {
        self.find_outbound(outbound_messages::Column::MessageSid.eq(message_sid))
            .await
    }

    /// The reply whose `StatusCallback` URL carried `marker`.
    pub async fn outbound_by_marker(
        &self,
        marker: &str,
    ) -> Result<Option<OutboundMessage>, StoreError> {
        self.find_outbound(outbound_messages::Column::CallbackMarker.eq(marker))
            .await
    }

    async fn find_outbound(
        &self,
        cond: sea_orm::sea_query::SimpleExpr,
    ) -> Result<Option<OutboundMessage>, StoreError> {
        Ok(outbound_messages::Entity::find()
            .filter(cond)
            .one(self.db())
            .await
            .map_err(|e| StoreError::from_db(self.backend(), "reading an outbound message", &e))?
            .map(OutboundMessage::from))
    }
}
