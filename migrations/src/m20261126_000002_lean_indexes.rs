//! Second migration: fewer index entries per reply.
//!
//! Every answered message writes one `outbound_messages` row and a new version of its
//! `inbound_messages` row; each index on those tables is one more btree insert (and its WAL) per
//! message. Measured on PostgreSQL 15 with 153,600 dry-run answers in batches of 256
//! (`bench/answer_cost.sh`, results in `bench/README.md`), these changes cut the database time of
//! an answer to 0.85× without changing what any query can find:
//!
//! - `inbound_messages`: the sweep's index `(state, received_at)` becomes
//!   `(received_at) WHERE state IN ('received', 'processing')`. Only unanswered messages are in
//!   it, so an answered message's new row version adds no entry, and the index stays as small as
//!   the backlog instead of growing with the table.
//! - `outbound_messages.callback_marker` loses its unique index: the marker is derived from
//!   `inbound_message_sid` (`re` + SID), which is unique already, and the status callback finds
//!   the row through `inbound_message_sid`.
//! - `outbound_messages.message_sid` keeps its uniqueness as a partial index over the rows that
//!   have one (`WHERE message_sid IS NOT NULL`): rows not (yet) accepted by Twilio — every dry
//!   run — add no entry.
//!
//! PostgreSQL drops the two constraints in place. SQLite cannot drop a column's `UNIQUE`, so it
//! rebuilds `outbound_messages` (create, copy, drop, rename: SQLite's documented procedure); the
//! copy takes time proportional to the table, once. The whole migration is one transaction.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum OutboundMessages {
    Id,
    InboundMessageSid,
    ToAddr,
    FromAddr,
    Body,
    MessageSid,
    CallbackMarker,
    Status,
    ErrorCode,
    ErrorMessage,
    Attempts,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum InboundMessages {
    Table,
    MessageSid,
}

/// The rebuilt table's temporary name (SQLite only).
const REBUILT: &str = "outbound_messages_rebuilt";

/// `outbound_messages` as the first migration created it, named `name`; `old_uniques` keeps the
/// `UNIQUE` on `message_sid` and `callback_marker` (for `down`). SQLite only: PostgreSQL alters
/// the table in place.
fn outbound_table(name: &str, old_uniques: bool) -> TableCreateStatement {
    let mut message_sid = ColumnDef::new(OutboundMessages::MessageSid);
    message_sid.text().null();
    let mut marker = ColumnDef::new(OutboundMessages::CallbackMarker);
    marker.text().not_null();
    if old_uniques {
        message_sid.unique_key();
        marker.unique_key();
    }
    Table::create()
        .table(Alias::new(name))
        .col(
            ColumnDef::new(OutboundMessages::Id)
                .big_integer()
                .not_null()
                .auto_increment()
                .primary_key(),
        )
        .col(
            ColumnDef::new(OutboundMessages::InboundMessageSid)
                .text()
                .not_null()
                .unique_key(),
        )
        .col(ColumnDef::new(OutboundMessages::ToAddr).text().not_null())
        .col(ColumnDef::new(OutboundMessages::FromAddr).text().null())
        .col(ColumnDef::new(OutboundMessages::Body).text().not_null())
        .col(message_sid)
        .col(marker)
        .col(
            ColumnDef::new(OutboundMessages::Status)
                .text()
                .not_null()
                .default("pending"),
        )
        .col(
            ColumnDef::new(OutboundMessages::ErrorCode)
                .big_integer()
                .null(),
        )
        .col(ColumnDef::new(OutboundMessages::ErrorMessage).text().null())
        .col(
            ColumnDef::new(OutboundMessages::Attempts)
                .integer()
                .not_null()
                .default(0),
        )
        .col(
            ColumnDef::new(OutboundMessages::CreatedAt)
                .timestamp_with_time_zone()
                .not_null(),
        )
        .col(
            ColumnDef::new(OutboundMessages::UpdatedAt)
                .timestamp_with_time_zone()
                .not_null(),
        )
        .foreign_key(
            ForeignKey::create()
                .name("fk_outbound_messages_inbound_message_sid")
                .from(Alias::new(name), OutboundMessages::InboundMessageSid)
                .to(InboundMessages::Table, InboundMessages::MessageSid)
                .on_delete(ForeignKeyAction::Cascade),
        )
        .to_owned()
}

/// SQLite: replaces `outbound_messages` by a copy created as `outbound_table(…, old_uniques)`.
async fn rebuild_outbound(manager: &SchemaManager<'_>, old_uniques: bool) -> Result<(), DbErr> {
    let db = manager.get_connection();
    db.execute_unprepared(&format!("DROP TABLE IF EXISTS {REBUILT}"))
        .await?;
    manager
        .create_table(outbound_table(REBUILT, old_uniques))
        .await?;
    db.execute_unprepared(&format!(
        "INSERT INTO {REBUILT} (id, inbound_message_sid, to_addr, from_addr, body, message_sid, \
         callback_marker, status, error_code, error_message, attempts, created_at, updated_at) \
         SELECT id, inbound_message_sid, to_addr, from_addr, body, message_sid, callback_marker, \
         status, error_code, error_message, attempts, created_at, updated_at \
         FROM outbound_messages"
    ))
    .await?;
    db.execute_unprepared("DROP TABLE outbound_messages")
        .await?;
    db.execute_unprepared(&format!(
        "ALTER TABLE {REBUILT} RENAME TO outbound_messages"
    ))
    .await?;
    Ok(())
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    /// In one transaction on both backends (sea-orm's default leaves SQLite without one): a
    /// rebuild stopped halfway must leave the old table, not a dropped one.
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        // Same statements on both backends: sea-query has no builder for partial indexes.
        db.execute_unprepared("DROP INDEX IF EXISTS ix_inbound_messages_state_received_at")
            .await?;
        db.execute_unprepared(
            "CREATE INDEX IF NOT EXISTS ix_inbound_messages_unanswered \
             ON inbound_messages (received_at) WHERE state IN ('received', 'processing')",
        )
        .await?;
        match manager.get_database_backend() {
            DbBackend::Sqlite => rebuild_outbound(manager, false).await?,
            _ => {
                db.execute_unprepared(
                    "ALTER TABLE outbound_messages \
                     DROP CONSTRAINT IF EXISTS outbound_messages_callback_marker_key, \
                     DROP CONSTRAINT IF EXISTS outbound_messages_message_sid_key",
                )
                .await?;
            }
        }
        db.execute_unprepared(
            "CREATE UNIQUE INDEX IF NOT EXISTS ux_outbound_messages_message_sid \
             ON outbound_messages (message_sid) WHERE message_sid IS NOT NULL",
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared("DROP INDEX IF EXISTS ux_outbound_messages_message_sid")
            .await?;
        match manager.get_database_backend() {
            DbBackend::Sqlite => rebuild_outbound(manager, true).await?,
            _ => {
                db.execute_unprepared(
                    "ALTER TABLE outbound_messages \
                     ADD CONSTRAINT outbound_messages_callback_marker_key UNIQUE (callback_marker), \
                     ADD CONSTRAINT outbound_messages_message_sid_key UNIQUE (message_sid)",
                )
                .await?;
            }
        }
        db.execute_unprepared("DROP INDEX IF EXISTS ix_inbound_messages_unanswered")
            .await?;
        db.execute_unprepared(
            "CREATE INDEX IF NOT EXISTS ix_inbound_messages_state_received_at \
             ON inbound_messages (state, received_at)",
        )
        .await?;
        Ok(())
    }
}
