//! Crashes while flushes and compactions run: the crash test (SIGKILL of a child writer) and
//! the power-loss test (`FaultFs`), with kilobyte-sized levels so that compactions are in
//! progress at almost every kill or cut.
//!
//! After every recovery: every acknowledged (SIGKILL) or synced (power loss) batch is present,
//! batches are all-or-nothing, the version is consistent, and no orphan table is left behind:
//! every `.sst` in the directory is one the version names.
//!
//! Recovery is checked with options that never start a compaction, so that no background job
//! creates a file between opening and listing the directory.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use strata::fs::fault::FaultFs;
use strata::fs::FileSystem;
use strata::{Db, Options};

mod common;
use common::crash::{raise_max_ack, recovered_next, run_child_and_kill, Batches, History};
use common::{contents, Batch, Model};

/// Kilobyte-sized memtables, levels and files: a flush every few batches, a compaction every
/// other flush, several levels within a second of writing.
fn tiny() -> Options {
    Options {
        write_buffer_size: 16 * 1024,
        block_size: 512,
        level0_file_num_compaction_trigger: 2,
        level0_slowdown_writes_trigger: 6,
        level0_stop_writes_trigger: 10,
        max_bytes_for_level_base: 32 * 1024,
        max_bytes_for_level_multiplier: 3,
        target_file_size: 8 * 1024,
        max_background_jobs: 2,
        ..Options::create()
    }
}

/// `base` with automatic compaction effectively off, for checking a recovered directory.
fn quiet(base: Options) -> Options {
    Options {
        level0_file_num_compaction_trigger: 1 << 20,
        level0_slowdown_writes_trigger: 1 << 20,
        level0_stop_writes_trigger: 1 << 20,
        max_bytes_for_level_base: 1 << 50,
        ..base
    }
}

fn tables_on_disk(fs: &dyn FileSystem, dir: &Path) -> usize {
    fs.list_dir(dir)
        .unwrap()
        .iter()
        .filter(|n| n.ends_with(".sst"))
        .count()
}

fn assert_no_orphans(db: &Db, fs: &dyn FileSystem, dir: &Path, what: &str) {
    db.check_consistency()
        .unwrap_or_else(|e| panic!("{what}: inconsistent after recovery: {e}"));
    let s = db.stats();
    let named: u64 = s.files_per_level.iter().sum();
    let on_disk = tables_on_disk(fs, dir) as u64;
    assert_eq!(
        on_disk, named,
        "{what}: {on_disk} .sst files on disk but the version names {named} (orphans left after open)"
    );
}

// ---------------------------------------------------------------------------------------------
// SIGKILL.

const CHILD_ENV: &str = "STRATA_CRASH_COMPACTION_CHILD";
const KEYS_PER_BATCH: u64 = 7;
const HOT_KEYS: u64 = 300;

fn batch_value(batch: u64, j: u64) -> Vec<u8> {
    let len = 10 + (batch * 131 + j * 17) % 700;
    (0..len).map(|i| (batch + j * 3 + i) as u8).collect()
}

/// A key overwritten by many batches, so that compactions drop shadowed versions too.
fn hot_key(batch: u64) -> Vec<u8> {
    format!("hot{:04}", batch % HOT_KEYS).into_bytes()
}

/// What the child writes: besides its own keys, every batch overwrites a hot key.
const BATCHES: Batches = Batches {
    keys_per_batch: KEYS_PER_BATCH,
    value: batch_value,
    extra: |n, b| {
        b.put(hot_key(n), n.to_le_bytes());
    },
    other_keys: |next| next.min(HOT_KEYS),
    sync_every: 4,
};

/// Continues from the batch after the last one on disk, forever; prints `ack N` after batch N
/// returns and `compactions N` now and then.
fn child(dir: &Path) -> ! {
    let db = Db::open(dir, tiny()).expect("child open");
    BATCHES.write_forever(&db, |db, n| {
        (n % 16 == 0).then(|| {
            let s = db.stats();
            format!(
                "compactions {}",
                s.compactions_per_level.iter().sum::<u64>() + s.trivial_moves
            )
        })
    })
}

