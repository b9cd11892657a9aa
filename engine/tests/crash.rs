//! Crash recovery: a child process writes batches (some of them synced) and is SIGKILLed at a
//! random moment, again and again. After every kill the database must reopen with every
//! acknowledged batch present and every batch all-or-nothing. Each test runs this with other
//! settings: the WAL written through a mapping (the default) or with `write(2)`, small logs or
//! logs that grow over several of the mapping's segments.
//!
//! The child is this same test binary, re-executed with `STRATA_CRASH_CHILD` set: it then runs
//! the writer loop instead of the test, printing `ack N` after batch `N` returns.

use std::path::Path;
use std::time::Duration;

use rand::{Rng, SeedableRng};

use strata::{Db, Options};

mod common;
use common::crash::{raise_max_ack, recovered_next, run_child_and_kill, Batches};

const CHILD_ENV: &str = "STRATA_CRASH_CHILD";
const KEYS_PER_BATCH: u64 = 7;

/// What a test varies.
struct Variant {
    /// Its test function's name (the child re-runs it).
    test: &'static str,
    options: fn() -> Options,
    /// Every this many batches is written with `sync`.
    sync_every: u64,
}

fn small_logs() -> Options {
    Options {
        write_buffer_size: 64 * 1024, // many WAL switches and flushes while being killed
        block_size: 1024,
        ..Options::create()
    }
}

fn batch_value(batch: u64, j: u64) -> Vec<u8> {
    let len = 10 + (batch * 131 + j * 17) % 900;
    (0..len).map(|i| (batch + j + i) as u8).collect()
}

/// What the child writes with `v`'s settings.
fn batches(v: &Variant) -> Batches {
    Batches {
        keys_per_batch: KEYS_PER_BATCH,
        value: batch_value,
        extra: |_, _| {},
        other_keys: |_| 0,
        sync_every: v.sync_every,
    }
}

/// The writer: continues from the batch after the last one on disk, forever.
fn child(dir: &Path, v: &Variant) -> ! {
    let db = Db::open(dir, (v.options)()).expect("child open");
    batches(v).write_forever(&db, |_, _| None)
}

#[test]
fn sigkill_during_writes_loses_no_acknowledged_batch() {
    kill_and_recover(&Variant {
        test: "sigkill_during_writes_loses_no_acknowledged_batch",
        options: small_logs,
        sync_every: 2,
    });
}

#[test]
fn sigkill_during_writes_through_write_syscalls_loses_no_acknowledged_batch() {
    kill_and_recover(&Variant {
        test: "sigkill_during_writes_through_write_syscalls_loses_no_acknowledged_batch",
        options: || Options {
            wal_mmap_writes: false,
            ..small_logs()
        },
        sync_every: 2,
    });
}

#[test]
fn sigkill_during_writes_to_a_log_of_several_segments_loses_no_acknowledged_batch() {
    kill_and_recover(&Variant {
        test: "sigkill_during_writes_to_a_log_of_several_segments_loses_no_acknowledged_batch",
        // Logs of megabytes, mostly unsynced: the kill lands in a late segment of the mapping.
        options: || Options {
            write_buffer_size: 16 << 20,
            ..Options::create()
        },
        sync_every: 64,
    });
}

fn kill_and_recover(v: &Variant) {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        child(Path::new(&dir), v);
    }
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("db");
    let seed: u64 = rand::rng().random();
    println!("seed {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let batches = batches(v);
    let mut max_acked: Option<u64> = None;
    for round in 0..12 {
        let lines = run_child_and_kill(
            v.test,
            CHILD_ENV,
            &db_path,
            Duration::from_millis(rng.random_range(50..400)),
        );
        raise_max_ack(&mut max_acked, &lines);

        let db = Db::open(&db_path, (v.options)()).unwrap();
        let next = recovered_next(&db);
        println!("round {round}: last acknowledged batch {max_acked:?}, recovered through {next}");
        batches.assert_recovered_prefix(&db, max_acked, &format!("round {round}"));
        db.close().unwrap();
    }
    assert!(max_acked.is_some(), "the child never acknowledged a write");
}
