//! A contract event whose block is final, as the effects (roots, stakes) replay it.

use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Jsonb, Text};

/// A final contract event, in chain order (loaded from `contract_events`).
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct FinalEvent {
    /// Its block.
    #[diesel(sql_type = BigInt)]
    pub block_number: i64,
    /// Its kind (`root_committed`, `staked`, …).
    #[diesel(sql_type = Text)]
    pub kind: String,
    /// The decoded event's fields.
    #[diesel(sql_type = Jsonb)]
    pub data: serde_json::Value,
}

impl FinalEvent {
    /// The text field `field` of the decoded event.
    pub fn text(&self, field: &str) -> Option<&str> {
        self.data.get(field)?.as_str()
    }
}
