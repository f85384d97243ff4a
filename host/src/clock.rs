//! Time as the call-handling parts see it: the system clock, or a manual clock that moves only when
//! told to, so tests and demos can step through timeouts deterministically.
//!
//! Everything that waits on time (gather timeouts, ring timeouts, media playback) sleeps through a
//! [`Clock`] instead of `tokio::time`, and every sleeper is counted, so a test can check that a call
//! which ended left no timer behind.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::watch;

/// Which clock the host runs on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClockKind {
    /// Real time.
    #[default]
    System,
    /// Time stands still until an operator advances it (`POST /v1/Sim/Clock`).
    Manual,
}

/// A cloneable clock.
#[derive(Clone)]
pub struct Clock {
    manual: Option<Arc<Manual>>,
    sleepers: Arc<AtomicUsize>,
}

struct Manual {
    now: AtomicI64,
    changed: watch::Sender<i64>,
}

/// Decrements the sleeper count however a sleep ends (elapsed or cancelled).
struct Sleeping(Arc<AtomicUsize>);

impl Drop for Sleeping {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Clock {
    pub fn new(kind: ClockKind) -> Clock {
        let manual = match kind {
            ClockKind::System => None,
            ClockKind::Manual => {
                let now = crate::store::now_ms();
                Some(Arc::new(Manual {
                    now: AtomicI64::new(now),
                    changed: watch::channel(now).0,
                }))
            }
        };
        Clock {
            manual,
            sleepers: Arc::new(AtomicUsize::new(0)),
        }
    }

    pub fn is_manual(&self) -> bool {
        self.manual.is_some()
    }

    /// Unix milliseconds.
    pub fn now_ms(&self) -> i64 {
        match &self.manual {
            Some(manual) => manual.now.load(Ordering::SeqCst),
            None => crate::store::now_ms(),
        }
    }

    /// Sleeps for `ms` milliseconds of this clock's time.
    pub async fn sleep_ms(&self, ms: i64) {
        if ms <= 0 {
            return;
        }
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        let _sleeping = Sleeping(self.sleepers.clone());
        match &self.manual {
            None => tokio::time::sleep(Duration::from_millis(ms.unsigned_abs())).await,
            Some(manual) => {
                let deadline = manual.now.load(Ordering::SeqCst).saturating_add(ms);
                let mut changed = manual.changed.subscribe();
                // The sender lives as long as `manual`, which this future borrows.
                let _ = changed.wait_for(|now| *now >= deadline).await;
            }
        }
    }

    /// Sleeps until the clock reads `deadline_ms` (Unix ms). Unlike [`Clock::sleep_ms`], a manual
    /// clock advanced between computing the deadline and starting to sleep cannot push it back.
    pub async fn sleep_until_ms(&self, deadline_ms: i64) {
        match &self.manual {
            None => self.sleep_ms(deadline_ms - crate::store::now_ms()).await,
            Some(manual) => {
                if manual.now.load(Ordering::SeqCst) >= deadline_ms {
                    return;
                }
                self.sleepers.fetch_add(1, Ordering::SeqCst);
                let _sleeping = Sleeping(self.sleepers.clone());
                let mut changed = manual.changed.subscribe();
                let _ = changed.wait_for(|now| *now >= deadline_ms).await;
            }
        }
    }

    /// Moves a manual clock forward, waking every sleeper whose time has come. Returns the new time,
    /// or `None` on the system clock, which cannot be moved.
    pub fn advance(&self, ms: i64) -> Option<i64> {
        let manual = self.manual.as_ref()?;
        let now = manual.now.fetch_add(ms.max(0), Ordering::SeqCst) + ms.max(0);
        manual.changed.send_replace(now);
        Some(now)
    }

    /// Sleeps in progress: timers of live calls.
    pub fn pending_timers(&self) -> usize {
        self.sleepers.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn manual_sleepers_wake_only_when_advanced_far_enough() {
        let clock = Clock::new(ClockKind::Manual);
        let start = clock.now_ms();
        let sleeper = tokio::spawn({
            let clock = clock.clone();
            async move { clock.sleep_ms(5_000).await }
        });
        tokio::task::yield_now().await;
        while clock.pending_timers() == 0 {
            tokio::task::yield_now().await;
        }
        clock.advance(4_999);
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished());
        assert_eq!(clock.advance(1), Some(start + 5_000));
        sleeper.await.expect("sleeper finished");
        assert_eq!(clock.pending_timers(), 0);
    }

    #[tokio::test]
    async fn cancelled_sleeps_are_no_longer_counted() {
        let clock = Clock::new(ClockKind::Manual);
        let sleeper = tokio::spawn({
            let clock = clock.clone();
            async move { clock.sleep_ms(1_000).await }
        });
        while clock.pending_timers() == 0 {
            tokio::task::yield_now().await;
        }
        sleeper.abort();
        let _ = sleeper.await;
        assert_eq!(clock.pending_timers(), 0);
        assert_eq!(Clock::new(ClockKind::System).advance(5), None);
    }
}
