//! Helpers shared by the crash and power-loss tests: child writers killed with SIGKILL, and the
//! checks that a recovered database holds a prefix of what was written.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use strata::{Db, WriteBatch, WriteOptions};

use super::{apply, contents, to_write_batch, Batch, Model};

/// The length of the prefix of `history` whose state (applied to `base`) equals `found`,
/// searching from `durable` (the synced prefix, which must survive) upwards.
pub fn matching_prefix(
    base: &Model,
    history: &[Batch],
    durable: usize,
    found: &Model,
) -> Option<usize> {
    let mut model = base.clone();
    for b in &history[..durable] {
        apply(&mut model, b);
    }
    if model == *found {
        return Some(durable);
    }
    for (i, b) in history.iter().enumerate().skip(durable) {
        apply(&mut model, b);
        if model == *found {
            return Some(i + 1);
        }
    }
    None
}

/// Re-runs this test binary's test `test_name` with `env` set to `db` (the test then acts as
/// the child writer), SIGKILLs it after `after`, and returns the lines it printed.
pub fn run_child_and_kill(test_name: &str, env: &str, db: &Path, after: Duration) -> Vec<String> {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([test_name, "--exact", "--nocapture", "--test-threads=1"])
        .env(env, db)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
    });
    std::thread::sleep(after);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    reader.join().unwrap()
}

/// The last `ack N` line's N.
pub fn last_ack(lines: &[String]) -> Option<u64> {
    lines
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix("ack ")?.trim().parse().ok())
}

/// The largest acknowledged batch so far: `max_acked` raised to the last `ack N` of `lines`.
pub fn raise_max_ack(max_acked: &mut Option<u64>, lines: &[String]) {
    if let Some(n) = last_ack(lines) {
        *max_acked = Some(max_acked.map_or(n, |m| m.max(n)));
    }
}

// ---------------------------------------------------------------------------------------------
// SIGKILL: a child writes numbered batches and keeps a `next` key beside them.

/// Key `j` of a child writer's batch `batch`.
pub fn batch_key(batch: u64, j: u64) -> Vec<u8> {
    format!("b{batch:08}-{j}").into_bytes()
}

/// The number of batches a child writer has on disk: its `next` key (0 when absent).
pub fn recovered_next(db: &Db) -> u64 {
    db.get(b"next")
        .unwrap()
        .map(|v| u64::from_le_bytes(v.try_into().unwrap()))
        .unwrap_or(0)
}

/// The batches of a child writer: batch `n` holds `keys_per_batch` keys [`batch_key`]`(n, j)`
/// with `value(n, j)`, what `extra(n, ..)` adds, and the `next` key (`n + 1`); `other_keys` is
/// how many keys `extra` leaves in the database after `next` batches.
pub struct Batches {
    pub keys_per_batch: u64,
    pub value: fn(u64, u64) -> Vec<u8>,
    pub extra: fn(u64, &mut WriteBatch),
    pub other_keys: fn(u64) -> u64,
    /// Every this many batches is written with `sync`.
    pub sync_every: u64,
}

impl Batches {
    /// The child writer: continues from the batch after the last one on `db`, forever, and
    /// prints `ack N` after batch `N` returns, followed by what `report(db, N)` returns.
    pub fn write_forever(&self, db: &Db, report: fn(&Db, u64) -> Option<String>) -> ! {
        let next = recovered_next(db);
        let mut out = std::io::stdout().lock();
        for n in next.. {
            let mut b = WriteBatch::new();
            for j in 0..self.keys_per_batch {
                b.put(batch_key(n, j), (self.value)(n, j));
            }
            (self.extra)(n, &mut b);
            b.put(b"next", (n + 1).to_le_bytes());
            let sync = n % self.sync_every == 0;
            db.write_opt(b, &WriteOptions { sync })
                .expect("child write");
            writeln!(out, "ack {n}").expect("stdout");
            if let Some(line) = report(db, n) {
                writeln!(out, "{line}").expect("stdout");
            }
            out.flush().expect("stdout");
        }
        unreachable!()
    }

    /// Asserts that `db` holds a prefix of the batches that includes every acknowledged one:
    /// every batch below `next` is complete, the one at `next` (if it got in partially) is
    /// absent entirely, and no other key is there. Returns `next`.
    pub fn assert_recovered_prefix(&self, db: &Db, max_acked: Option<u64>, what: &str) -> u64 {
        let next = recovered_next(db);
        if let Some(m) = max_acked {
            assert!(
                next > m,
                "{what}: batch {m} was acknowledged but next = {next}"
            );
        }
        for b in 0..next {
            for j in 0..self.keys_per_batch {
                assert_eq!(
                    db.get(batch_key(b, j)).unwrap(),
                    Some((self.value)(b, j)),
                    "{what}: batch {b} key {j}"
                );
            }
        }
        for j in 0..self.keys_per_batch {
            assert_eq!(
                db.get(batch_key(next, j)).unwrap(),
                None,
                "{what}: partial batch {next}"
            );
        }
        let total = db.scan::<&[u8]>(..).count() as u64;
        assert_eq!(
            total,
            next * self.keys_per_batch + (self.other_keys)(next) + u64::from(next > 0),
            "{what}: stray keys"
        );
        next
    }
}

// ---------------------------------------------------------------------------------------------
// Power loss: the test itself writes, then cuts.

/// The batches written since the state last recovered, and how many of them were synced.
#[derive(Default)]
pub struct History {
    batches: Vec<Batch>,
    durable: usize,
}

impl History {
    /// Writes `batch` to `db`, synced if `sync`, and records it.
    pub fn write(&mut self, db: &Db, batch: Batch, sync: bool) {
        db.write_opt(to_write_batch(&batch), &WriteOptions { sync })
            .unwrap();
        self.batches.push(batch);
        if sync {
            self.durable = self.batches.len();
        }
    }

    /// Asserts that `db` holds the state after some prefix of the history applied to `base`,
    /// one that includes every synced batch, and advances `base` to that state.
    pub fn assert_recovered_prefix(&self, db: &Db, base: &mut Model, what: &str) {
        let found = contents(db);
        let Some(p) = matching_prefix(base, &self.batches, self.durable, &found) else {
            panic!(
                "{what}: recovered state is not a prefix of the {} batches written that \
                 includes the {} synced ones",
                self.batches.len(),
                self.durable
            );
        };
        for b in &self.batches[..p] {
            apply(base, b);
        }
    }
}
