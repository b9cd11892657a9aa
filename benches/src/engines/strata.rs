//! Strata, through its public API only.

use std::path::Path;

use strata::{Db, Options, WriteBatch, WriteOptions};

use crate::engine::{BatchOp, Compression, EngineSettings, EngineStats, KvEngine};

/// A Strata database configured from [`EngineSettings`].
pub struct StrataEngine {
    db: Db,
    write_options: WriteOptions,
}

impl StrataEngine {
    /// Opens (creating) the database in `dir`.
    pub fn open(dir: &Path, s: &EngineSettings) -> anyhow::Result<Self> {
        let options = Options {
            create_if_missing: true,
            write_buffer_size: s.write_buffer_size,
            memtable_whole_key_filtering: s.memtable_filter,
            wal_mmap_writes: s.mmap_write,
            block_size: s.block_size,
            bloom_bits_per_key: s.bloom_bits,
            compression: match s.compression {
                Compression::None => strata::Compression::None,
                Compression::Lz4 => strata::Compression::Lz4,
            },
            block_cache_bytes: s.cache_size,
            max_background_jobs: s.background_jobs.max(1),
            ..Options::default()
        };
        Ok(StrataEngine {
            db: Db::open(dir, options)?,
            write_options: WriteOptions { sync: s.sync },
        })
    }

    fn write(&self, batch: WriteBatch) -> anyhow::Result<()> {
        Ok(self.db.write_opt(batch, &self.write_options)?)
    }
}

impl KvEngine for StrataEngine {
    fn put(&self, key: &[u8], value: &[u8]) -> anyhow::Result<()> {
        let mut b = WriteBatch::new();
        b.put(key, value);
        self.write(b)
    }

    fn get(&self, key: &[u8]) -> anyhow::Result<Option<usize>> {
        Ok(self.db.get(key)?.map(|v| v.len()))
    }

    fn delete(&self, key: &[u8]) -> anyhow::Result<()> {
        let mut b = WriteBatch::new();
        b.delete(key);
        self.write(b)
    }

    fn write_batch(&self, ops: &[BatchOp<'_>]) -> anyhow::Result<()> {
        let mut b = WriteBatch::new();
        for op in ops {
            match *op {
                BatchOp::Put(k, v) => b.put(k, v),
                BatchOp::Delete(k) => b.delete(k),
            };
        }
        self.write(b)
    }

    fn scan(
        &self,
        start: &[u8],
        n: usize,
        visit: &mut dyn FnMut(&[u8], &[u8]),
    ) -> anyhow::Result<usize> {
        let mut count = 0;
        let mut it = self.db.scan(start.to_vec()..);
        while count < n {
            let Some(entry) = it.next_ref() else { break };
            let (k, v) = entry?;
            visit(k, v);
            count += 1;
        }
        Ok(count)
    }

    fn flush(&self) -> anyhow::Result<()> {
        Ok(self.db.flush()?)
    }

    fn stats(&self) -> EngineStats {
        let s = self.db.stats();
        let compaction_written: u64 = s.compaction_bytes_written_per_level.iter().sum();
        EngineStats {
            write_amplification: Some(s.write_amplification()),
            counters: vec![
                ("wal_bytes".into(), s.wal_bytes),
                ("flush_bytes".into(), s.flush_bytes),
                ("compaction_bytes_written".into(), compaction_written),
                ("write_stalls".into(), s.write_stalls),
                ("write_stall_micros".into(), s.write_stall_micros),
                ("block_cache_hits".into(), s.block_cache_hits),
                ("block_cache_misses".into(), s.block_cache_misses),
            ],
        }
    }

    fn close(self: Box<Self>) -> anyhow::Result<()> {
        Ok(self.db.close()?)
    }
}
