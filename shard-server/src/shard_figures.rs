//! How many keys and bytes each shard holds: `strata_shard_keys{shard}` and
//! `strata_shard_bytes{shard}`, and the same figures in the replica's `NodeStatus`.
//!
//! # The choice: a periodic, paced background count
//!
//! Every [`INTERVAL`] (sooner when the set of served shards changes), a task on a blocking
//! thread counts the data range of every shard the replica serves (see [`crate::keys`]: a shard's data is one contiguous key range), in
//! chunks of [`CHUNK`] entries, each chunk a fresh engine iterator starting after the last
//! key seen, so no iterator (and no version of the engine's files) is held for longer than
//! one chunk. It never takes a lock the request path waits on: the shared view's read lock
//! only for a moment to see which shards are served (and between chunks, to stop counting a
//! shard that left), the store's only to clone its handle.
//!
//! The alternatives were worse for this server: exact counts kept by the state machine need
//! the old value of every key a `Put` overwrites, an extra engine read per write on the apply
//! path (a `Put` is a blind write today); and the engine has no approximate size of a key
//! range to ask (it stays free of this server's concerns).
//!
//! # Cost
//!
//! Reading every live entry of every served shard once per pass, at most
//! [`MAX_ENTRIES_PER_SECOND`] entries per second in total: beyond that the count sleeps
//! between chunks. Small shards are counted every few seconds; a server holding many
//! millions of keys spends at most that rate of reads on counting, and its passes take
//! longer (`keys / MAX_ENTRIES_PER_SECOND` seconds), then wait [`INTERVAL`].
//!
//! # What the figures mean, and their error
//!
//! - `keys`: live user keys of the shard; `bytes`: the sum of their lengths and their
//!   values' lengths — user data, not on-disk size (no compression, no obsolete versions or
//!   tombstones waiting for compaction, no dedup tables).
//! - They are the result of the last *completed* count: they lag writes by up to one
//!   interval plus the length of a pass (a shard newly served is counted within about
//!   [`WATCH`] plus a pass). A pass is not a point-in-time snapshot across
//!   chunks: keys written or deleted during a count, behind the chunk being read, are
//!   missed, so a count is off by at most the keys changed while it ran.
//! - A shard is counted only once it is served (a shard being pulled shows its migration
//!   bytes instead); a shard that leaves loses its figures at the start of the next pass.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::RwLock;

use crate::keys;
use crate::machine::View;
use crate::metrics::{Counted, ShardMetrics};
use crate::shard_state::ShardState;
use crate::store::{Store, StoreError};

/// Pause between the end of one pass and the start of the next.
pub const INTERVAL: Duration = Duration::from_secs(5);
/// How often the served shards are compared with those of the last pass: a shard newly
/// served is counted this soon, not an [`INTERVAL`] later.
pub const WATCH: Duration = Duration::from_millis(250);
/// Entries read per engine iterator.
pub const CHUNK: usize = 1024;
/// At most this many entries read per second, over all shards of a pass.
pub const MAX_ENTRIES_PER_SECOND: u64 = 200_000;

/// Counts the live keys of `shard` in `store` and their bytes (see the module doc), in
/// chunks of [`CHUNK`] entries. After each chunk `go_on` is called with the entries read so
/// far; `false` stops the count (`Ok(None)`).
pub fn count_shard(
    store: &dyn Store,
    shard: u32,
    mut go_on: impl FnMut(u64) -> bool,
) -> Result<Option<Counted>, StoreError> {
    let (mut start, end) = keys::data_range(shard);
    // The data prefix before a user key: namespace, shard, kind.
    let prefix = start.len();
    let mut counted = Counted::default();
    loop {
        let mut read = 0;
        let mut last = None;
        for entry in store.scan(&start, &end).take(CHUNK) {
            let (key, value) = entry?;
            read += 1;
            counted.keys += 1;
            counted.bytes += (key.len().saturating_sub(prefix) + value.len()) as u64;
            last = Some(key);
        }
        match last {
            Some(mut key) if read == CHUNK => {
                // The next chunk starts right after the last key read.
                key.push(0);
                start = key;
            }
            _ => return Ok(Some(counted)),
        }
        if !go_on(counted.keys) {
            return Ok(None);
        }
    }
}

/// Keeps the entries read within [`MAX_ENTRIES_PER_SECOND`] by sleeping.
struct Pacer {
    started: Instant,
    per_second: u64,
    read: u64,
}

impl Pacer {
    fn new(per_second: u64) -> Pacer {
        Pacer {
            started: Instant::now(),
            per_second: per_second.max(1),
            read: 0,
        }
    }

    /// `entries` more were read: sleeps until reading them was allowed.
    fn read(&mut self, entries: u64) {
        self.read += entries;
        let allowed_at = Duration::from_secs_f64(self.read as f64 / self.per_second as f64);
        if let Some(wait) = allowed_at.checked_sub(self.started.elapsed()) {
            std::thread::sleep(wait);
        }
    }
}

