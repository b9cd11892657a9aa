//! Throughput of the protocol core alone: three replicas, in-memory storage, zero-latency
//! links (every message sent in one cycle is delivered in the next), no ticks once a leader
//! is elected (so no heartbeats: only the work proposals cause).
//!
//! A closed loop keeps `k` proposals outstanding at the leader: each cycle tops the leader up
//! to `k` unfinished commands, runs `take_ready` on every replica (persist, send, apply), then
//! delivers every message sent. A command is done when the leader applies it. Reports chosen
//! commands per second of CPU (this thread's CPU time) and messages per chosen command.
//!
//! `cargo run -p strata-paxos --release --example throughput`

use std::time::{Duration, Instant};

use strata_paxos::{Config, MemStorage, Message, Replica, Role, Storage};

/// CPU time of this thread (Linux), or wall time elsewhere.
fn cpu_time(wall: Instant) -> Duration {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .map(Duration::from_nanos)
        .unwrap_or_else(|| wall.elapsed())
}

struct Cluster {
    replicas: Vec<Replica>,
    storage: Vec<MemStorage>,
    inbox: Vec<Message>,
    messages: u64,
    leader: usize,
}

impl Cluster {
    fn new() -> Cluster {
        let members = vec![1, 2, 3];
        let mut c = Cluster {
            replicas: members
                .iter()
                .map(|&id| Replica::new(Config::new(id, members.clone())).expect("valid config"))
                .collect(),
            storage: vec![MemStorage::new(); 3],
            inbox: Vec::new(),
            messages: 0,
            leader: 0,
        };
        for _ in 0..1000 {
            for r in &mut c.replicas {
                r.tick();
            }
            c.cycle();
            if let Some(l) = c.replicas.iter().position(|r| r.role() == Role::Leader) {
                c.leader = l;
                for _ in 0..10 {
                    c.cycle(); // let the term's opening no-op settle
                }
                c.messages = 0;
                return c;
            }
        }
        panic!("no leader");
    }

    /// One take_ready round on every replica, then delivery of everything sent. Returns how
    /// many commands the leader applied.
    fn cycle(&mut self) -> u64 {
        let mut done = 0;
        for (i, r) in self.replicas.iter_mut().enumerate() {
            let ready = r.take_ready();
            let Ok(()) = self.storage[i].persist(&ready);
            self.messages += ready.messages.len() as u64;
            self.inbox.extend(ready.messages);
            if i == self.leader {
                done += ready
                    .committed
                    .iter()
                    .map(|(_, v)| v.commands.len() as u64)
                    .sum::<u64>();
            }
            if let Some(&(slot, _)) = ready.committed.last() {
                r.compact(slot); // keep memory flat: the "application" is durable at once
            }
        }
        for m in std::mem::take(&mut self.inbox) {
            let to = (m.to - 1) as usize;
            self.replicas[to].step(m);
        }
        done
    }
}

fn measure(outstanding: u64, budget: Duration) -> (u64, f64, f64, f64) {
    let mut c = Cluster::new();
    let wall = Instant::now();
    let cpu0 = cpu_time(wall);
    let (mut in_flight, mut chosen, mut next, mut cycles) = (0u64, 0u64, 0u64, 0u64);
    loop {
        while in_flight < outstanding {
            next += 1;
            let cmd = next.to_le_bytes().repeat(2); // 16-byte commands
            c.replicas[c.leader].propose(cmd).expect("leader");
            in_flight += 1;
        }
        let done = c.cycle();
        in_flight -= done;
        chosen += done;
        cycles += 1;
        if cycles % 64 == 0 && cpu_time(wall) - cpu0 >= budget {
            break;
        }
    }
    let secs = (cpu_time(wall) - cpu0).as_secs_f64();
    (
        chosen,
        chosen as f64 / secs,
        c.messages as f64 / chosen as f64,
        chosen as f64 / cycles as f64,
    )
}

fn main() {
    let budget = Duration::from_millis(
        std::env::var("BUDGET_MS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(1000),
    );
    println!("3 replicas, MemStorage, zero-latency links, 16-byte commands, {budget:?} CPU each");
    println!(
        "{:>12} {:>12} {:>16} {:>14} {:>14}",
        "outstanding", "chosen", "cmds/CPU-sec", "msgs/cmd", "cmds/cycle"
    );
    for k in [1, 10, 1000] {
        let (chosen, rate, per_cmd, per_cycle) = measure(k, budget);
        println!("{k:>12} {chosen:>12} {rate:>16.0} {per_cmd:>14.3} {per_cycle:>14.2}");
    }
}
