//! The write path: a queue of writers, of which the front one (the leader) appends the whole
//! group to the WAL as one record, syncs once if any member asked for it, inserts the group
//! into the memtable and then publishes its sequence numbers (group commit, as in LevelDB).

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::MutexGuard;

use super::{ActiveWal, DbInner, State};
use crate::error::{Error, Result};
use crate::filename::wal_path;
use crate::memtable::mem::MemTable;
use crate::stats::Counters;
use crate::wal::LogWriter;
use crate::write_batch::WriteBatch;

/// A queued write: a batch, or `None` for a request to switch the memtable (flush).
pub(crate) struct PendingWrite {
    batch: Option<WriteBatch>,
    sync: bool,
}

/// A group grows to at most this many bytes...
const MAX_GROUP_BYTES: usize = 1 << 20;
/// ...or, when its leader's batch is small, to the leader's size plus this, so that a small
/// write is not delayed behind a megabyte of others.
const SMALL_GROUP_SLACK: usize = 128 << 10;

impl DbInner {
    /// Queues a write (or, with `None`, a memtable switch) and returns once it is applied.
    pub(crate) fn write(&self, batch: Option<WriteBatch>, sync: bool) -> Result<()> {
        let mut st = self.state.lock();
        Self::check_open(&st)?;
        let id = st.next_writer_id;
        st.next_writer_id += 1;
        st.writers.push_back(id);
        st.pending.insert(id, PendingWrite { batch, sync });
        loop {
            if let Some(result) = st.completed.remove(&id) {
                return result;
            }
            if st.writers.front() == Some(&id) {
                break;
            }
            self.write_cv.wait(&mut st);
        }
        let Some(me) = st.pending.remove(&id) else {
            unreachable!("a queued writer's request stays pending until it is led");
        };
        let result = self.lead(&mut st, me);
        // The leader is at the front; the members it took follow it in queue order.
        st.writers.pop_front();
        self.write_cv.notify_all();
        result
    }

    /// Runs one group as its leader. Returns the leader's own result; members' results go to
    /// `completed` and they are removed from the queue.
    fn lead(&self, st: &mut MutexGuard<'_, State>, me: PendingWrite) -> Result<()> {
        let Some(mut group) = me.batch else {
            return self.make_room_for_write(st, true);
        };
        self.make_room_for_write(st, false)?;

        // Gather followers, in order, while they fit.
        let limit = if group.approximate_size() <= SMALL_GROUP_SLACK {
            group.approximate_size() + SMALL_GROUP_SLACK
        } else {
            MAX_GROUP_BYTES
        };
        let mut sync = me.sync;
        let mut members = Vec::new();
        for &wid in st.writers.iter().skip(1) {
            let Some(p) = st.pending.get(&wid) else { break };
            let Some(b) = &p.batch else { break };
            if group.approximate_size() + b.approximate_size() > limit {
                break;
            }
            group.append(b);
            sync |= p.sync;
            members.push(wid);
        }
        for wid in &members {
            st.pending.remove(wid);
        }
        let batches = 1 + members.len() as u64;

        let first_seq = st.versions.last_sequence() + 1;
        group.set_sequence(first_seq);
        let last_seq = first_seq + u64::from(group.count()) - 1;
        let mem = st.mem.clone();

        // WAL append and memtable insert happen without the state lock: this thread is the
        // only leader, and nothing reads these sequence numbers until they are published.
        let io = MutexGuard::unlocked(st, || -> Result<()> {
            let mut wal = self.wal.lock();
            let wal = wal.as_mut().ok_or(Error::Closed)?;
            wal.writer.add_record(group.data())?;
            wal.writer.flush()?;
            if sync {
                wal.writer.sync()?;
                Counters::add(&self.counters.wal_syncs, 1);
            }
            mem.apply(&group);
            Ok(())
        });

        let c = &self.counters;
        match &io {
            Ok(()) => {
                st.versions.set_last_sequence(last_seq);
                Counters::add(&c.writes, u64::from(group.count()));
                Counters::add(&c.write_batches, batches);
                Counters::add(&c.write_groups, 1);
                Counters::add(&c.wal_bytes, group.approximate_size() as u64);
                Counters::add(&c.user_bytes_written, group.user_bytes());
            }
            Err(Error::Closed) => {}
            Err(e) => self.poison(st, e),
        }
        for _ in &members {
            // The leader stays at the front until `write` pops it; members are right behind.
            st.writers.remove(1);
        }
        for wid in members {
            let r = match &io {
                Ok(()) => Ok(()),
                Err(e) => Err(e.duplicate()),
            };
            st.completed.insert(wid, r);
        }
        io
    }

