//! One child process of a test cluster.

use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A process the harness can start, signal, restart and stop. Its stderr and stdout go to a
/// log file (appended across restarts). Killed on drop.
pub struct Proc {
    program: PathBuf,
    args: Vec<OsString>,
    log: PathBuf,
    child: Option<Child>,
    paused: bool,
}

fn signal(child: &Child, sig: libc::c_int) {
    let pid = libc::pid_t::try_from(child.id()).expect("pid fits pid_t");
    // SAFETY: `kill` has no memory-safety preconditions; the pid is our own child, not yet
    // reaped (we hold its `Child`), so it cannot name another process.
    unsafe {
        libc::kill(pid, sig);
    }
}

impl Proc {
    /// A process of `program` with `args`, logging to `log`; not started yet.
    pub fn new(program: impl Into<PathBuf>, args: Vec<OsString>, log: impl Into<PathBuf>) -> Proc {
        Proc {
            program: program.into(),
            args,
            log: log.into(),
            child: None,
            paused: false,
        }
    }

    /// Process id while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Resident memory (VmRSS) of the running process, in bytes.
    pub fn rss_bytes(&self) -> Option<u64> {
        self.status_kb("VmRSS:")
    }

    /// Anonymous resident memory (RssAnon: heap and stacks, not mapped files such as
    /// memory-mapped tables, which are cache) of the running process, in bytes.
    pub fn rss_anon_bytes(&self) -> Option<u64> {
        self.status_kb("RssAnon:")
    }

    fn status_kb(&self, field: &str) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()?)).ok()?;
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix(field))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kb * 1024)
    }

    /// Starts the process (again). Panics if it is running.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "process already running");
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("opening the process log");
        let child = Command::new(&self.program)
            .args(&self.args)
            .env(
                "RUST_LOG",
                std::env::var("STRATA_TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("cloning the log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", self.program.display()));
        self.child = Some(child);
        self.paused = false;
    }

    /// Whether the process was started and not yet killed or stopped (it may have exited by
    /// itself: see [`Proc::try_exit_status`]).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Whether the process is paused with SIGSTOP.
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// The exit status if the process already exited by itself.
    pub fn try_exit_status(&mut self) -> Option<ExitStatus> {
        self.child.as_mut()?.try_wait().ok().flatten()
    }

    /// SIGKILL, and reap it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.paused = false;
    }

    /// SIGSTOP: the process freezes (its sockets stay open, nothing answers).
    pub fn pause(&mut self) {
        if let Some(child) = &self.child {
            signal(child, libc::SIGSTOP);
            self.paused = true;
        }
    }

    /// SIGCONT after [`Proc::pause`].
    pub fn resume(&mut self) {
        if let Some(child) = &self.child {
            signal(child, libc::SIGCONT);
            self.paused = false;
        }
    }

    /// SIGTERM, then waits up to `grace` for a clean exit before SIGKILL. Returns the exit
    /// status of a clean exit.
    pub fn stop(&mut self, grace: Duration) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        if self.paused {
            signal(&child, libc::SIGCONT);
            self.paused = false;
        }
        signal(&child, libc::SIGTERM);
        let until = Instant::now() + grace;
        while Instant::now() < until {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    /// Waits up to `timeout` for the process to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let until = Instant::now() + timeout;
        while Instant::now() < until {
            if let Some(status) = self.try_exit_status() {
                self.child = None;
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    /// The log file.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The log so far (for assertions and failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}
