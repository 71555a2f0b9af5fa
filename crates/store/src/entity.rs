//! sea-orm entities for the three tables (created by the `migrations` crate).
//!
//! Reads by key go through these entities. The hot paths (group commit, claims, forward-only
//! status updates) are single raw statements in their own modules, because they need
//! `ON CONFLICT`, `UNNEST` and conditional `UPDATE … RETURNING` that must stay one statement.

#![allow(unreachable_pub)]

/// `inbound_messages`: one row per `MessageSid`.
pub mod inbound_messages {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "inbound_messages")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub message_sid: String,
        pub account_sid: String,
        pub from_addr: String,
        pub to_addr: String,
        pub body: String,
        pub num_media: i32,
        pub profile_name: Option<String>,
        pub wa_id: Option<String>,
        pub params: String,
        pub idempotency_token: Option<String>,
        pub received_at: DateTimeUtc,
        pub state: String,
        pub claimed_by: Option<String>,
        pub claimed_at: Option<DateTimeUtc>,
        pub lease_until: Option<DateTimeUtc>,
        pub attempts: i32,
        pub updated_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// `outbound_messages`: at most one reply per inbound message.
pub mod outbound_messages {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "outbound_messages")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        #[sea_orm(unique)]
        pub inbound_message_sid: String,
        pub to_addr: String,
        pub from_addr: Option<String>,
        pub body: String,
        #[sea_orm(unique)]
        pub message_sid: Option<String>,
        #[sea_orm(unique)]
        pub callback_marker: String,
        pub status: String,
        pub error_code: Option<i64>,
        pub error_message: Option<String>,
        pub attempts: i32,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// `status_events`: every status callback as received.
pub mod status_events {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "status_events")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub message_sid: String,
        pub status: String,
        pub error_code: Option<i64>,
        pub params: String,
        pub received_at: DateTimeUtc,
        pub idempotency_token: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

use crate::{InboundMessage, OutboundMessage, StatusEvent, StoreError};

impl TryFrom<inbound_messages::Model> for InboundMessage {
    type Error = StoreError;

    fn try_from(m: inbound_messages::Model) -> Result<Self, StoreError> {
        Ok(InboundMessage {
            state: m.state.parse()?,
            message_sid: m.message_sid,
            account_sid: m.account_sid,
            from: m.from_addr,
            to: m.to_addr,
            body: m.body,
            num_media: m.num_media,
            profile_name: m.profile_name,
            wa_id: m.wa_id,
            params_json: m.params,
            idempotency_token: m.idempotency_token,
            received_at: m.received_at,
            claimed_by: m.claimed_by,
            claimed_at: m.claimed_at,
            lease_until: m.lease_until,
            attempts: m.attempts,
            updated_at: m.updated_at,
        })
    }
}

impl From<outbound_messages::Model> for OutboundMessage {
    fn from(m: outbound_messages::Model) -> Self {
        OutboundMessage {
            id: m.id,
            inbound_message_sid: m.inbound_message_sid,
            to: m.to_addr,
            from: m.from_addr,
            body: m.body,
            message_sid: m.message_sid,
            callback_marker: m.callback_marker,
            status: m.status,
            error_code: m.error_code,
            error_message: m.error_message,
            attempts: m.attempts,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

impl From<status_events::Model> for StatusEvent {
    fn from(m: status_events::Model) -> Self {
        StatusEvent {
            id: m.id,
            message_sid: m.message_sid,
            status: m.status,
            error_code: m.error_code,
            params_json: m.params,
            received_at: m.received_at,
            idempotency_token: m.idempotency_token,
        }
    }
}
