//! The YCSB core workloads A-F (`strata_workload::ycsb`'s mixes) over the run's keys.

use std::sync::atomic::Ordering;
use std::time::Instant;

use indicatif::ProgressBar;

use super::{Bench, Outcome};
use crate::engine::KvEngine;
use strata_workload::keys::make_key;
use strata_workload::ycsb::{OpKind, Ycsb, MAX_SCAN_LENGTH};

impl Bench {
    /// YCSB core workloads ([`Ycsb`]): A 50/50 read/update, B 95/5 read/update, C read
    /// only, D 95/5 read-latest/insert, E 95/5 short scan (1-100 entries)/insert, F 50/50
    /// read/read-modify-write. Keys by `--distribution` (YCSB's default is Zipfian).
    pub(super) fn ycsb(
        &self,
        mix: Ycsb,
        engine: &dyn KvEngine,
        bar: &ProgressBar,
        ops: u64,
        salt: u64,
    ) -> anyhow::Result<Outcome> {
        let (ks, vs) = (self.cfg.key_size, self.cfg.value_size);
        let kv = (ks + vs) as u64;
        let num = self.cfg.num;
        self.parallel(bar, ops, self.cfg.threads, |t, range, tally| {
            let mut picker = self.picker(t);
            let mut key = vec![0u8; ks];
            for _ in range {
                let op = mix.op(picker.unit());
                let start = Instant::now();
                let (read, update, rmw) = (
                    op == OpKind::Read,
                    op == OpKind::Update,
                    op == OpKind::ReadModifyWrite,
                );
                if op == OpKind::Insert {
                    let id = num + self.live.inserted.fetch_add(1, Ordering::Relaxed);
                    make_key(&mut key, id, false);
                    engine.put(&key, self.values.value(id, salt, vs))?;
                    tally.written += kv;
                    tally.bytes += kv;
                } else if op == OpKind::Scan {
                    make_key(&mut key, picker.next_key(), false);
                    let len = picker.between(1, MAX_SCAN_LENGTH);
                    let mut bytes = 0;
                    engine.scan(&key, len, &mut |k, v| bytes += (k.len() + v.len()) as u64)?;
                    tally.found += 1;
                    tally.bytes += bytes;
                } else {
                    let id = if mix.reads_latest() {
                        picker.latest(num + self.live.inserted.load(Ordering::Relaxed) - 1)
                    } else {
                        picker.next_key()
                    };
                    make_key(&mut key, id, false);
                    if (read || rmw) && engine.get(&key)?.is_some() {
                        tally.found += 1;
                        tally.bytes += kv;
                    }
                    if update || rmw {
                        engine.put(&key, self.values.value(id, salt, vs))?;
                        self.live.set(id, true);
                        tally.written += kv;
                        tally.bytes += kv;
                    }
                }
                tally.record(start);
                tally.done(1);
            }
            Ok(())
        })
    }
}
