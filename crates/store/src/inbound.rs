//! Inbound messages: recording (through group commit), claiming for processing, finishing, and
//! the sweep that finds messages nobody answered.
//!
//! A claim is a lease: `claim_inbound` moves `received → processing` (or takes over a
//! `processing` row whose lease expired) in one conditional `UPDATE … RETURNING`, so two workers
//! or two server instances never both get the row.

use std::collections::HashMap;
use std::time::Duration;

use sea_orm::sea_query::ArrayType;
use sea_orm::{
    ConnectionTrait, DatabaseTransaction, DbBackend, EntityTrait, FromQueryResult, Statement, Value,
};

use crate::entity::inbound_messages;
use crate::group_commit::{Row, within_write_timeout};
use crate::sql::{self, Params, text, ts};
use crate::{InboundMessage, InboundState, NewInbound, NewOutbound, Recorded, Store, StoreError};

/// The start of "this row may be claimed" for batch statements, completed by the caller with
/// `< <now>) ELSE FALSE END` (optionally `OR claimed_by = <me>` before the parenthesis). Written
/// as a CASE on purpose: with `state = 'received' OR …` the planner may AND the primary-key
/// lookup with a bitmap scan of the sweep's index on the state (then `(state, received_at)`,
/// whose `received` entries included every since-updated row version; under load that scan
/// cost more than the rest of the worker's statements together). A CASE cannot use such an
/// index, so only the key is looked up.
const CLAIMABLE_CASE: &str = "CASE WHEN state = 'received' THEN TRUE \
    WHEN state = 'processing' THEN (lease_until IS NULL OR lease_until";

const ALL_COLUMNS: &str = "message_sid, account_sid, from_addr, to_addr, body, num_media, \
    profile_name, wa_id, params, idempotency_token, received_at, state, claimed_by, claimed_at, \
    lease_until, attempts, updated_at";

