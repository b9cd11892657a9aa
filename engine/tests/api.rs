//! The public API's contract: limits, errors, lifecycle, statistics.

use strata::{Db, Error, Options, ReadOptions, WriteBatch, MAX_KEY_SIZE, MAX_VALUE_SIZE};

fn small() -> Options {
    Options {
        write_buffer_size: 64 * 1024,
        ..Options::create()
    }
}

#[test]
fn empty_keys_and_values_work() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), small()).unwrap();
    db.put(b"", b"empty key").unwrap();
    db.put(b"empty value", b"").unwrap();
    assert_eq!(db.get(b"").unwrap(), Some(b"empty key".to_vec()));
    assert_eq!(db.get(b"empty value").unwrap(), Some(Vec::new()));
    db.flush().unwrap();
    assert_eq!(db.get(b"").unwrap(), Some(b"empty key".to_vec()));
    assert_eq!(db.get(b"empty value").unwrap(), Some(Vec::new()));
    let all: Vec<_> = db.scan::<&[u8]>(..).map(Result::unwrap).collect();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].0, b"");
}

#[test]
fn size_limits_are_enforced_and_the_largest_allowed_entries_work() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), small()).unwrap();
    let big_key = vec![b'k'; MAX_KEY_SIZE];
    let big_value: Vec<u8> = (0..MAX_VALUE_SIZE).map(|i| (i % 251) as u8).collect();
    db.put(&big_key, b"v").unwrap();
    db.put(b"big", &big_value).unwrap();
    assert!(matches!(
        db.put(vec![0u8; MAX_KEY_SIZE + 1], b"v"),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        db.put(b"k", vec![0u8; MAX_VALUE_SIZE + 1]),
        Err(Error::InvalidArgument(_))
    ));
    let mut batch = WriteBatch::new();
    batch.put(b"fine", b"1").delete(vec![0u8; MAX_KEY_SIZE + 1]);
    assert!(matches!(db.write(batch), Err(Error::InvalidArgument(_))));
    assert_eq!(
        db.get(b"fine").unwrap(),
        None,
        "a refused batch applies nothing"
    );
    db.flush().unwrap();
    assert_eq!(db.get(&big_key).unwrap(), Some(b"v".to_vec()));
    assert_eq!(db.get(b"big").unwrap().as_deref(), Some(&big_value[..]));
    db.close().unwrap();
    let db = Db::open(dir.path(), small()).unwrap();
    assert_eq!(db.get(b"big").unwrap().as_deref(), Some(&big_value[..]));
}

#[test]
fn opening_something_that_is_not_a_database_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nothing here");
    let err = Db::open(&missing, Options::default()).unwrap_err();
    assert!(matches!(err, Error::NotADatabase(_)), "{err}");
    assert!(err.to_string().contains("create_if_missing"));
    std::fs::write(dir.path().join("some file"), b"hello").unwrap();
    let err = Db::open(dir.path(), Options::default()).unwrap_err();
    assert!(matches!(err, Error::NotADatabase(_)), "{err}");

    let db = Db::open(dir.path().join("db"), Options::create()).unwrap();
    db.close().unwrap();
    let err = Db::open(
        dir.path().join("db"),
        Options {
            error_if_exists: true,
            ..Options::create()
        },
    )
    .unwrap_err();
    assert!(matches!(err, Error::AlreadyExists(_)), "{err}");
}

#[test]
fn a_database_can_be_open_only_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), small()).unwrap();
    assert!(matches!(
        Db::open(dir.path(), small()),
        Err(Error::Locked(_))
    ));
    db.close().unwrap();
    // The lock is released by close, even though `db` still exists.
    let again = Db::open(dir.path(), small()).unwrap();
    again.close().unwrap();
}

#[test]
fn closed_databases_refuse_everything() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), small()).unwrap();
    db.put(b"a", b"1").unwrap();
    let clone = db.clone();
    db.close().unwrap();
    assert!(matches!(clone.put(b"a", b"2"), Err(Error::Closed)));
    assert!(matches!(clone.get(b"a"), Err(Error::Closed)));
    assert!(matches!(clone.snapshot(), Err(Error::Closed)));
    assert!(matches!(clone.flush(), Err(Error::Closed)));
    let mut scan = clone.scan::<&[u8]>(..);
    assert!(matches!(scan.next(), Some(Err(Error::Closed))));
    assert!(scan.next().is_none());
    db.close().unwrap(); // idempotent
}

