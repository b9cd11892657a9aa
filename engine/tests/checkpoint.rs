//! Checkpoints: a consistent, openable copy taken while writers keep writing.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use strata::{Db, Error, Options, WriteBatch};

fn small() -> Options {
    Options {
        write_buffer_size: 32 * 1024,
        level0_file_num_compaction_trigger: 2,
        max_bytes_for_level_base: 128 * 1024,
        target_file_size: 32 * 1024,
        ..Options::create()
    }
}

fn batch_keys(n: u64) -> [Vec<u8>; 3] {
    [0, 1, 2].map(|j| format!("b{n:07}-{j}").into_bytes())
}

#[test]
fn a_checkpoint_taken_under_writes_is_a_consistent_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("db"), small()).unwrap();
    let acked = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (db, acked, stop) = (db.clone(), acked.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let mut b = WriteBatch::new();
                for k in batch_keys(n) {
                    b.put(k, vec![n as u8; 200]);
                }
                b.put(b"next", (n + 1).to_le_bytes());
                db.write(b).unwrap();
                n += 1;
                acked.store(n, Ordering::Release);
            }
        })
    };
    let mut checked = 0;
    for round in 0..5 {
        while acked.load(Ordering::Acquire) < 2000 * (round + 1) {
            std::thread::yield_now();
        }
        let before = acked.load(Ordering::Acquire);
        let target = dir.path().join(format!("checkpoint-{round}"));
        db.checkpoint(&target).unwrap();
        let copy = Db::open(&target, Options::default()).unwrap();
        copy.check_consistency().unwrap();
        let next = u64::from_le_bytes(copy.get(b"next").unwrap().unwrap().try_into().unwrap());
        assert!(next >= before, "round {round}: batches acknowledged before the checkpoint are missing ({next} < {before})");
        // Exactly the batches below `next`, each complete.
        let rows: Vec<_> = copy
            .scan(b"b".to_vec()..b"c".to_vec())
            .map(Result::unwrap)
            .collect();
        assert_eq!(rows.len() as u64, 3 * next, "round {round}");
        for (i, (k, v)) in rows.iter().enumerate() {
            let n = i as u64 / 3;
            assert_eq!(k, &batch_keys(n)[i % 3]);
            assert_eq!(v, &vec![n as u8; 200]);
        }
        // The copy is independent: writing to it does not touch the original.
        copy.put(b"only in the copy", b"1").unwrap();
        copy.close().unwrap();
        assert_eq!(db.get(b"only in the copy").unwrap(), None);
        checked += 1;
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    assert_eq!(checked, 5);
    let s = db.stats();
    assert!(
        s.flushes > 0 && s.files_per_level[1..].iter().sum::<u64>() > 0,
        "checkpoints should include flushed and compacted tables: {s:?}"
    );
}

#[test]
fn checkpoint_refuses_an_existing_directory_and_a_closed_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("db"), small()).unwrap();
    db.put(b"k", b"v").unwrap();
    std::fs::create_dir(dir.path().join("exists")).unwrap();
    assert!(matches!(
        db.checkpoint(dir.path().join("exists")),
        Err(Error::InvalidArgument(_))
    ));
    db.close().unwrap();
    assert!(matches!(
        db.checkpoint(dir.path().join("new")),
        Err(Error::Closed)
    ));
}
