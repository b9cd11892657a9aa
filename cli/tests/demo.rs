//! `strata demo` as a user runs it: the real binary, a real cluster of child processes.
//!
//! The demo's tests start many processes each, so they run one at a time ([`serial`]); each
//! kills what it started, even when it fails.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Longest a whole small demo may take before the test gives up (a hang, not a timing).
const DEMO_DEADLINE: Duration = Duration::from_secs(300);

fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn strata() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_strata"));
    c.env_remove("STRATA_MASTERS").env_remove("RUST_LOG");
    c
}

/// A running `strata demo` whose stdout is read line by line; killed (with every child pid
/// it printed) on drop, and its directory removed.
struct Demo {
    child: Child,
    lines: mpsc::Receiver<String>,
    output: Vec<String>,
    pids: Vec<u32>,
    dir: Option<PathBuf>,
}

impl Demo {
    fn start(args: &[&str]) -> Demo {
        let mut child = strata()
            .arg("demo")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting strata demo");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Demo {
            child,
            lines,
            output: Vec::new(),
            pids: Vec::new(),
            dir: None,
        }
    }

    /// Reads lines until one contains `needle` (panics with the output so far after
    /// `timeout` or at the end of the output), noting pids and the directory on the way.
    fn read_until(&mut self, needle: &str, timeout: Duration) {
        let until = Instant::now() + timeout;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let found = line.contains(needle);
                    self.note(line);
                    if found {
                        return;
                    }
                }
                Err(_) => panic!(
                    "no line with {needle:?} within {timeout:?}; output:\n{}",
                    self.output.join("\n")
                ),
            }
        }
    }

    /// Keeps `line`, noting the pids and the directory it may name.
    fn note(&mut self, line: String) {
        if let Some(pids) = line.trim().strip_prefix("pids:") {
            self.pids = pids
                .split_whitespace()
                .map(|p| p.parse().expect("a pid"))
                .collect();
        }
        if let Some(dir) = line.trim().strip_prefix("data and logs:") {
            self.dir = Some(PathBuf::from(dir.trim()));
        }
        self.output.push(line);
    }

    /// Reads every remaining line (until the demo closes stdout).
    fn read_to_end(&mut self, timeout: Duration) {
        let until = Instant::now() + timeout;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.note(line),
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
                Err(mpsc::RecvTimeoutError::Timeout) => panic!(
                    "the demo did not finish within {timeout:?}; output:\n{}",
                    self.output.join("\n")
                ),
            }
        }
    }

    fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let until = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("waiting for the demo") {
                return status;
            }
            assert!(
                Instant::now() < until,
                "the demo did not exit within {timeout:?}; output:\n{}",
                self.output.join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn signal(&self, sig: libc::c_int) {
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid fits");
        // SAFETY: kill(2) has no memory-safety preconditions; the pid is our unreaped child.
        unsafe {
            libc::kill(pid, sig);
        }
    }

    fn text(&self) -> String {
        self.output.join("\n")
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for &pid in &self.pids {
            if is_alive(pid) {
                if let Ok(pid) = libc::pid_t::try_from(pid) {
                    // SAFETY: as above; the pid was printed by the demo as its child's.
                    unsafe {
                        libc::kill(pid, libc::SIGKILL);
                    }
                }
            }
        }
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Whether process `pid` exists and is not a zombie.
fn is_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name in parentheses (which may contain spaces).
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Waits up to `timeout` for every pid to be gone; returns the ones still alive.
fn survivors(pids: &[u32], timeout: Duration) -> Vec<u32> {
    let until = Instant::now() + timeout;
    loop {
        let alive: Vec<u32> = pids.iter().copied().filter(|&p| is_alive(p)).collect();
        if alive.is_empty() || Instant::now() >= until {
            return alive;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The number after `label` on the line that starts with it (after indentation).
fn number_after(text: &str, label: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.trim_start().starts_with(label))?;
    let rest = line.trim_start()[label.len()..].trim_start();
    let digits: String = rest
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == ',')
        .filter(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

#[test]
fn the_demo_moves_shards_survives_a_leader_kill_and_verifies_every_key() {
    let _serial = serial();
    let mut demo = Demo::start(&["--keys", "2000", "--shards", "16", "--writers", "32"]);
    demo.read_to_end(DEMO_DEADLINE);
    let status = demo.wait(Duration::from_secs(30));
    let text = demo.text();
    assert!(status.success(), "the demo failed ({status}):\n{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("verified: ") && l.contains("all values exact")),
        "no verification line:\n{text}"
    );
    let moved = number_after(&text, "shards moved:").expect("a line `shards moved: N`");
    assert!(moved > 0, "no shard moved:\n{text}");
    assert!(
        text.contains("new leader elected:"),
        "no new leader in the summary:\n{text}"
    );
    assert_eq!(
        number_after(&text, "keys:").map(|k| k >= 2000),
        Some(true),
        "the summary counts the keys:\n{text}"
    );
    let dir = demo.dir.clone().expect("the demo prints its directory");
    assert!(!dir.exists(), "{} was not removed", dir.display());
    assert!(!demo.pids.is_empty(), "the demo prints its children's pids");
    assert_eq!(
        survivors(&demo.pids, Duration::from_secs(5)),
        Vec::<u32>::new()
    );
}

/// Starts `strata demo --keep` and reads until its banner (pids, directory, masters).
fn kept_demo(more: &[&str]) -> Demo {
    let mut args = vec!["--keep", "--shards", "8", "--groups", "1"];
    args.extend_from_slice(more);
    let mut demo = Demo::start(&args);
    demo.read_until("export STRATA_MASTERS=", Duration::from_secs(120));
    assert!(
        demo.pids.len() >= 6,
        "the banner names 3 masters and 3 servers:\n{}",
        demo.text()
    );
    for &pid in &demo.pids {
        assert!(
            is_alive(pid),
            "child {pid} is not running:\n{}",
            demo.text()
        );
    }
    demo
}

#[test]
fn no_child_outlives_a_sigkilled_demo() {
    let _serial = serial();
    let mut demo = kept_demo(&[]);
    demo.signal(libc::SIGKILL);
    demo.wait(Duration::from_secs(10));
    let alive = survivors(&demo.pids, Duration::from_secs(5));
    assert!(alive.is_empty(), "children outlived the demo: {alive:?}");
}

#[test]
fn ctrl_c_stops_every_child_and_removes_the_directory() {
    let _serial = serial();
    let prometheus = tempfile::tempdir().unwrap();
    let prometheus_dir = prometheus.path().join("scrape");
    let mut demo = kept_demo(&["--prometheus", prometheus_dir.to_str().unwrap()]);
    let dir: PathBuf = demo.dir.clone().expect("the banner names the directory");
    assert!(dir.exists());
    // --prometheus wrote a configuration that scrapes all six processes, which promtool
    // accepts with the alert rules written beside it.
    let config = prometheus_dir.join("prometheus.yml");
    let text = std::fs::read_to_string(&config).expect("prometheus.yml written");
    assert!(
        demo.text()
            .contains(&format!("--config.file={}", config.display())),
        "{}",
        demo.text()
    );
    let targets = text.matches("127.0.0.1:").count();
    assert_eq!(targets, 6, "{text}");
    let page = demo.text();
    let page = page
        .lines()
        .find_map(|l| l.trim().strip_prefix("status page: http://"))
        .expect("the banner names the status page")
        .trim_end_matches('/');
    assert!(
        text.contains(page),
        "the first master's endpoint {page} in {text}"
    );
    let checked = Command::new("promtool")
        .args(["check", "config"])
        .arg(&config)
        .output()
        .expect("promtool (apt install prometheus) runs");
    assert!(
        checked.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
    demo.signal(libc::SIGINT);
    let status = demo.wait(Duration::from_secs(30));
    assert!(!status.success(), "a Ctrl-C'd demo exits non-zero");
    let alive = survivors(&demo.pids, Duration::from_secs(5));
    assert!(alive.is_empty(), "children outlived the demo: {alive:?}");
    assert!(
        !Path::new(&dir).exists(),
        "{} was not removed",
        dir.display()
    );
}
