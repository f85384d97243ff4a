//! An event-subscriber module used as a workflow's assignment callback (`module:assigner`), for
//! the host's end-to-end tests: it answers each `reservation.created` event through the
//! `distribution` interface.
//!
//! The worker's name picks the answer, so a test only has to name its workers:
//!
//! | worker name starts with | instruction |
//! |---|---|
//! | `reject` | `{"instruction": "reject"}` |
//! | `ignore` | none (the reservation stays pending) |
//! | anything else | `{"instruction": "accept"}` |
//!
//! Any other event is ignored.

use serde_json::Value;
use switchboard_guest::distribution;
use switchboard_guest::event_subscriber::{Event, Guest};

struct Assigner;

/// The instruction for a reservation offered to `worker_name`, if any.
fn instruction(worker_name: &str) -> Option<&'static str> {
    if worker_name.starts_with("reject") {
        Some(r#"{"instruction": "reject"}"#)
    } else if worker_name.starts_with("ignore") {
        None
    } else {
        Some(r#"{"instruction": "accept"}"#)
    }
}

impl Guest for Assigner {
    fn on_event(event: Event) -> Result<(), String> {
        if event.type_ != "reservation.created" {
            return Ok(());
        }
        let data: Value = serde_json::from_str(&event.data).map_err(|e| e.to_string())?;
        let field = |name: &str| {
            data.get(name)
                .and_then(Value::as_str)
                .ok_or_else(|| format!("the event has no {name}"))
        };
        let Some(answer) = instruction(field("worker_name")?) else {
            return Ok(());
        };
        distribution::instruct_reservation(
            field("workspace_sid")?,
            field("reservation_sid")?,
            answer,
        )
    }
}

switchboard_guest::export_event_subscriber!(Assigner);

#[cfg(test)]
mod tests {
    use super::instruction;

    #[test]
    fn the_worker_name_picks_the_answer() {
        assert_eq!(instruction("alice"), Some(r#"{"instruction": "accept"}"#));
        assert_eq!(
            instruction("reject-bob"),
            Some(r#"{"instruction": "reject"}"#)
        );
        assert_eq!(instruction("ignore-carol"), None);
    }
}