    /// Makes sure the active memtable has room (or, with `force`, switches it if non-empty).
    ///
    /// Write stalls, as in LevelDB and RocksDB: at `level0_slowdown_writes_trigger` level-0
    /// files each write is delayed once by a millisecond, handing the CPU to compaction; a full
    /// memtable waits while `max_write_buffer_number` memtables exist or while level 0 has
    /// `level0_stop_writes_trigger` files. Waits end when a background job finishes (it notifies
    /// `bg_cv`); if compaction has failed and nothing runs that could shrink level 0, the write
    /// fails instead of waiting forever.
    fn make_room_for_write(&self, st: &mut MutexGuard<'_, State>, force: bool) -> Result<()> {
        let mut delayed = false;
        loop {
            if let Some(e) = &st.bg_error {
                return Err(Error::Poisoned(e.clone()));
            }
            Self::check_open(st)?;
            let l0 = st.versions.num_level0_files();
            if !delayed && !force && l0 >= self.opts.level0_slowdown_writes_trigger {
                delayed = true;
                let started = Instant::now();
                MutexGuard::unlocked(st, || std::thread::sleep(Duration::from_millis(1)));
                self.count_stall(started);
                continue;
            }
            let full = st.mem.memory_usage() >= self.opts.write_buffer_size;
            if !(full || force && !st.mem.is_empty()) {
                return Ok(());
            }
            let too_many_memtables = st.imm.len() + 1 >= self.opts.max_write_buffer_number;
            let too_many_l0 = l0 >= self.opts.level0_stop_writes_trigger;
            if too_many_memtables || too_many_l0 {
                if too_many_l0 && !too_many_memtables && st.compacting.is_empty() {
                    if let Some(e) = &st.compaction_error {
                        return Err(Error::Poisoned(format!(
                            "writes stopped at {l0} level-0 files and compaction is failing: {e}"
                        )));
                    }
                }
                let started = Instant::now();
                self.bg_cv.notify_all();
                self.bg_cv.wait(st);
                self.count_stall(started);
                continue;
            }
            let number = st.versions.new_file_number();
            if let Err(e) = MutexGuard::unlocked(st, || self.switch_wal(number)) {
                self.poison(st, &e);
                return Err(e);
            }
            let old = std::mem::replace(
                &mut st.mem,
                Arc::new(MemTable::new(
                    number,
                    self.opts.write_buffer_size,
                    self.opts.memtable_whole_key_filtering,
                )),
            );
            st.imm.push_back(old);
            self.bg_cv.notify_all();
            if force {
                return Ok(());
            }
        }
    }

    fn count_stall(&self, started: Instant) {
        Counters::add(&self.counters.write_stalls, 1);
        Counters::add(
            &self.counters.write_stall_micros,
            started.elapsed().as_micros() as u64,
        );
    }

    /// Syncs the old WAL (so that a later log never survives a power cut that an earlier one
    /// did not: recovery replays a prefix of history) and starts WAL `number`.
    fn switch_wal(&self, number: u64) -> Result<()> {
        let mut wal = self.wal.lock();
        if let Some(old) = wal.as_mut() {
            old.writer.sync()?;
        }
        *wal = Some(create_wal(self, number)?);
        Ok(())
    }
}

/// Creates WAL `number` and makes its directory entry durable.
pub(crate) fn create_wal(db: &DbInner, number: u64) -> Result<ActiveWal> {
    let path = wal_path(&db.dir, number);
    let file = if db.opts.wal_mmap_writes {
        db.fs.create_log(&path)?
    } else {
        db.fs.create(&path)?
    };
    db.fs.sync_dir(&db.dir)?;
    Ok(ActiveWal {
        writer: LogWriter::new(file),
        number,
    })
}
