//! fjall 2.x: one keyspace with one partition.

use std::path::Path;

use fjall::{
    CompressionType, Config, Keyspace, PartitionCreateOptions, PartitionHandle, PersistMode,
};

use crate::engine::{BatchOp, Compression, EngineSettings, EngineStats, KvEngine};

/// A fjall keyspace and its one partition, configured from [`EngineSettings`].
pub struct FjallEngine {
    keyspace: Keyspace,
    partition: PartitionHandle,
    sync: bool,
}

impl FjallEngine {
    /// Opens (creating) the keyspace in `dir`.
    pub fn open(dir: &Path, s: &EngineSettings) -> anyhow::Result<Self> {
        let jobs = s.background_jobs.max(1);
        // fjall's write-buffer limit spans all memtables of the keyspace (it must be at least
        // 1 MiB); two memtables' worth matches Strata's and RocksDB's two-memtable limit.
        let keyspace = Config::new(dir)
            .cache_size(s.cache_size as u64)
            .max_write_buffer_size(((2 * s.write_buffer_size) as u64).max(1 << 20))
            .flush_workers(jobs)
            .compaction_workers(jobs)
            .open()?;
        let bloom = (s.bloom_bits > 0).then(|| s.bloom_bits.min(u8::MAX as u32) as u8);
        let options = PartitionCreateOptions::default()
            .max_memtable_size(u32::try_from(s.write_buffer_size)?)
            .block_size(u32::try_from(s.block_size)?)
            .bloom_filter_bits(bloom)
            .compression(match s.compression {
                Compression::None => CompressionType::None,
                Compression::Lz4 => CompressionType::Lz4,
            });
        let partition = keyspace.open_partition("bench", options)?;
        Ok(FjallEngine {
            keyspace,
            partition,
            sync: s.sync,
        })
    }

    fn persist_if_sync(&self) -> anyhow::Result<()> {
        if self.sync {
            self.keyspace.persist(PersistMode::SyncData)?;
        }
        Ok(())
    }
}

impl KvEngine for FjallEngine {
    fn put(&self, key: &[u8], value: &[u8]) -> anyhow::Result<()> {
        self.partition.insert(key, value)?;
        self.persist_if_sync()
    }

    fn get(&self, key: &[u8]) -> anyhow::Result<Option<usize>> {
        Ok(self.partition.get(key)?.map(|v| v.len()))
    }

    fn delete(&self, key: &[u8]) -> anyhow::Result<()> {
        self.partition.remove(key)?;
        self.persist_if_sync()
    }

    fn write_batch(&self, ops: &[BatchOp<'_>]) -> anyhow::Result<()> {
        let mut batch = self.keyspace.batch();
        if self.sync {
            batch = batch.durability(Some(PersistMode::SyncData));
        }
        for op in ops {
            match *op {
                BatchOp::Put(k, v) => batch.insert(&self.partition, k, v),
                BatchOp::Delete(k) => batch.remove(&self.partition, k),
            }
        }
        Ok(batch.commit()?)
    }

    fn scan(
        &self,
        start: &[u8],
        n: usize,
        visit: &mut dyn FnMut(&[u8], &[u8]),
    ) -> anyhow::Result<usize> {
        let mut count = 0;
        for kv in self.partition.range(start.to_vec()..).take(n) {
            let (k, v) = kv?;
            visit(&k, &v);
            count += 1;
        }
        Ok(count)
    }

    fn flush(&self) -> anyhow::Result<()> {
        // Hidden in fjall's docs ("used in tests"), but the only way to flush and wait.
        self.partition.rotate_memtable_and_wait()?;
        Ok(self.keyspace.persist(PersistMode::SyncAll)?)
    }

    fn stats(&self) -> EngineStats {
        EngineStats {
            write_amplification: None,
            counters: vec![
                (
                    "flushes_completed".into(),
                    self.keyspace.flushes_completed() as u64,
                ),
                (
                    "compactions_completed".into(),
                    self.keyspace.compactions_completed() as u64,
                ),
                (
                    "journal_disk_space".into(),
                    self.keyspace.journal_disk_space(),
                ),
            ],
        }
    }

    fn close(self: Box<Self>) -> anyhow::Result<()> {
        self.keyspace.persist(PersistMode::SyncAll)?;
        // fjall closes when the last handle is dropped.
        drop(self);
        Ok(())
    }
}
