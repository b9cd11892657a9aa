//! Events waiting for their time in a simulation.
//!
//! Order is `(time, push order)`: the earliest time first, and among events of one time the
//! one pushed first. Ties therefore break by the run's own history, never by the events'
//! contents or by hashing, so a seed replays the same order.

use std::collections::BTreeMap;

/// Items due at a time (a tick or a simulated millisecond), popped earliest first.
///
/// ```
/// use strata_paxos::sim::EventQueue;
///
/// let mut q = EventQueue::new();
/// q.push(5, "late");
/// q.push(2, "early");
/// q.push(2, "early, pushed second");
/// assert_eq!(q.pop_due(1), None);
/// assert_eq!(q.pop(), Some((2, "early")));
/// assert_eq!(q.pop_due(2), Some((2, "early, pushed second")));
/// assert_eq!(q.len(), 1);
/// ```
#[derive(Clone, Debug)]
pub struct EventQueue<T> {
    items: BTreeMap<(u64, u64), T>,
    pushed: u64,
}

impl<T> Default for EventQueue<T> {
    fn default() -> Self {
        EventQueue {
            items: BTreeMap::new(),
            pushed: 0,
        }
    }
}

impl<T> EventQueue<T> {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `item`, due at `at`.
    pub fn push(&mut self, at: u64, item: T) {
        self.pushed += 1;
        self.items.insert((at, self.pushed), item);
    }

    /// The earliest item and its time.
    pub fn pop(&mut self) -> Option<(u64, T)> {
        self.items.pop_first().map(|((at, _), item)| (at, item))
    }

    /// The earliest item and its time, if it is due at `now` (its time is `now` or earlier).
    pub fn pop_due(&mut self, now: u64) -> Option<(u64, T)> {
        let entry = self.items.first_entry()?;
        if entry.key().0 > now {
            return None;
        }
        let (at, _) = *entry.key();
        Some((at, entry.remove()))
    }

    /// Items waiting.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// No item waits.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}