#[test]
fn dropping_the_last_handle_closes_the_database() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Db::open(dir.path(), small()).unwrap();
        let c = db.clone();
        c.put(b"k", b"v").unwrap();
    }
    let db = Db::open(dir.path(), small()).unwrap();
    assert_eq!(db.get(b"k").unwrap(), Some(b"v".to_vec()));
}

#[test]
fn iterators_and_snapshots_outlive_flushes() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), small()).unwrap();
    for i in 0..2000u32 {
        db.put(format!("k{i:05}"), i.to_le_bytes()).unwrap();
    }
    let snap = db.snapshot().unwrap();
    let mut it = db.scan::<&[u8]>(..);
    let first = it.next().unwrap().unwrap();
    assert_eq!(first.0, b"k00000");
    for i in 0..2000u32 {
        db.put(format!("k{i:05}"), (i + 1).to_le_bytes()).unwrap();
        if i % 500 == 0 {
            db.delete(format!("k{i:05}")).unwrap();
        }
    }
    db.flush().unwrap();
    // The iterator still reads the old state: all 2000 keys, old values.
    let rest: Vec<_> = it.map(Result::unwrap).collect();
    assert_eq!(rest.len(), 1999);
    assert!(rest
        .iter()
        .enumerate()
        .all(|(i, (_, v))| v[..] == (i as u32 + 1).to_le_bytes()));
    let ro = ReadOptions::at(&snap);
    assert_eq!(
        db.get_opt(b"k00500", &ro).unwrap(),
        Some(500u32.to_le_bytes().to_vec())
    );
    assert_eq!(db.get(b"k00500").unwrap(), None);
    assert_eq!(
        db.get(b"k00501").unwrap(),
        Some(502u32.to_le_bytes().to_vec())
    );
    assert_eq!(db.stats().live_snapshots, 1);
    drop(snap);
    assert_eq!(
        db.stats().live_snapshots,
        1,
        "the read options hold a clone"
    );
    drop(ro);
    assert_eq!(db.stats().live_snapshots, 0);
}

#[test]
fn flush_moves_data_to_tables_and_deletes_old_wals() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), small()).unwrap();
    for i in 0..5000u32 {
        db.put(format!("key{i}"), [7u8; 50]).unwrap();
    }
    db.flush().unwrap();
    let stats = db.stats();
    assert!(stats.flushes >= 1);
    assert!(stats.files_per_level[0] >= 1);
    assert_eq!(stats.immutable_memtables, 0);
    assert!(stats.memory_bytes() > 0);
    let wals = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".log")
        })
        .count();
    assert_eq!(wals, 1, "only the active WAL remains after a flush");
    db.close().unwrap();
    let db = Db::open(dir.path(), small()).unwrap();
    assert_eq!(db.scan::<&[u8]>(..).count(), 5000);
}

#[test]
fn memory_stays_bounded_by_the_options() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        write_buffer_size: 256 * 1024,
        block_cache_bytes: 512 * 1024,
        max_open_files: 4,
        ..Options::create()
    };
    let db = Db::open(dir.path(), opts).unwrap();
    let value = vec![3u8; 200];
    for i in 0..30_000u32 {
        db.put(format!("key{:08}", i.wrapping_mul(2_654_435_761)), &value)
            .unwrap();
        if i % 1000 == 0 {
            let s = db.stats();
            assert!(
                s.memtable_bytes + s.immutable_memtable_bytes <= 2 * (256 + 64) * 1024,
                "{s:?}"
            );
        }
    }
    for i in (0..30_000u32).step_by(7) {
        db.get(format!("key{:08}", i.wrapping_mul(2_654_435_761)))
            .unwrap()
            .unwrap();
    }
    let s = db.stats();
    assert!(s.block_cache_bytes <= 512 * 1024 + 64 * 1024, "{s:?}");
    assert!(s.open_tables <= 4, "{s:?}");
    assert!(s.block_cache_hits + s.block_cache_misses > 0);
}