impl Store {
    /// Records an inbound message durably, idempotent on `message_sid`. Returns only after the
    /// row is committed: [`Recorded::New`] for the first delivery, [`Recorded::Duplicate`] when
    /// the SID was already stored (nothing is changed then).
    ///
    /// Concurrent calls share one transaction (group commit) unless
    /// [`StoreOptions::group_commit`](crate::StoreOptions::group_commit) is off. A database that
    /// does not commit the row within [`crate::WRITE_TIMEOUT`] gives [`StoreError::Unavailable`] (the
    /// row may still be committed later; Twilio's retry is then a duplicate).
    pub async fn record_inbound(&self, msg: NewInbound) -> Result<Recorded, StoreError> {
        if msg.message_sid.is_empty() {
            return Err(StoreError::InvalidInput(
                "inbound message without MessageSid".to_owned(),
            ));
        }
        let row = Row::new(msg);
        match self.group_commit() {
            Some(gc) => gc.submit(row).await,
            None => within_write_timeout(self.inserter().insert_one(&row)).await,
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
        let _write = self.write_guard().await;
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

    /// Claims several messages for `worker` at once: one `UPDATE … RETURNING`, one commit,
    /// whatever the number of SIDs. The same rule as [`Store::claim_inbound`] per message, and a
    /// retry under the same `worker` name gets back the rows its first try claimed (so a commit
    /// whose answer was lost is not mistaken for someone else's claim). Use a name unique to the
    /// attempt. Returns the claimed rows, in no particular order.
    pub async fn claim_inbound_many(
        &self,
        message_sids: &[&str],
        worker: &str,
        lease: Duration,
    ) -> Result<Vec<InboundMessage>, StoreError> {
        if message_sids.is_empty() {
            return Ok(Vec::new());
        }
        let now = sql::now();
        // Placeholders are pushed in the order they appear (SQLite's `?` are positional).
        let mut p = Params::new(self.backend(), message_sids.len() + 6);
        let set = format!(
            "UPDATE inbound_messages SET state = 'processing', claimed_by = {}, claimed_at = {}, \
             lease_until = {}, attempts = attempts + 1, updated_at = {} ",
            p.push(text(worker)),
            p.push(ts(now)),
            p.push(ts(sql::from_now(lease))),
            p.push(ts(now)),
        );
        let list = p.text_list(message_sids);
        let q = format!(
            "{set}WHERE message_sid IN {list} AND {CLAIMABLE_CASE} < {} OR claimed_by = {}) \
             ELSE FALSE END \
             RETURNING {ALL_COLUMNS}",
            p.push(ts(now)),
            p.push(text(worker)),
        );
        let _write = self.write_guard().await;
        let rows =
            self.db().query_all_raw(p.statement(q)).await.map_err(|e| {
                StoreError::from_db(self.backend(), "claiming inbound messages", &e)
            })?;
        drop(_write);
        rows.iter()
            .map(|row| {
                let model = inbound_messages::Model::from_query_result(row, "")
                    .map_err(|e| StoreError::Bug(format!("reading a claimed inbound row: {e}")))?;
                InboundMessage::try_from(model)
            })
            .collect()
    }

    /// Records the final state of many messages in one transaction, releasing their claims:
    /// the batched form of [`Store::finish_inbound`]. SIDs that are unknown are ignored.
    /// `Processing` is refused, as in `finish_inbound`. (Outcomes that come with a dry-run reply
    /// row are written by [`Store::answer_inbound_many`].)
    pub async fn finish_inbound_many(
        &self,
        finished: &[(&str, InboundState)],
    ) -> Result<(), StoreError> {
        if finished.iter().any(|(_, s)| *s == InboundState::Processing) {
            return Err(StoreError::InvalidInput(
                "finish_inbound_many cannot set state processing; claim the message instead"
                    .to_owned(),
            ));
        }
        if finished.is_empty() {
            return Ok(());
        }
        let backend = self.backend();
        let _write = self.write_guard().await;
        self.write_txn(
            "starting a transaction for outcomes",
            "committing outcomes",
            async |txn| write_outcomes(txn, backend, finished, &[], None).await,
        )
        .await
    }

    /// Claims and answers a batch in one transaction, for outcomes that need no call outside
    /// the database (dry runs, messages without a reply, probes): the claimable rows among
    /// `message_sids` (same rule as [`Store::claim_inbound`]) are locked (`FOR UPDATE SKIP
    /// LOCKED` on PostgreSQL, so a concurrent batch skips them; SQLite has one writer), `decide`
    /// is called once per row (its `attempts` already counts this attempt), and its outcomes are
    /// written with `claimed_by = worker`: each final state as by
    /// [`Store::finish_inbound_many`], each reply row with status `dry_run` (created, or turned
    /// from `pending`/`submitting`; a reply Twilio already accepted is left alone). One commit and
    /// one new row version per message instead of a claim and a finish. Returns the outcomes.
    /// `decide` must not return `Processing` (the batch is then refused and nothing changes).
    pub async fn answer_inbound_many<F>(
        &self,
        message_sids: &[&str],
        worker: &str,
        mut decide: F,
    ) -> Result<Vec<(String, InboundState)>, StoreError>
    where
        F: FnMut(&InboundMessage) -> (InboundState, Option<NewOutbound>),
    {
        if message_sids.is_empty() {
            return Ok(Vec::new());
        }
        let backend = self.backend();
        let err = |what: &str, e: &sea_orm::DbErr| StoreError::from_db(backend, what, e);
        let mut p = Params::new(backend, message_sids.len() + 1);
        let list = p.text_list(message_sids);
        let q = format!(
            "SELECT {ALL_COLUMNS} FROM inbound_messages WHERE message_sid IN {list} \
             AND {CLAIMABLE_CASE} < {}) ELSE FALSE END{}",
            p.push(ts(sql::now())),
            if backend == DbBackend::Postgres {
                " FOR UPDATE SKIP LOCKED"
            } else {
                ""
            }
        );
        let _write = self.write_guard().await;
        self.write_txn(
            "starting a transaction to answer messages",
            "committing answers",
            async |txn| {
                let rows = txn
                    .query_all_raw(p.statement(q))
                    .await
                    .map_err(|e| err("claiming inbound messages", &e))?;
                let mut finished = Vec::with_capacity(rows.len());
                let mut dry_runs = Vec::new();
                for row in &rows {
                    let model = inbound_messages::Model::from_query_result(row, "")
                        .map_err(|e| StoreError::Bug(format!("reading an inbound row: {e}")))?;
                    let mut msg = InboundMessage::try_from(model)?;
                    msg.attempts += 1;
                    let (state, dry_run) = decide(&msg);
                    finished.push((msg.message_sid, state));
                    dry_runs.extend(dry_run.map(NewOutbound::normalized));
                }
                let pairs: Vec<(&str, InboundState)> =
                    finished.iter().map(|(s, st)| (s.as_str(), *st)).collect();
                if pairs.iter().any(|(_, s)| *s == InboundState::Processing) {
                    return Err(StoreError::InvalidInput(
                        "answer_inbound_many: an outcome cannot be processing".to_owned(),
                    ));
                }
                if backend == DbBackend::Postgres {
                    answer_postgres(txn, &pairs, &dry_runs, worker).await?;
                } else {
                    write_outcomes(txn, backend, &pairs, &dry_runs, Some(worker)).await?;
                }
                Ok(finished)
            },
        )
        .await
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
        let _write = self.write_guard().await;
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
                // The first condition repeats the predicate of the partial index
                // `ix_inbound_messages_unanswered` verbatim, so SQLite uses it too.
                "SELECT message_sid FROM inbound_messages \
                 WHERE state IN ('received', 'processing') \
                   AND ((state = 'received' AND received_at < $1) \
                     OR (state = 'processing' AND lease_until < $2)) \
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

/// PostgreSQL: writes what `write_outcomes` writes for a locked batch (the final states with the
/// claim, and the dry-run reply rows) in ONE statement: the states travel as arrays, a CTE
/// updates the inbound rows and the main statement inserts the replies (or turns an unsent
/// `pending`/`submitting` reply into the dry run). Against a statement per state and one per
/// table, this saves PostgreSQL a pass over the batch's keys: 0.96× the database time of an
/// answer (`bench/answer_cost.sh`). One statement text for every batch size.
async fn answer_postgres(
    txn: &DatabaseTransaction,
    finished: &[(&str, InboundState)],
    dry_runs: &[NewOutbound],
    worker: &str,
) -> Result<(), StoreError> {
    const SQL: &str = "WITH v AS ( \
           SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], \
                                $6::text[]) AS v(sid, new_state, to_a, from_a, reply, marker)), \
         u AS ( \
           UPDATE inbound_messages i SET state = v.new_state, lease_until = NULL, \
                  updated_at = $7, claimed_by = $8, claimed_at = $7, attempts = i.attempts + 1 \
           FROM v WHERE i.message_sid = v.sid) \
         INSERT INTO outbound_messages (inbound_message_sid, to_addr, from_addr, body, \
                callback_marker, status, attempts, created_at, updated_at) \
         SELECT v.sid, v.to_a, NULLIF(v.from_a, ''), v.reply, v.marker, 'dry_run', 0, $7, $7 \
         FROM v WHERE v.marker <> '' \
         ON CONFLICT (inbound_message_sid) DO UPDATE \
           SET status = 'dry_run', updated_at = EXCLUDED.updated_at \
           WHERE outbound_messages.message_sid IS NULL \
             AND outbound_messages.status IN ('pending', 'submitting')";
    let replies: HashMap<&str, &NewOutbound> = dry_runs
        .iter()
        .map(|r| (r.inbound_message_sid.as_str(), r))
        .collect();
    let n = finished.len();
    let mut cols: [Vec<Value>; 6] = Default::default();
    for c in &mut cols {
        c.reserve_exact(n);
    }
    let s = |v: &str| Value::String(Some(v.to_owned()));
    for (sid, state) in finished {
        cols[0].push(s(sid));
        cols[1].push(s(state.as_str()));
        // sea-query binds text[] without NULL elements: '' stands for "none" (a reply always
        // has a marker; an empty sender becomes NULL as in `write_outcomes`).
        let reply = replies.get(sid);
        cols[2].push(s(reply.map_or("", |r| r.to.as_str())));
        cols[3].push(s(reply.map_or("", |r| r.from.as_str())));
        cols[4].push(s(reply.map_or("", |r| r.body.as_str())));
        cols[5].push(reply.map_or_else(
            || s(""),
            |r| {
                Value::String(Some(crate::outbound::callback_marker(
                    &r.inbound_message_sid,
                )))
            },
        ));
    }
    let now = sql::now();
    let mut values: Vec<Value> = cols
        .into_iter()
        .map(|c| Value::Array(ArrayType::String, Some(Box::new(c))))
        .collect();
    values.push(ts(now));
    values.push(text(worker));
    txn.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        SQL,
        values,
    ))
    .await
    .map_err(|e| StoreError::from_db(DbBackend::Postgres, "recording answers", &e))?;
    Ok(())
}

/// Writes dry-run reply rows and final inbound states inside `txn` (see
/// [`Store::answer_inbound_many`]); with `claimed_by`, the rows also record that claim and count
/// the attempt (for `answer_inbound_many`, which never wrote a claim of its own).
async fn write_outcomes(
    txn: &DatabaseTransaction,
    backend: DbBackend,
    finished: &[(&str, InboundState)],
    dry_runs: &[NewOutbound],
    claimed_by: Option<&str>,
) -> Result<(), StoreError> {
    let err = |what: &str, e: &sea_orm::DbErr| StoreError::from_db(backend, what, e);
    let now = sql::now();
    if !dry_runs.is_empty() {
        // Padded to a power of two rows by repeating the last one (which the conflict
        // clause skips), so that batches of any size share a few statement texts.
        let padded = dry_runs.len().next_power_of_two();
        let mut p = Params::new(backend, padded * 7);
        let mut rows = Vec::with_capacity(padded);
        for i in 0..padded {
            let r = &dry_runs[i.min(dry_runs.len() - 1)];
            let from = Some(r.from.as_str()).filter(|f| !f.is_empty());
            rows.push(format!(
                "({}, {}, {}, {}, {}, 'dry_run', 0, {}, {})",
                p.push(text(&r.inbound_message_sid)),
                p.push(text(&r.to)),
                p.push(sql::opt_text(from)),
                p.push(text(&r.body)),
                p.push(text(&crate::outbound::callback_marker(
                    &r.inbound_message_sid
                ))),
                p.push(ts(now)),
                p.push(ts(now)),
            ));
        }
        let q = format!(
            "INSERT INTO outbound_messages (inbound_message_sid, to_addr, from_addr, body, \
             callback_marker, status, attempts, created_at, updated_at) VALUES {} \
             ON CONFLICT (inbound_message_sid) DO NOTHING",
            rows.join(", ")
        );
        let res = txn
            .execute_raw(p.statement(q))
            .await
            .map_err(|e| err("recording dry-run replies", &e))?;
        if res.rows_affected() < dry_runs.len() as u64 {
            // Some replies existed already (an earlier attempt created them): a row that
            // was never accepted by Twilio becomes the dry run.
            let sids: Vec<&str> = dry_runs
                .iter()
                .map(|r| r.inbound_message_sid.as_str())
                .collect();
            let mut p = Params::new(backend, sids.len() + 1);
            let t = p.push(ts(now));
            let list = p.text_list(&sids);
            let q = format!(
                "UPDATE outbound_messages SET status = 'dry_run', updated_at = {t} \
                 WHERE inbound_message_sid IN {list} AND message_sid IS NULL \
                   AND status IN ('pending', 'submitting')"
            );
            txn.execute_raw(p.statement(q))
                .await
                .map_err(|e| err("recording dry-run replies", &e))?;
        }
    }
    let mut states: Vec<InboundState> = finished.iter().map(|(_, s)| *s).collect();
    states.sort_by_key(|s| s.as_str());
    states.dedup();
    for state in states {
        let sids: Vec<&str> = finished
            .iter()
            .filter(|(_, s)| *s == state)
            .map(|(sid, _)| *sid)
            .collect();
        let mut p = Params::new(backend, sids.len() + 4);
        let mut set = format!(
            "UPDATE inbound_messages SET state = {}, lease_until = NULL, updated_at = {}",
            p.push(text(state.as_str())),
            p.push(ts(now))
        );
        if let Some(worker) = claimed_by {
            set.push_str(&format!(
                ", claimed_by = {}, claimed_at = {}, attempts = attempts + 1",
                p.push(text(worker)),
                p.push(ts(now))
            ));
        }
        let list = p.text_list(&sids);
        let q = format!("{set} WHERE message_sid IN {list}");
        txn.execute_raw(p.statement(q))
            .await
            .map_err(|e| err("finishing inbound messages", &e))?;
    }
    // A message given up as failed (claimed too often without an outcome) closes a reply left
    // open (`pending`, or `submitting` after sends that never reached Twilio or stayed in
    // doubt): the row then says so and keeps the last error, instead of reading "in doubt".
    let failed: Vec<&str> = finished
        .iter()
        .filter(|(_, s)| *s == InboundState::Failed)
        .map(|(sid, _)| *sid)
        .collect();
    if !failed.is_empty() {
        let mut p = Params::new(backend, failed.len() + 1);
        let t = p.push(ts(now));
        let list = p.text_list(&failed);
        let q = format!(
            "UPDATE outbound_messages SET status = 'failed', updated_at = {t}, \
             error_message = CASE WHEN error_message IS NULL THEN '{GIVEN_UP}' \
             ELSE '{GIVEN_UP}; last error: ' || error_message END \
             WHERE inbound_message_sid IN {list} AND status IN ('pending', 'submitting')"
        );
        txn.execute_raw(p.statement(q))
            .await
            .map_err(|e| err("closing replies of failed messages", &e))?;
    }
    Ok(())
}

/// The error text of a reply closed because its message was given up.
const GIVEN_UP: &str = "given up: no outcome after repeated attempts \
    (whether Twilio created a message is not confirmed)";
