//! The payloads of the event log (DESIGN §4), stored as JSON in `ticket_events.payload`.
use serde::{Deserialize, Serialize};

/// What happened to a ticket. The serde tag is the `event_type` column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventPayload {
    Created {
        status: String,
    },
    StatusChanged {
        from: String,
        to: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        comment: Option<String>,
    },
    CommentAdded {
        comment_id: String,
        body: String,
        internal: bool,
    },
    Assigned {
        assignee_id: Option<String>,
        assignee_name: Option<String>,
        previous_assignee_id: Option<String>,
    },
    Reclassified {
        from: String,
        to: String,
        due_at: Option<i64>,
        number: Option<i64>,
    },
    SlaBreached {
        due_at: i64,
    },
}

impl EventPayload {
    /// The `event_type` column.
    pub fn event_type(&self) -> &'static str {
        match self {
            Self::Created { .. } => "created",
            Self::StatusChanged { .. } => "status_changed",
            Self::CommentAdded { .. } => "comment_added",
            Self::Assigned { .. } => "assigned",
            Self::Reclassified { .. } => "reclassified",
            Self::SlaBreached { .. } => "sla_breached",
        }
    }

    /// Internal events (agent notes) are never shown to requesters.
    pub fn is_internal(&self) -> bool {
        matches!(self, Self::CommentAdded { internal: true, .. })
    }
}
