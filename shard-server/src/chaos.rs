//! An unreliable network, in process, for tests (`--chaos-percent`): like the 6.824 labrpc
//! "unreliable" mode, a share of requests are dropped before they run, a share of replies are
//! lost after the request ran, and others are delayed (so they overtake each other). Applied
//! to client requests and to shard migration (pulls are also cut off mid-stream).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tonic::Status;

/// Drops and delays with a given probability.
#[derive(Debug)]
pub struct Chaos {
    percent: u64,
    state: AtomicU64,
}

impl Chaos {
    /// Drops about `percent`% of requests and as many replies; delays about as many more.
    pub fn new(percent: u32) -> Chaos {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
            | 1;
        Chaos {
            percent: u64::from(percent.min(100)),
            state: AtomicU64::new(seed),
        }
    }

    /// A pseudo-random number (splitmix64 over a shared counter).
    fn next(&self) -> u64 {
        let mut z = self
            .state
            .fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed)
            .wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// True with probability `percent`%.
    pub fn roll(&self) -> bool {
        self.next() % 100 < self.percent
    }

    /// Before a request runs: maybe drop it, maybe delay it.
    pub async fn before(&self) -> Result<(), Status> {
        if self.roll() {
            return Err(Status::unavailable("chaos: request dropped"));
        }
        if self.roll() {
            let ms = self.next() % 100;
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        Ok(())
    }

    /// After a request ran: maybe lose its reply.
    pub fn after<T>(&self, result: Result<T, Status>) -> Result<T, Status> {
        if result.is_ok() && self.roll() {
            return Err(Status::unavailable("chaos: reply lost"));
        }
        result
    }
}