#[test]
fn borrowed_scan_entries_match_owned_ones_and_the_two_forms_mix() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), small()).unwrap();
    for i in 0..3000u32 {
        db.put(format!("k{i:05}"), format!("v{i}-old")).unwrap();
    }
    db.flush().unwrap();
    // Newer versions in the memtable, some deletions, some keys only in the memtable.
    for i in (0..3000u32).step_by(3) {
        db.put(format!("k{i:05}"), format!("v{i}-new")).unwrap();
    }
    for i in (0..3000u32).step_by(7) {
        db.delete(format!("k{i:05}")).unwrap();
    }
    let owned: Vec<(Vec<u8>, Vec<u8>)> = db
        .scan(b"k00100".to_vec()..b"k02900".to_vec())
        .map(Result::unwrap)
        .collect();
    assert!(owned.len() > 2000);
    assert!(owned.windows(2).all(|w| w[0].0 < w[1].0));

    let mut borrowed = Vec::new();
    let mut it = db.scan(b"k00100".to_vec()..b"k02900".to_vec());
    while let Some(entry) = it.next_ref() {
        let (k, v) = entry.unwrap();
        borrowed.push((k.to_vec(), v.to_vec()));
    }
    assert!(it.next_ref().is_none(), "exhausted stays exhausted");
    assert_eq!(borrowed, owned);

    // Alternating the two forms neither skips nor repeats an entry.
    let mut mixed = Vec::new();
    let mut it = db.scan(b"k00100".to_vec()..b"k02900".to_vec());
    loop {
        let next = if mixed.len() % 2 == 0 {
            it.next_ref()
                .map(|e| e.map(|(k, v)| (k.to_vec(), v.to_vec())))
        } else {
            it.next()
        };
        let Some(entry) = next else { break };
        mixed.push(entry.unwrap());
    }
    assert_eq!(mixed, owned);
}

#[test]
fn a_scan_opens_one_table_per_level_not_every_table() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        write_buffer_size: 64 * 1024,
        target_file_size: 16 * 1024,
        ..Options::create()
    };
    let db = Db::open(dir.path(), opts.clone()).unwrap();
    for i in 0..20_000u32 {
        db.put(format!("key{i:06}"), [b'v'; 40]).unwrap();
    }
    db.compact_range::<&[u8]>(..).unwrap();
    db.close().unwrap();

    // Reopen: a fresh table cache, so `open_tables` counts what this scan opens.
    let db = Db::open(dir.path(), opts).unwrap();
    let stats = db.stats();
    let files: u64 = stats.files_per_level.iter().sum();
    assert_eq!(stats.files_per_level[0], 0, "{:?}", stats.files_per_level);
    let levels = stats.files_per_level.iter().filter(|&&n| n > 0).count() as u64;
    assert!(
        files >= 10,
        "want many tables, got {:?}",
        stats.files_per_level
    );
    let before = stats.open_tables;

    let mut it = db.scan(b"key010000".to_vec()..);
    let (k, _) = it.next().unwrap().unwrap();
    assert_eq!(k, b"key010000");
    let opened = db.stats().open_tables - before;
    assert!(
        opened <= levels,
        "a seek opened {opened} tables over {levels} levels of {files} tables"
    );

    // Reading on crosses table boundaries in order.
    let rest: Vec<_> = it.map(|kv| kv.unwrap().0).collect();
    assert_eq!(rest.len(), 9_999);
    assert!(rest.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(rest.last().unwrap(), b"key019999");
}

#[test]
fn compactions_do_not_fill_the_block_cache_but_reads_do() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(
        dir.path(),
        Options {
            write_buffer_size: 64 * 1024,
            block_cache_bytes: 8 << 20,
            ..Options::create()
        },
    )
    .unwrap();
    for i in 0..20_000u32 {
        db.put(format!("key{i:06}"), format!("value-{i}-{}", i * 7))
            .unwrap();
    }
    db.compact_range::<&[u8]>(..).unwrap();
    let s = db.stats();
    assert!(s.files_per_level[1..].iter().sum::<u64>() > 0, "{s:?}");
    assert_eq!(
        s.block_cache_bytes, 0,
        "compaction read blocks into the cache"
    );
    assert_eq!(
        db.get(b"key012345").unwrap(),
        Some(b"value-12345-86415".to_vec())
    );
    assert!(db.stats().block_cache_bytes > 0, "a read fills the cache");
}
