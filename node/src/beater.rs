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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use strata_paxos::{Ballot, Body};

    use super::*;
    use crate::state_machine::SnapshotStream;

    /// Counts the heartbeats sent through it.
    #[derive(Default)]
    struct Counting(AtomicUsize);

    impl Transport for Counting {
        fn send(&self, messages: Vec<Message>) {
            self.0.fetch_add(messages.len(), Ordering::SeqCst);
        }
        fn send_snapshot(
            &self,
            _: strata_paxos::ReplicaId,
            _: strata_paxos::Slot,
            _: Option<strata_paxos::Membership>,
            _: SnapshotStream,
        ) {
        }
    }

    fn heartbeat(to: u64) -> Message {
        let ballot = Ballot {
            round: 3,
            replica: 1,
        };
        let (commit, read_round) = (7, 0);
        Message {
            from: 1,
            to,
            body: Body::Heartbeat {
                ballot,
                commit,
                read_round,
            },
        }
    }

    const PERIOD: Duration = Duration::from_millis(40);

    /// Time moves only when every task waits (the runtime's paused clock).
    async fn wait(periods: u32) {
        tokio::time::sleep(PERIOD * periods).await;
    }

    #[tokio::test(start_paused = true)]
    async fn beats_only_while_busy_and_within_the_limit() {
        let transport = Arc::new(Counting::default());
        let beater = Beater::spawn(transport.clone(), PERIOD, PERIOD * 10);
        let sent = || transport.0.load(Ordering::SeqCst);
        beater.set_heartbeats(vec![heartbeat(2), heartbeat(3)]);
        wait(5).await;
        assert_eq!(sent(), 0, "an idle driver beats itself");
        let busy = beater.busy();
        wait(4).await;
        let during = sent();
        assert!(
            (4..=8).contains(&during),
            "busy for 4 periods: {during} heartbeats repeated (2 peers)"
        );
        drop(busy);
        wait(5).await;
        assert_eq!(sent(), during, "beats after the round ended");
        // A leader no more: nothing to repeat.
        beater.set_heartbeats(Vec::new());
        let busy = beater.busy();
        wait(4).await;
        assert_eq!(sent(), during, "a follower repeated heartbeats");
        drop(busy);
        // Busy past the limit (a hung disk): the beats stop.
        beater.set_heartbeats(vec![heartbeat(2)]);
        let _busy = beater.busy();
        wait(12).await;
        let by_limit = sent();
        wait(10).await;
        assert_eq!(sent(), by_limit, "beats past the limit");
        assert!(by_limit > during, "no beats before the limit");
    }
}
