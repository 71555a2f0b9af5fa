//! Database migrations for the webhook store, run by `webhook-server` at start and inspected by
//! `validate-webhook`.
//!
//! The schema is written once with sea-query builders, so PostgreSQL and SQLite get the same
//! tables, columns and indexes (see `DESIGN.md`, "Tables"). Operators query these tables by name;
//! renaming a table or column is a breaking change.
//!
//! What this crate deliberately does not do: open connections, choose pool sizes or run anything
//! by itself. `store::Store::connect` applies pending migrations when asked to, under a
//! PostgreSQL advisory lock so that two instances starting together do not race.
//!
//! # Layout
//!
//! - [`Migrator`]: the ordered list of migrations ([`MigratorTrait`]).
//! - `m20251126_000001_create_tables`: `inbound_messages`, `outbound_messages`, `status_events`.
//! - `m20261126_000002_lean_indexes`: fewer index entries per answered message (a partial sweep
//!   index, no unique index on the derived `callback_marker`, `message_sid` unique where set).
//!
//! # Example
//!
//! ```no_run
//! use migrations::{Migrator, MigratorTrait};
//! # async fn run(db: &sea_orm_migration::sea_orm::DatabaseConnection) -> Result<(), sea_orm_migration::prelude::DbErr> {
//! for m in Migrator::get_pending_migrations(db).await? {
//!     println!("pending: {}", m.name());
//! }
//! Migrator::up(db, None).await?;
//! # Ok(())
//! # }
//! ```

pub use sea_orm_migration::MigratorTrait;
use sea_orm_migration::prelude::*;

mod m20251126_000001_create_tables;
mod m20261126_000002_lean_indexes;

/// The ordered list of this project's migrations.
#[derive(Debug, Clone, Copy, Default)]
pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20251126_000001_create_tables::Migration),
            Box::new(m20261126_000002_lean_indexes::Migration),
        ]
    }
}

/// Names of all migrations this build knows, oldest first (what `pending_migrations` compares against).
pub fn migration_names() -> Vec<String> {
    Migrator::migrations()
        .iter()
        .map(|m| m.name().to_owned())
        .collect()
}