/// The shards `view` says this replica serves, ascending.
fn served(view: &View) -> Vec<u32> {
    (0u32..)
        .zip(&view.shards)
        .filter(|(_, s)| s.is_served())
        .map(|(shard, _)| shard)
        .collect()
}

fn is_served(view: &RwLock<View>, shard: u32) -> bool {
    view.read()
        .shards
        .get(shard as usize)
        .is_some_and(ShardState::is_served)
}

/// One pass: counts every served shard and publishes the figures in `metrics`, forgetting
/// those of shards no longer served.
pub fn count_pass(store: &dyn Store, view: &RwLock<View>, metrics: &ShardMetrics) {
    let held = served(&view.read());
    metrics.retain_counted(&held);
    let mut pacer = Pacer::new(MAX_ENTRIES_PER_SECOND);
    for shard in held {
        let mut previous = 0;
        let counted = count_shard(store, shard, |so_far| {
            pacer.read(so_far - previous);
            previous = so_far;
            is_served(view, shard)
        });
        match counted {
            Ok(Some(c)) if is_served(view, shard) => {
                pacer.read(c.keys - previous);
                metrics.set_counted(shard, c);
            }
            Ok(_) => {} // the shard left meanwhile
            Err(e) => tracing::warn!(shard, error = %e, "counting a shard's keys failed"),
        }
    }
}

/// Counts, [`INTERVAL`] after the previous pass ended, or sooner once the served shards
/// change (checked every [`WATCH`]), until the task is aborted.
pub async fn run(store: Arc<dyn Store>, view: Arc<RwLock<View>>, metrics: ShardMetrics) {
    loop {
        let counted = served(&view.read());
        let pass = {
            let (store, view, metrics) = (store.clone(), view.clone(), metrics.clone());
            tokio::task::spawn_blocking(move || count_pass(&*store, &view, &metrics))
        };
        if let Err(e) = pass.await {
            tracing::warn!(error = %e, "a pass counting the shards' keys failed");
        }
        let next = tokio::time::Instant::now() + INTERVAL;
        while tokio::time::Instant::now() < next && served(&view.read()) == counted {
            tokio::time::sleep(WATCH).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemStore;
    use strata::WriteBatch;

    fn put(store: &MemStore, shard: u32, key: &[u8], value: &[u8]) {
        let mut batch = WriteBatch::new();
        batch.put(keys::data_key(shard, key), value);
        store.write(batch, false).unwrap();
    }

    #[test]
    fn a_count_sees_every_key_of_the_shard_across_chunks_and_nothing_else() {
        let store = MemStore::new();
        let n = CHUNK * 2 + 7;
        let mut bytes = 0;
        for i in 0..n {
            let key = format!("key{i:05}");
            put(&store, 4, key.as_bytes(), b"value");
            bytes += key.len() + 5;
        }
        // Neighbours, sessions and metadata are not the shard's data.
        put(&store, 3, b"k", b"v");
        put(&store, 5, b"", b"v");
        let mut batch = WriteBatch::new();
        batch
            .put(keys::session_key(4, 1), b"session")
            .put(keys::APPLIED, b"x");
        store.write(batch, false).unwrap();
        let mut chunks = 0;
        let counted = count_shard(&store, 4, |_| {
            chunks += 1;
            true
        })
        .unwrap();
        assert_eq!(
            counted,
            Some(Counted {
                keys: n as u64,
                bytes: bytes as u64
            })
        );
        assert_eq!(
            chunks, 2,
            "three chunks, asked to go on after the first two"
        );
        assert_eq!(count_shard(&store, 4, |_| false).unwrap(), None, "stopped");
        assert_eq!(
            count_shard(&store, 9, |_| true).unwrap(),
            Some(Counted::default())
        );
        // The empty key and keys that extend each other.
        put(&store, 6, b"", b"");
        put(&store, 6, b"a", b"1");
        put(&store, 6, b"a\0", b"22");
        let counted = count_shard(&store, 6, |_| true).unwrap().unwrap();
        assert_eq!((counted.keys, counted.bytes), (3, 1 + 1 + 2 + 2));
    }

    #[test]
    fn a_pass_counts_served_shards_and_forgets_shards_that_left() {
        let store = MemStore::new();
        put(&store, 0, b"a", b"12");
        put(&store, 1, b"bb", b"1");
        put(&store, 2, b"ccc", b"");
        let view = RwLock::new(View {
            shards: vec![
                ShardState::Serving,
                ShardState::Notifying { from: 2 },
                ShardState::Leaving { to: 3 },
            ],
            ..View::default()
        });
        let metrics = ShardMetrics::default();
        count_pass(&store, &view, &metrics);
        assert_eq!(metrics.counted(0), Some(Counted { keys: 1, bytes: 3 }));
        assert_eq!(metrics.counted(1), Some(Counted { keys: 1, bytes: 3 }));
        assert_eq!(metrics.counted(2), None, "leaving: not served");
        view.write().shards[0] = ShardState::Leaving { to: 3 };
        count_pass(&store, &view, &metrics);
        assert_eq!(metrics.counted(0), None, "left");
        assert!(metrics.counted(1).is_some());
    }
}
