//! One child process of a local cluster: started, signalled, restarted on the same arguments,
//! stopped; its output appended to a log file.
//!
//! A child never outlives the process that launched it: it is started with
//! `PR_SET_PDEATHSIG = SIGKILL` (Linux), so the kernel kills it when its parent dies, even by
//! SIGKILL; and [`Proc`]'s `Drop` kills it when the owner is dropped normally. The death signal
//! follows the *thread* that forked the child: start children from a thread that lives as long
//! as they should (the main thread, or a runtime worker; not a short-lived blocking thread).

use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A process that can be started, signalled, restarted and stopped. Its stderr and stdout go
/// to a log file (appended across restarts). Killed on drop.
pub struct Proc {
    program: PathBuf,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
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
            env: Vec::new(),
            log: log.into(),
            child: None,
            paused: false,
        }
    }

    /// Sets an environment variable of the process (from its next start).
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Proc {
        self.env.push((key.into(), value.into()));
        self
    }

    /// The arguments it runs with.
    pub fn args(&self) -> &[OsString] {
        &self.args
    }

    /// Process id while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Resident memory (VmRSS) of the running process, in bytes.
    pub fn rss_bytes(&self) -> Option<u64> {
        proc_status_bytes(self.pid()?, "VmRSS:")
    }

    /// Anonymous resident memory (RssAnon: heap and stacks, not mapped files such as
    /// memory-mapped tables, which are cache) of the running process, in bytes.
    pub fn rss_anon_bytes(&self) -> Option<u64> {
        proc_status_bytes(self.pid()?, "RssAnon:")
    }

    /// Starts the process (again). Fails if it is running or cannot be started.
    pub fn start(&mut self) -> io::Result<()> {
        if self.child.is_some() {
            return Err(io::Error::other(format!(
                "{} is already running",
                self.program.display()
            )));
        }
        let log = File::options().create(true).append(true).open(&self.log)?;
        let parent = std::process::id();
        let mut command = Command::new(&self.program);
        command
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        // SAFETY: the closure runs in the forked child before exec and only makes
        // async-signal-safe calls (prctl, getppid, _exit), allocating nothing.
        unsafe {
            command.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(io::Error::last_os_error());
                }
                // The parent may have died between fork and prctl: then nobody would kill us.
                if u32::try_from(libc::getppid()).ok() != Some(parent) {
                    libc::_exit(1);
                }
                Ok(())
            });
        }
        let child = command.spawn().map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("starting {}: {e}", self.program.display()),
            )
        })?;
        self.child = Some(child);
        self.paused = false;
        Ok(())
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

    /// SIGTERM without waiting (see [`Proc::stop`]); several processes stop faster when all
    /// are signalled first.
    pub fn terminate(&mut self) {
        if let Some(child) = &self.child {
            if self.paused {
                signal(child, libc::SIGCONT);
                self.paused = false;
            }
            signal(child, libc::SIGTERM);
        }
    }

    /// SIGTERM, then waits up to `grace` for a clean exit before SIGKILL. Returns the exit
    /// status of a clean exit.
    pub fn stop(&mut self, grace: Duration) -> Option<ExitStatus> {
        self.terminate();
        let status = self.wait_exit(grace);
        self.kill();
        status
    }

    /// Waits up to `timeout` for the process to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let until = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_exit_status() {
                self.child = None;
                return Some(status);
            }
            if Instant::now() >= until {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
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

/// A field of `/proc/PID/status` given in kB, in bytes.
pub fn proc_status_bytes(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
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
