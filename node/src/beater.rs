//! Keeps a busy leader's followers from taking it for dead.
//!
//! The driver feeds its replica nothing while it persists a round or applies what was chosen
//! (the `Ready` contract), so a leader cannot beat during either. Both can outlast an
//! election timeout: a 15 MiB value costs a synced write in the Paxos log and another in the
//! state machine's store, on a slow disk most of a second each. Its followers would then
//! elect someone else after every large value, and with a few such values in flight a group
//! can keep electing instead of committing.
//!
//! So while the driver is busy, a task of its own repeats the leader's last heartbeats every
//! heartbeat interval. A copy of a message already sent is one the network could have
//! duplicated anyway: it vouches for nothing new (same ballot, same commit index, same read
//! round). A leader that stays busy longer than [`Beater::spawn`]'s `limit` (a hung disk)
//! stops beating, so that its group replaces it.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use strata_paxos::Message;
use tokio::time::Instant;

use crate::transport::Transport;

/// The driver's side of the beater. Dropping it ends the task.
pub(crate) struct Beater {
    state: Arc<Mutex<State>>,
    _task: AbortOnDrop,
}

/// What the task repeats, and since when the driver is busy. The lock is held to swap or
/// clone these, never across a send.
#[derive(Default)]
struct State {
    /// The heartbeats this replica sent last as a leader; empty when it is not one.
    heartbeats: Vec<Message>,
    /// Set while the driver persists or applies a round.
    busy_since: Option<Instant>,
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The driver is busy while this lives (see [`Beater::busy`]).
pub(crate) struct Busy(Arc<Mutex<State>>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.lock().busy_since = None;
    }
}

impl Beater {
    /// Starts the task on the current runtime: every `period`, while the driver has been busy
    /// for at least `period` and at most `limit`, it sends the last heartbeats again.
    pub(crate) fn spawn(transport: Arc<dyn Transport>, period: Duration, limit: Duration) -> Self {
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let now = tick.tick().await;
                let again = {
                    let s = shared.lock();
                    match s.busy_since {
                        Some(since) if (period..=limit).contains(&(now - since)) => {
                            s.heartbeats.clone()
                        }
                        _ => continue,
                    }
                };
                if !again.is_empty() {
                    transport.send(again);
                }
            }
        });
        Beater {
            state,
            _task: AbortOnDrop(task),
        }
    }

    /// Records the heartbeats a leader just sent (empty: it leads no more).
    pub(crate) fn set_heartbeats(&self, heartbeats: Vec<Message>) {
        self.state.lock().heartbeats = heartbeats;
    }

    /// Marks the driver busy until the guard is dropped.
    pub(crate) fn busy(&self) -> Busy {
        self.state.lock().busy_since = Some(Instant::now());
        Busy(self.state.clone())
    }
}
