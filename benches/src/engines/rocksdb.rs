//! RocksDB through the `rocksdb` crate (feature `rocksdb`; not in the default build).

use std::path::Path;

use rocksdb::{
    BlockBasedOptions, Cache, DBCompressionType, FlushOptions, Options, WriteBatch, WriteOptions,
    DB,
};

use crate::engine::{BatchOp, Compression, EngineSettings, EngineStats, KvEngine};

/// A RocksDB database configured from [`EngineSettings`].
pub struct RocksDbEngine {
    db: DB,
    write_options: WriteOptions,
    // The block cache must outlive the options that refer to it.
    _cache: Cache,
}

impl RocksDbEngine {
    /// Opens (creating) the database in `dir`.
    pub fn open(dir: &Path, s: &EngineSettings) -> anyhow::Result<Self> {
        let cache = Cache::new_lru_cache(s.cache_size);
        let mut table = BlockBasedOptions::default();
        table.set_block_size(s.block_size);
        table.set_block_cache(&cache);
        if s.bloom_bits > 0 {
            table.set_bloom_filter(f64::from(s.bloom_bits), false);
        }
        let mut options = Options::default();
        options.create_if_missing(true);
        options.set_write_buffer_size(s.write_buffer_size);
        options.set_max_write_buffer_number(2);
        if s.memtable_filter {
            options.set_memtable_whole_key_filtering(true);
            options.set_memtable_prefix_bloom_ratio(0.02);
        }
        options.set_allow_mmap_writes(s.mmap_write);
        options.set_max_background_jobs(i32::try_from(s.background_jobs.max(1))?);
        options.set_compression_type(match s.compression {
            Compression::None => DBCompressionType::None,
            Compression::Lz4 => DBCompressionType::Lz4,
        });
        options.set_block_based_table_factory(&table);
        let mut write_options = WriteOptions::default();
        write_options.set_sync(s.sync);
        Ok(RocksDbEngine {
            db: DB::open(&options, dir)?,
            write_options,
            _cache: cache,
        })
    }
}

impl KvEngine for RocksDbEngine {
    fn put(&self, key: &[u8], value: &[u8]) -> anyhow::Result<()> {
        Ok(self.db.put_opt(key, value, &self.write_options)?)
    }

    fn get(&self, key: &[u8]) -> anyhow::Result<Option<usize>> {
        Ok(self.db.get_pinned(key)?.map(|v| v.len()))
    }

    fn delete(&self, key: &[u8]) -> anyhow::Result<()> {
        Ok(self.db.delete_opt(key, &self.write_options)?)
    }

    fn write_batch(&self, ops: &[BatchOp<'_>]) -> anyhow::Result<()> {
        let mut batch = WriteBatch::default();
        for op in ops {
            match *op {
                BatchOp::Put(k, v) => batch.put(k, v),
                BatchOp::Delete(k) => batch.delete(k),
            }
        }
        Ok(self.db.write_opt(batch, &self.write_options)?)
    }

    fn scan(
        &self,
        start: &[u8],
        n: usize,
        visit: &mut dyn FnMut(&[u8], &[u8]),
    ) -> anyhow::Result<usize> {
        let mut count = 0;
        let mut it = self.db.raw_iterator();
        it.seek(start);
        while count < n && it.valid() {
            if let (Some(k), Some(v)) = (it.key(), it.value()) {
                visit(k, v);
            }
            count += 1;
            it.next();
        }
        it.status()?;
        Ok(count)
    }

    fn flush(&self) -> anyhow::Result<()> {
        let mut options = FlushOptions::default();
        options.set_wait(true);
        Ok(self.db.flush_opt(&options)?)
    }

    fn stats(&self) -> EngineStats {
        let int = |name: &str| self.db.property_int_value(name).ok().flatten().unwrap_or(0);
        EngineStats {
            write_amplification: None,
            counters: vec![
                (
                    "num-running-compactions".into(),
                    int("rocksdb.num-running-compactions"),
                ),
                (
                    "total-sst-files-size".into(),
                    int("rocksdb.total-sst-files-size"),
                ),
                (
                    "estimate-live-data-size".into(),
                    int("rocksdb.estimate-live-data-size"),
                ),
            ],
        }
    }

    fn close(self: Box<Self>) -> anyhow::Result<()> {
        self.db.flush_wal(true)?;
        drop(self);
        Ok(())
    }
}
