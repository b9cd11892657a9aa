//! Power loss, simulated with `FaultFs`: at a random moment the file system forgets everything
//! that was not synced (file data past the last `sync`, directory entries not followed by
//! `sync_dir`). SIGKILL cannot test this, because the page cache survives a killed process.
//!
//! After every cut the database must reopen to the state after some prefix of the batches
//! written, and that prefix must include every batch acknowledged with `sync: true`.

use std::path::Path;
use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use strata::fs::fault::FaultFs;
use strata::{Db, Error, Options, WriteBatch, WriteOptions};

mod common;
use common::crash::History;
use common::{contents, Batch, Model};

fn options(fs: &FaultFs) -> Options {
    Options {
        fs: Arc::new(fs.clone()),
        // Tiny memtables: WAL switches and background flushes race with the cut.
        write_buffer_size: 8 * 1024,
        block_size: 256,
        ..Options::create()
    }
}

fn random_batch(rng: &mut StdRng) -> Batch {
    (0..rng.random_range(1..6))
        .map(|_| {
            let k = format!("key{:03}", rng.random_range(0..120)).into_bytes();
            let v = rng.random_bool(0.85).then(|| {
                let len = rng.random_range(0..300);
                let fill: u8 = rng.random();
                vec![fill; len]
            });
            (k, v)
        })
        .collect()
}

fn run_seed(seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let fs = FaultFs::new();
    let path = Path::new("/db");
    // State recovered after the previous cut, and the batches written since.
    let mut base = Model::new();
    for cut in 0..4 {
        let db =
            Db::open(path, options(&fs)).unwrap_or_else(|e| panic!("seed {seed} cut {cut}: {e}"));
        assert_eq!(
            contents(&db),
            base,
            "seed {seed} cut {cut}: reopen changed the state"
        );
        let mut history = History::default();
        for _ in 0..rng.random_range(20..300) {
            let batch = random_batch(&mut rng);
            history.write(&db, batch, rng.random_bool(0.2));
            if rng.random_bool(0.02) {
                db.flush().unwrap();
            }
        }
        fs.power_cut();
        drop(db); // its handles are dead: nothing it does now reaches the "disk"

        let db =
            Db::open(path, options(&fs)).unwrap_or_else(|e| panic!("seed {seed} cut {cut}: {e}"));
        history.assert_recovered_prefix(&db, &mut base, &format!("seed {seed} cut {cut}"));
        db.close().unwrap();
    }
}

#[test]
fn power_cuts_keep_every_synced_write_and_a_consistent_prefix() {
    let first: u64 = rand::rng().random();
    println!("seeds {first}..+40");
    for i in 0..40 {
        run_seed(first.wrapping_add(i));
    }
}

#[test]
fn unsynced_writes_may_vanish_but_synced_ones_do_not() {
    let fs = FaultFs::new();
    let path = Path::new("/db");
    let db = Db::open(path, options(&fs)).unwrap();
    db.write_opt(
        {
            let mut b = WriteBatch::new();
            b.put("synced", "1");
            b
        },
        &WriteOptions { sync: true },
    )
    .unwrap();
    db.put("unsynced", "2").unwrap();
    fs.power_cut();
    drop(db);
    let db = Db::open(path, options(&fs)).unwrap();
    assert_eq!(db.get("synced").unwrap(), Some(b"1".to_vec()));
    // Power loss forgets what was never synced (SIGKILL would have kept it).
    assert_eq!(db.get("unsynced").unwrap(), None);
}

#[test]
fn a_failed_sync_poisons_the_database() {
    let fs = FaultFs::new();
    let path = Path::new("/db");
    let db = Db::open(path, options(&fs)).unwrap();
    db.put("before", "1").unwrap();
    fs.fail_syncs(true);
    let err = db
        .write_opt(
            {
                let mut b = WriteBatch::new();
                b.put("during", "2");
                b
            },
            &WriteOptions { sync: true },
        )
        .unwrap_err();
    assert!(matches!(err, Error::Io(_) | Error::Poisoned(_)), "{err}");
    fs.fail_syncs(false);
    // Not retried: the state of the failed sync is unknown, so every later write fails.
    assert!(matches!(db.put("after", "3"), Err(Error::Poisoned(_))));
    assert!(matches!(db.flush(), Err(Error::Poisoned(_))));
    // Reads still work.
    assert_eq!(db.get("before").unwrap(), Some(b"1".to_vec()));
    fs.power_cut();
    drop(db);
    let db = Db::open(path, options(&fs)).unwrap();
    assert_eq!(db.get("after").unwrap(), None);
    db.put("after reopen", "4").unwrap();
}
