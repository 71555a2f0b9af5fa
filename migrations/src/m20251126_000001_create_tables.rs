//! First migration: the three tables of `DESIGN.md` ("Tables") and the indexes the store's
//! queries need.
//!
//! Choices that matter for throughput (measured in `throughput-feasibility.md`):
//! - `params` (every webhook parameter Twilio sent, as a JSON object) is `text`, not `jsonb`:
//!   jsonb input parsing was the largest single PostgreSQL CPU cost per inserted row, and storing
//!   text cut PostgreSQL CPU per row by about a quarter. Operators can still query it with
//!   `params::jsonb ->> 'Body'` on PostgreSQL or `json_extract(params, '$.Body')` on SQLite.
//! - On PostgreSQL the SID columns use `COLLATE "C"`: the unique btree then compares bytes instead
//!   of calling `strcoll` for the database's `C.UTF-8`/`en_US` collation. SIDs are ASCII, so the
//!   order is the same. SQLite already compares text bytewise (`BINARY`) and has no "C" collation.
//! - `inbound_messages` has no surrogate key: `message_sid` is the primary key, one btree fewer
//!   per insert.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

/// Creates `inbound_messages`, `outbound_messages` and `status_events`.
#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum InboundMessages {
    Table,
    MessageSid,
    AccountSid,
    FromAddr,
    ToAddr,
    Body,
    NumMedia,
    ProfileName,
    WaId,
    Params,
    IdempotencyToken,
    ReceivedAt,
    State,
    ClaimedBy,
    ClaimedAt,
    LeaseUntil,
    Attempts,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum OutboundMessages {
    Table,
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
enum StatusEvents {
    Table,
    Id,
    MessageSid,
    Status,
    ErrorCode,
    Params,
    ReceivedAt,
    IdempotencyToken,
}

/// A text column holding a Twilio SID: bytewise collation on PostgreSQL (see the module doc).
fn sid_column<T: IntoIden>(backend: DbBackend, name: T) -> ColumnDef {
    let mut col = ColumnDef::new(name);
    col.text();
    if backend == DbBackend::Postgres {
        col.extra("COLLATE \"C\"");
    }
    col
}

fn text_col<T: IntoIden>(name: T) -> ColumnDef {
    ColumnDef::new(name).text().not_null().take()
}

fn text_null<T: IntoIden>(name: T) -> ColumnDef {
    ColumnDef::new(name).text().null().take()
}

fn ts<T: IntoIden>(name: T) -> ColumnDef {
    ColumnDef::new(name)
        .timestamp_with_time_zone()
        .not_null()
        .take()
}

fn ts_null<T: IntoIden>(name: T) -> ColumnDef {
    ColumnDef::new(name)
        .timestamp_with_time_zone()
        .null()
        .take()
}

fn int_default_zero<T: IntoIden>(name: T) -> ColumnDef {
    ColumnDef::new(name).integer().not_null().default(0).take()
}

fn big_pk<T: IntoIden>(name: T) -> ColumnDef {
    ColumnDef::new(name)
        .big_integer()
        .not_null()
        .auto_increment()
        .primary_key()
        .take()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();

        manager
            .create_table(
                Table::create()
                    .table(InboundMessages::Table)
                    .if_not_exists()
                    .col(
                        sid_column(backend, InboundMessages::MessageSid)
                            .not_null()
                            .primary_key(),
                    )
                    .col(text_col(InboundMessages::AccountSid))
                    .col(text_col(InboundMessages::FromAddr))
                    .col(text_col(InboundMessages::ToAddr))
                    .col(text_col(InboundMessages::Body))
                    .col(int_default_zero(InboundMessages::NumMedia))
                    .col(text_null(InboundMessages::ProfileName))
                    .col(text_null(InboundMessages::WaId))
                    .col(text_col(InboundMessages::Params))
                    .col(text_null(InboundMessages::IdempotencyToken))
                    .col(ts(InboundMessages::ReceivedAt))
                    .col(
                        ColumnDef::new(InboundMessages::State)
                            .text()
                            .not_null()
                            .default("received"),
                    )
                    .col(text_null(InboundMessages::ClaimedBy))
                    .col(ts_null(InboundMessages::ClaimedAt))
                    .col(ts_null(InboundMessages::LeaseUntil))
                    .col(int_default_zero(InboundMessages::Attempts))
                    .col(ts(InboundMessages::UpdatedAt))
                    .to_owned(),
            )
            .await?;

        // The sweep: `WHERE state = 'received' AND received_at < ?` and the expired-lease scan.
        manager
            .create_index(
                Index::create()
                    .name("ix_inbound_messages_state_received_at")
                    .table(InboundMessages::Table)
                    .col(InboundMessages::State)
                    .col(InboundMessages::ReceivedAt)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(OutboundMessages::Table)
                    .if_not_exists()
                    .col(big_pk(OutboundMessages::Id))
                    // One reply per inbound message: the unique key is what makes
                    // `create_outbound` idempotent across workers and instances.
                    .col(
                        sid_column(backend, OutboundMessages::InboundMessageSid)
                            .not_null()
                            .unique_key(),
                    )
                    .col(text_col(OutboundMessages::ToAddr))
                    .col(text_null(OutboundMessages::FromAddr))
                    .col(text_col(OutboundMessages::Body))
                    .col(
                        sid_column(backend, OutboundMessages::MessageSid)
                            .null()
                            .unique_key(),
                    )
                    // Sent to Twilio inside the StatusCallback URL: a status callback for a send
                    // whose HTTP response was lost still finds its row.
                    .col(
                        sid_column(backend, OutboundMessages::CallbackMarker)
                            .not_null()
                            .unique_key(),
                    )
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
                    .col(text_null(OutboundMessages::ErrorMessage))
                    .col(int_default_zero(OutboundMessages::Attempts))
                    .col(ts(OutboundMessages::CreatedAt))
                    .col(ts(OutboundMessages::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_outbound_messages_inbound_message_sid")
                            .from(OutboundMessages::Table, OutboundMessages::InboundMessageSid)
                            .to(InboundMessages::Table, InboundMessages::MessageSid)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(StatusEvents::Table)
                    .if_not_exists()
                    .col(big_pk(StatusEvents::Id))
                    .col(sid_column(backend, StatusEvents::MessageSid).not_null())
                    .col(text_col(StatusEvents::Status))
                    .col(ColumnDef::new(StatusEvents::ErrorCode).big_integer().null())
                    .col(text_col(StatusEvents::Params))
                    .col(ts(StatusEvents::ReceivedAt))
                    .col(text_null(StatusEvents::IdempotencyToken))
                    .to_owned(),
            )
            .await?;

        // Status history of one message, in arrival order.
        manager
            .create_index(
                Index::create()
                    .name("ix_status_events_message_sid")
                    .table(StatusEvents::Table)
                    .col(StatusEvents::MessageSid)
                    .col(StatusEvents::Id)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;

        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            StatusEvents::Table.into_iden(),
            OutboundMessages::Table.into_iden(),
            InboundMessages::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}
