//! Deadlines of the routing engine: reservation timeouts, routing-step timeouts and task TTLs.
//!
//! Every deadline is also stored with the resource it belongs to (`reservations.timeout_at`,
//! `tasks.step_deadline`, the task's creation time plus its timeout), so after a restart the loader
//! re-arms them from the database and they fire on schedule. A fired timer is checked against the
//! live state before it acts, so timers never need cancelling when a reservation is answered or a
//! task moves on: a stale one does nothing.

use std::collections::BTreeSet;
use std::sync::Mutex;

use tokio::sync::Notify;

/// What a deadline is for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Timer {
    /// A pending reservation times out.
    Reservation(String),
    /// A task's routing step times out.
    Step(String),
    /// A task's time to live ends.
    Ttl(String),
}

/// The armed deadlines of every workspace, earliest first.
#[derive(Default)]
pub struct Timers {
    armed: Mutex<BTreeSet<(i64, String, Timer)>>,
    changed: Notify,
}

impl Timers {
    /// Arms deadlines of one workspace; wakes the timer loop when one is earlier than any armed.
    pub fn arm(&self, workspace_sid: &str, deadlines: impl IntoIterator<Item = (i64, Timer)>) {
        let mut armed = self.armed.lock().unwrap_or_else(|p| p.into_inner());
        let earliest = armed.first().map(|(at, _, _)| *at);
        let mut sooner = false;
        for (at, timer) in deadlines {
            sooner |= earliest.is_none_or(|e| at < e);
            armed.insert((at, workspace_sid.to_string(), timer));
        }
        drop(armed);
        if sooner {
            self.changed.notify_one();
        }
    }

    /// Forgets deadlines that can no longer matter (their task finished).
    pub fn disarm(&self, workspace_sid: &str, deadlines: impl IntoIterator<Item = (i64, Timer)>) {
        let mut armed = self.armed.lock().unwrap_or_else(|p| p.into_inner());
        for (at, timer) in deadlines {
            armed.remove(&(at, workspace_sid.to_string(), timer));
        }
    }

    /// The earliest armed deadline.
    pub fn next(&self) -> Option<i64> {
        self.armed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .first()
            .map(|(at, _, _)| *at)
    }

    /// Takes every deadline due at `now`.
    pub fn due(&self, now: i64) -> Vec<(i64, String, Timer)> {
        let mut armed = self.armed.lock().unwrap_or_else(|p| p.into_inner());
        let mut due = Vec::new();
        while let Some(first) = armed.first() {
            if first.0 > now {
                break;
            }
            if let Some(entry) = armed.pop_first() {
                due.push(entry);
            }
        }
        due
    }

    /// Forgets every deadline of a workspace (it was deleted).
    pub fn forget_workspace(&self, workspace_sid: &str) {
        self.armed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(_, ws, _)| ws != workspace_sid);
    }

    /// Resolves when a sooner deadline is armed.
    pub async fn changed(&self) {
        self.changed.notified().await;
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.armed.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_takes_only_what_has_come_in_deadline_order() {
        let timers = Timers::default();
        timers.arm(
            "WS1",
            [
                (30, Timer::Ttl("WT1".into())),
                (10, Timer::Reservation("WR1".into())),
                (20, Timer::Step("WT1".into())),
            ],
        );
        assert_eq!(timers.next(), Some(10));
        let due = timers.due(20);
        assert_eq!(
            due.iter().map(|(at, _, _)| *at).collect::<Vec<_>>(),
            vec![10, 20]
        );
        assert_eq!(timers.len(), 1);
        timers.forget_workspace("WS1");
        assert_eq!(timers.next(), None);
    }
}
