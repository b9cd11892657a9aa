//! CPU accounting of server processes: how many CPU seconds (user + system) each process of a
//! system under test spent during a phase, from `/proc/PID/stat`, and which processes those
//! are when the benchmark did not start them (the ones listening on the endpoints' ports,
//! found through `/proc/net/tcp{,6}` and the processes' socket descriptors).
//!
//! On a machine where the load generator and every replica share the cores, throughput alone
//! understates a lean system; CPU seconds per operation is what predicts how it scales.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde::Serialize;

/// One server process of a system under test.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServerProcess {
    /// What it is: `master-1`, `group-100-2`, `etcd-m1`, or the address it listens on.
    pub label: String,
    /// Its process id.
    pub pid: u32,
}

/// User and system CPU time of a process, in clock ticks (`/proc/PID/stat` fields 14 and 15).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuTicks {
    /// Time scheduled in user mode.
    pub user: u64,
    /// Time scheduled in kernel mode.
    pub system: u64,
}

/// Parses the contents of `/proc/PID/stat`. The second field is the command name in
/// parentheses and may itself contain spaces and parentheses, so the fields are counted from
/// the *last* `)`.
pub fn parse_stat(stat: &str) -> Option<CpuTicks> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    // Fields from 3 (state) on; utime and stime are fields 14 and 15.
    let mut fields = after_name.split_whitespace().skip(11);
    let user = fields.next()?.parse().ok()?;
    let system = fields.next()?.parse().ok()?;
    Some(CpuTicks { user, system })
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`, 100 on Linux).
pub fn ticks_per_second() -> f64 {
    // SAFETY: sysconf reads a constant of the system; no memory is passed.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

/// CPU seconds (user + system) process `pid` has used so far, if it is running.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let t = parse_stat(&stat)?;
    Some((t.user + t.system) as f64 / ticks_per_second())
}

/// The CPU seconds of a set of processes at one moment.
#[derive(Debug, Clone)]
pub struct CpuSample {
    at: Instant,
    seconds: Vec<Option<f64>>,
}

impl CpuSample {
    /// Samples every process of `processes` (in that order) now.
    pub fn take(processes: &[ServerProcess]) -> CpuSample {
        CpuSample {
            at: Instant::now(),
            seconds: processes.iter().map(|p| cpu_seconds(p.pid)).collect(),
        }
    }

    /// What the processes used from `self` until `later` (a sample of the same processes).
    /// A process that was not readable at either end counts as unmeasured.
    pub fn until(&self, later: &CpuSample) -> CpuUse {
        let wall = later.at.saturating_duration_since(self.at);
        let per_process: Vec<Option<f64>> = self
            .seconds
            .iter()
            .zip(&later.seconds)
            .map(|(a, b)| Some((b.as_ref()? - a.as_ref()?).max(0.0)))
            .collect();
        CpuUse { wall, per_process }
    }
}

/// CPU used by a set of processes over a stretch of wall-clock time.
#[derive(Debug, Clone)]
pub struct CpuUse {
    /// The stretch.
    pub wall: Duration,
    /// Each process's CPU seconds (None: not measured).
    pub per_process: Vec<Option<f64>>,
}

impl CpuUse {
    /// CPU seconds of the processes measured, together; None if none was.
    pub fn seconds(&self) -> Option<f64> {
        let measured: Vec<f64> = self.per_process.iter().flatten().copied().collect();
        (!measured.is_empty()).then(|| measured.iter().sum())
    }

    /// Processes measured.
    pub fn measured(&self) -> usize {
        self.per_process.iter().flatten().count()
    }

    /// CPU cores kept busy on average: CPU seconds over wall seconds.
    pub fn cores(&self) -> Option<f64> {
        let wall = self.wall.as_secs_f64();
        (wall > 0.0).then_some(())?;
        Some(self.seconds()? / wall)
    }
}

/// The CPU of this process (the load generator) now, as a one-process sample.
pub fn own_process() -> ServerProcess {
    ServerProcess {
        label: "load generator".into(),
        pid: std::process::id(),
    }
}

/// The TCP ports with a listening socket, each with the socket's inode, from the text of
/// `/proc/net/tcp` or `/proc/net/tcp6`.
pub fn parse_listening(table: &str) -> Vec<(u16, u64)> {
    const LISTEN: &str = "0A";
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local = fields.get(1)?;
            if *fields.get(3)? != LISTEN {
                return None;
            }
            let port = u16::from_str_radix(local.rsplit_once(':')?.1, 16).ok()?;
            let inode = fields.get(9)?.parse().ok()?;
            Some((port, inode))
        })
        .collect()
}

/// The processes listening on TCP `ports` on this machine, by port (ports nobody visible to
/// this user listens on are missing).
pub fn listening_pids(ports: &[u16]) -> BTreeMap<u16, u32> {
    let wanted: BTreeSet<u16> = ports.iter().copied().collect();
    let mut by_inode: BTreeMap<u64, u16> = BTreeMap::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for (port, inode) in parse_listening(&text) {
            if wanted.contains(&port) && inode != 0 {
                by_inode.insert(inode, port);
            }
        }
    }
    let mut found = BTreeMap::new();
    if by_inode.is_empty() {
        return found;
    }
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in procs.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let Ok(link) = std::fs::read_link(fd.path()) else {
                continue;
            };
            let inode = link
                .to_str()
                .and_then(|l| l.strip_prefix("socket:["))
                .and_then(|l| l.strip_suffix(']'))
                .and_then(|l| l.parse::<u64>().ok());
            if let Some(port) = inode.and_then(|i| by_inode.get(&i)) {
                found.insert(*port, pid);
            }
        }
    }
    found
}

/// Whether `host` names this machine's loopback interface (where the processes behind an
/// endpoint can be found in `/proc`).
pub fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The processes behind `addresses` (`host:port`, loopback hosts only), labelled by address;
/// each process once, however many of the addresses it listens on.
pub fn processes_at(addresses: &[String]) -> Vec<ServerProcess> {
    let local: Vec<(&String, u16)> = addresses
        .iter()
        .filter_map(|a| {
            let (host, port) = a.rsplit_once(':')?;
            is_loopback(host).then_some((a, port.parse().ok()?))
        })
        .collect();
    let ports: Vec<u16> = local.iter().map(|&(_, p)| p).collect();
    let pids = listening_pids(&ports);
    let mut seen = BTreeSet::new();
    local
        .into_iter()
        .filter_map(|(address, port)| {
            let pid = *pids.get(&port)?;
            seen.insert(pid).then(|| ServerProcess {
                label: address.clone(),
                pid,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_last_parenthesis() {
        let plain = "1234 (strata) S 1 1234 1234 0 -1 4194560 2000 0 0 0 250 75 0 0 20 0 9 0";
        assert_eq!(
            parse_stat(plain),
            Some(CpuTicks {
                user: 250,
                system: 75
            })
        );
        // A command name may hold spaces and parentheses (up to 15 bytes).
        let odd = "77 (a) b (c) d) R 1 77 77 0 -1 4194560 10 0 0 0 31 7 0 0 20 0 1 0";
        assert_eq!(
            parse_stat(odd),
            Some(CpuTicks {
                user: 31,
                system: 7
            })
        );
        assert_eq!(parse_stat("12 (x) S 1 2"), None);
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn this_process_has_a_cpu_time() {
        let busy_until = Instant::now() + Duration::from_millis(30);
        while Instant::now() < busy_until {
            std::hint::black_box(0u64);
        }
        assert!(cpu_seconds(std::process::id()).is_some());
        let me = [own_process()];
        let a = CpuSample::take(&me);
        let b = CpuSample::take(&me);
        let used = a.until(&b);
        assert_eq!(used.measured(), 1);
        assert!(used.seconds().is_some_and(|s| s >= 0.0));
    }

    #[test]
    fn unmeasured_processes_are_left_out() {
        let gone = ServerProcess {
            label: "gone".into(),
            pid: u32::MAX,
        };
        let a = CpuSample::take(std::slice::from_ref(&gone));
        let used = a.until(&CpuSample::take(&[gone]));
        assert_eq!(used.measured(), 0);
        assert_eq!(used.seconds(), None);
        assert_eq!(used.cores(), None);
    }

    #[test]
    fn listening_sockets_are_read_from_the_tcp_tables() {
        let v4 = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0100007F:1F91 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 123456 1 0000000000000000 100 0 0 10 0\n\
   1: 0100007F:D2B4 0100007F:1F91 01 00000000:00000000 00:00000000 00000000  1000        0 654321 1 0000000000000000 20 4 30 10 -1\n";
        assert_eq!(parse_listening(v4), vec![(8081, 123456)]);
        let v6 = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 00000000000000000000000001000000:0929 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 999 1 0000000000000000 100 0 0 10 0\n";
        assert_eq!(parse_listening(v6), vec![(2345, 999)]);
    }

    #[test]
    fn a_listener_of_this_process_is_found_by_its_port() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let found = processes_at(std::slice::from_ref(&address));
        assert_eq!(
            found,
            vec![ServerProcess {
                label: address,
                pid: std::process::id()
            }]
        );
        assert!(processes_at(&["10.1.2.3:80".to_string()]).is_empty());
    }

    #[test]
    fn loopback_hosts() {
        for host in ["127.0.0.1", "localhost", "::1", "[::1]", "127.1.2.3"] {
            assert!(is_loopback(host), "{host}");
        }
        for host in ["10.0.0.1", "example.com", "0.0.0.0"] {
            assert!(!is_loopback(host), "{host}");
        }
    }
}