#[test]
fn sigkill_during_flushes_and_compactions_loses_no_acknowledged_batch() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        child(Path::new(&dir));
    }
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("db");
    let seed: u64 = rand::rng().random();
    println!("seed {seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let mut max_acked: Option<u64> = None;
    let mut compactions_seen = 0u64;
    let mut deepest = 0;
    for round in 0..14 {
        let lines = run_child_and_kill(
            "sigkill_during_flushes_and_compactions_loses_no_acknowledged_batch",
            CHILD_ENV,
            &db_path,
            Duration::from_millis(rng.random_range(100..600)),
        );
        let compactions = lines
            .iter()
            .rev()
            .find_map(|l| l.strip_prefix("compactions ")?.trim().parse::<u64>().ok())
            .unwrap_or(0);
        compactions_seen += compactions;
        raise_max_ack(&mut max_acked, &lines);

        let db = Db::open(&db_path, quiet(tiny())).unwrap();
        let what = format!("seed {seed} round {round}");
        assert_no_orphans(&db, &strata::fs::StdFs, &db_path, &what);
        let next = recovered_next(&db);
        let s = db.stats();
        if let Some(l) = (0..s.files_per_level.len())
            .rev()
            .find(|&l| s.files_per_level[l] > 0)
        {
            deepest = deepest.max(l);
        }
        println!(
            "round {round}: last acknowledged batch {max_acked:?}, recovered through {next}, \
             files per level {:?}, child compactions {compactions}",
            s.files_per_level
        );
        BATCHES.assert_recovered_prefix(&db, max_acked, &what);
        // Hot keys hold the last batch below `next` that wrote them.
        for h in 0..HOT_KEYS.min(next) {
            let last = (next - 1) - ((next - 1 + HOT_KEYS - h) % HOT_KEYS);
            assert_eq!(
                db.get(hot_key(h)).unwrap(),
                Some(last.to_le_bytes().to_vec()),
                "{what}: hot key {h}"
            );
        }
        db.close().unwrap();
    }
    assert!(max_acked.is_some(), "the child never acknowledged a write");
    println!("compactions reported by children: {compactions_seen}; deepest level {deepest}");
    assert!(compactions_seen > 0, "no compaction ran while being killed");
    assert!(deepest >= 2, "data never reached level 2");
}

// ---------------------------------------------------------------------------------------------
// Power loss.

fn fault_options(fs: &FaultFs) -> Options {
    Options {
        fs: Arc::new(fs.clone()),
        write_buffer_size: 8 * 1024,
        block_size: 256,
        target_file_size: 4 * 1024,
        max_bytes_for_level_base: 16 * 1024,
        max_bytes_for_level_multiplier: 2,
        ..tiny()
    }
}

fn random_batch(rng: &mut StdRng) -> Batch {
    (0..rng.random_range(1..6))
        .map(|_| {
            let k = format!("key{:04}", rng.random_range(0..400)).into_bytes();
            let v = rng.random_bool(0.85).then(|| {
                let len = rng.random_range(0..300);
                let fill: u8 = rng.random();
                (0..len).map(|i| fill.wrapping_add(i as u8)).collect()
            });
            (k, v)
        })
        .collect()
}

/// Returns compactions run before the cuts and the deepest level reached.
fn power_seed(seed: u64) -> (u64, usize) {
    let mut rng = StdRng::seed_from_u64(seed);
    let fs = FaultFs::new();
    let path = Path::new("/db");
    let mut base = Model::new();
    let mut compactions = 0;
    let mut deepest = 0;
    for cut in 0..4 {
        let what = format!("seed {seed} cut {cut}");
        let db = Db::open(path, fault_options(&fs)).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(contents(&db), base, "{what}: reopen changed the state");
        let mut history = History::default();
        for _ in 0..rng.random_range(100..700) {
            let batch = random_batch(&mut rng);
            history.write(&db, batch, rng.random_bool(0.2));
            match rng.random_range(0..200) {
                0..3 => db.flush().unwrap(),
                3 => {
                    let a = format!("key{:04}", rng.random_range(0..400));
                    let b = format!("key{:04}", rng.random_range(0..400));
                    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
                    db.compact_range(lo..=hi).unwrap();
                }
                _ => {}
            }
        }
        let s = db.stats();
        compactions += s.compactions_per_level.iter().sum::<u64>() + s.trivial_moves;
        // Cut while background work may still be running.
        fs.power_cut();
        drop(db);

        let db =
            Db::open(path, quiet(fault_options(&fs))).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_no_orphans(&db, &fs, path, &what);
        let s = db.stats();
        if let Some(l) = (0..s.files_per_level.len())
            .rev()
            .find(|&l| s.files_per_level[l] > 0)
        {
            deepest = deepest.max(l);
        }
        history.assert_recovered_prefix(&db, &mut base, &what);
        db.close().unwrap();
    }
    (compactions, deepest)
}

#[test]
fn power_cuts_during_compactions_keep_synced_writes_and_a_consistent_prefix() {
    let first: u64 = rand::rng().random();
    println!("seeds {first}..+24");
    let (mut compactions, mut deepest) = (0, 0);
    for i in 0..24 {
        let (c, d) = power_seed(first.wrapping_add(i));
        compactions += c;
        deepest = deepest.max(d);
    }
    println!("compactions before the cuts: {compactions}; deepest level {deepest}");
    assert!(compactions > 0, "no compaction ran");
    assert!(deepest >= 2, "data never reached level 2");
}
