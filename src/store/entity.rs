//! sea-orm entities, one module per table (see `migration/`).
//! Instants are i64 microseconds since the Unix epoch.

/// A table's entity: its `Model` with these columns, and no relations.
macro_rules! table {
    ($name:literal { $($columns:tt)* }) => {
        use sea_orm::entity::prelude::*;

        #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
        #[sea_orm(table_name = $name)]
        pub struct Model { $($columns)* }

        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}

        impl ActiveModelBehavior for ActiveModel {}
    };
}

/// A ticket table's entity: the columns of `domain::ticket::Header`, under
/// the same names in both tables (`tickets::header_of!` reads them,
/// `tickets::row_of!` writes them), then the table's own.
macro_rules! ticket_table {
    ($name:literal, number: $number:ty, { $($own:tt)* }) => {
        table!($name {
            #[sea_orm(primary_key, auto_increment = false)]
            pub id: String,
            pub number: $number,
            pub account: String,
            pub requester_id: String,
            pub requester_name: String,
            pub assignee_id: Option<String>,
            pub assignee_name: Option<String>,
            /// Where the requester's e-mails go (migration 000009).
            pub requester_email: Option<String>,
            /// "es" or "en": the language of the requester's e-mails.
            pub notify_locale: Option<String>,
            /// Where the assignee's e-mails go.
            pub assignee_email: Option<String>,
            pub version: i64,
            pub created_at: i64,
            pub updated_at: i64,
            /// When the target was passed unresolved (its sla_breached event).
            pub breached_at: Option<i64>,
            pub search_text: String,
            pub idempotency_key: Option<String>,
            pub request_hash: Option<String>,
            $($own)*
        });
    };
}

pub mod incident {
    ticket_table!("incidents", number: i64, {
        pub kind: String,
        pub status: String,
        pub previous_status: Option<String>,
        pub tracking_number: String,
        pub carrier_code: String,
        pub category_code: String,
        pub description: String,
        pub shipped_at: Option<i64>,
        pub claimed_amount: Option<String>,
        pub claimed_currency: Option<String>,
        pub resolution_reason: Option<String>,
        pub resolution_note: Option<String>,
        pub resolved_at: Option<i64>,
        /// While MISSING_DATA: when the system finalizes it for want of an answer.
        pub auto_close_at: Option<i64>,
        /// Fecha estimada: created + the category's target, moved by time spent waiting for data.
        pub estimated_resolution_at: Option<i64>,
        /// While MISSING_DATA: since when the estimate is paused.
        pub paused_since: Option<i64>,
    });
}

pub mod consultation {
    ticket_table!("consultations", number: Option<i64>, {
        pub category_code: String,
        pub complexity: String,
        pub status: String,
        pub title: String,
        pub description: String,
        pub order_reference: Option<String>,
        pub due_at: i64,
        pub solved_at: Option<i64>,
    });
}

pub mod comment {
    table!("comments" {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub ticket_id: String,
        pub ticket_type: String,
        pub author_id: String,
        pub author_name: String,
        pub author_role: String,
        pub body: String,
        pub internal: bool,
        pub created_at: i64,
    });
}

pub mod ticket_event {
    table!("ticket_events" {
        #[sea_orm(primary_key, auto_increment = false)]
        pub sequence: i64,
        pub ticket_id: String,
        pub ticket_type: String,
        pub ticket_number: i64,
        pub account: String,
        pub event_type: String,
        pub internal: bool,
        pub actor_id: String,
        pub actor_name: String,
        pub actor_role: String,
        pub payload: String,
        pub occurred_at: i64,
    });
}

pub mod carrier {
    table!("carriers" {
        #[sea_orm(primary_key, auto_increment = false)]
        pub code: String,
        pub name: String,
        pub claim_window_days: i32,
        pub position: i32,
    });
}

pub mod category {
    table!("categories" {
        #[sea_orm(primary_key, auto_increment = false)]
        pub code: String,
        pub name: String,
        pub ticket_type: String,
        pub incident_kind: Option<String>,
        pub complexity: Option<String>,
        pub resolution_target_days: Option<i32>,
        pub position: i32,
        /// Overrides the carrier's claim window for this category.
        pub claim_window_days: Option<i32>,
    });
}
