//! The order of the callers in one queue: higher priority first, first come first served within a
//! priority. Kept in memory as a sorted vector, so a caller's position is a binary search and the
//! head is the first element; joining or leaving moves at most the tail of the vector, a few
//! microseconds for thousands of callers.

use std::cmp::Reverse;
use std::collections::HashMap;

use tokio::sync::mpsc;

use super::Dequeue;

/// Where a caller stands: its priority (higher first) and its arrival sequence (earlier first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Place {
    priority: Reverse<i32>,
    sequence: i64,
}

impl Place {
    pub fn new(priority: i32, sequence: i64) -> Self {
        Place {
            priority: Reverse(priority),
            sequence,
        }
    }
}

/// One waiting caller.
#[derive(Debug)]
pub struct Entry {
    pub call_sid: String,
    pub place: Place,
    pub priority: i32,
    pub enqueued_at: i64,
    /// Set while a dequeuer is handing the caller something; other dequeuers skip it.
    pub claimed: bool,
    /// Reaches the caller's session; `None` until a session takes the caller over after a restart.
    pub inbox: Option<mpsc::UnboundedSender<Box<Dequeue>>>,
}

impl Entry {
    /// Whether a dequeuer may take this caller: nobody is serving it and its session listens.
    pub fn available(&self) -> bool {
        !self.claimed && self.inbox.as_ref().is_some_and(|i| !i.is_closed())
    }
}

/// The callers of one queue in service order.
#[derive(Debug, Default)]
pub struct Procession {
    entries: Vec<Entry>,
    places: HashMap<String, Place>,
}

impl Procession {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn index(&self, call_sid: &str) -> Option<usize> {
        let place = self.places.get(call_sid)?;
        self.entries.binary_search_by_key(place, |e| e.place).ok()
    }

    /// Adds a caller and returns its 1-based position. A caller already present keeps its place.
    pub fn insert(&mut self, entry: Entry) -> usize {
        if let Some(index) = self.index(&entry.call_sid) {
            return index + 1;
        }
        let index = self
            .entries
            .binary_search_by_key(&entry.place, |e| e.place)
            .unwrap_or_else(|at| at);
        self.places.insert(entry.call_sid.clone(), entry.place);
        self.entries.insert(index, entry);
        index + 1
    }

    /// Removes a caller, returning its position when it left and its entry.
    pub fn remove(&mut self, call_sid: &str) -> Option<(usize, Entry)> {
        let index = self.index(call_sid)?;
        self.places.remove(call_sid);
        Some((index + 1, self.entries.remove(index)))
    }

    /// The 1-based position of a caller.
    pub fn position(&self, call_sid: &str) -> Option<usize> {
        self.index(call_sid).map(|i| i + 1)
    }

    pub fn get(&self, call_sid: &str) -> Option<&Entry> {
        self.index(call_sid).map(|i| &self.entries[i])
    }

    pub fn get_mut(&mut self, call_sid: &str) -> Option<&mut Entry> {
        self.index(call_sid).map(|i| &mut self.entries[i])
    }

    /// The first caller no dequeuer is serving yet and whose session can be reached.
    pub fn first_unclaimed(&mut self) -> Option<&mut Entry> {
        self.entries.iter_mut().find(|e| e.available())
    }

    /// Callers in service order.
    pub fn iter(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(call_sid: &str, priority: i32, sequence: i64) -> Entry {
        Entry {
            call_sid: call_sid.into(),
            place: Place::new(priority, sequence),
            priority,
            enqueued_at: sequence,
            claimed: false,
            inbox: None,
        }
    }

    fn order(procession: &Procession) -> Vec<&str> {
        procession.iter().map(|e| e.call_sid.as_str()).collect()
    }

    #[test]
    fn higher_priority_goes_first_and_equal_priorities_keep_arrival_order() {
        let mut procession = Procession::default();
        assert_eq!(procession.insert(entry("a", 0, 1)), 1);
        assert_eq!(procession.insert(entry("b", 0, 2)), 2);
        assert_eq!(procession.insert(entry("c", 5, 3)), 1);
        assert_eq!(procession.insert(entry("d", 5, 4)), 2);
        assert_eq!(procession.insert(entry("e", 0, 5)), 5);
        assert_eq!(order(&procession), ["c", "d", "a", "b", "e"]);
        assert_eq!(procession.position("a"), Some(3));
    }

    #[test]
    fn leaving_moves_everyone_behind_up_one() {
        let mut procession = Procession::default();
        for (i, sid) in ["a", "b", "c", "d"].into_iter().enumerate() {
            procession.insert(entry(sid, 0, i as i64));
        }
        let (position, left) = procession.remove("b").expect("b is queued");
        assert_eq!((position, left.call_sid.as_str()), (2, "b"));
        assert_eq!(procession.position("c"), Some(2));
        assert_eq!(procession.position("d"), Some(3));
        assert_eq!(procession.position("b"), None);
        assert!(procession.remove("b").is_none());
        assert_eq!(procession.len(), 3);
    }

    #[test]
    fn a_caller_inserted_twice_keeps_its_first_place() {
        let mut procession = Procession::default();
        procession.insert(entry("a", 0, 1));
        procession.insert(entry("b", 0, 2));
        assert_eq!(procession.insert(entry("a", 9, 3)), 1);
        assert_eq!(procession.len(), 2);
    }

    #[test]
    fn the_front_skips_claimed_and_unreachable_callers() {
        let mut procession = Procession::default();
        let (tx, _rx) = mpsc::unbounded_channel();
        let (closed, rx) = mpsc::unbounded_channel();
        drop(rx);
        let mut unreachable = entry("a", 0, 1);
        unreachable.inbox = Some(closed);
        procession.insert(unreachable);
        let mut claimed = entry("b", 0, 2);
        claimed.inbox = Some(tx.clone());
        claimed.claimed = true;
        procession.insert(claimed);
        let mut free = entry("c", 0, 3);
        free.inbox = Some(tx);
        procession.insert(free);
        assert_eq!(
            procession.first_unclaimed().map(|e| e.call_sid.clone()),
            Some("c".to_string())
        );
    }
}
