//! What the driver measures about its own process: anonymous memory (`RssAnon`, sampled,
//! keeping the peak), bytes handed to `write(2)`, the size of a directory, and latency
//! histograms.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use hdrhistogram::Histogram;

/// A field of `/proc/self/status` in bytes (the file gives kB), if present.
pub fn status_bytes(field: &str) -> Option<u64> {
    let text = fs::read_to_string("/proc/self/status").ok()?;
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        let kb: u64 = rest.trim().trim_end_matches("kB").trim().parse().ok()?;
        Some(kb * 1024)
    })
}

/// Bytes of file pages this process has dirtied so far (`write_bytes` of `/proc/self/io`):
/// every engine's logs, tables and manifests, counted the same way whether they were written
/// with `write(2)` or through a writable mapping, and whether or not the page cache has
/// written them out yet. (`wchar`, the bytes handed to `write(2)`, would miss mapped writes.)
/// Counted in whole pages: a page dirtied again after it was written back counts again, as
/// the device writes it again.
pub fn bytes_written() -> u64 {
    fs::read_to_string("/proc/self/io")
        .ok()
        .and_then(|text| {
            text.lines().find_map(|l| {
                l.strip_prefix("write_bytes:")
                    .and_then(|v| v.trim().parse().ok())
            })
        })
        .unwrap_or(0)
}

/// Bytes allocated on disk to the regular files under `dir` (`st_blocks`, so preallocated
/// but unwritten journal space counts and sparse holes do not, as `du` reports).
pub fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map(|m| m.blocks() * 512).unwrap_or(0),
            _ => 0,
        })
        .sum()
}

/// Samples `RssAnon` every 10 ms on a thread of its own and keeps the peak since the last
/// [`reset`](RssSampler::reset) and since the start.
pub struct RssSampler {
    window_peak: Arc<AtomicU64>,
    run_peak: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl RssSampler {
    /// Starts sampling.
    pub fn start() -> Self {
        let window_peak = Arc::new(AtomicU64::new(0));
        let run_peak = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (w, r, s) = (window_peak.clone(), run_peak.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("rss-sampler".into())
            .spawn(move || {
                while !s.load(Ordering::Relaxed) {
                    if let Some(rss) = status_bytes("RssAnon") {
                        w.fetch_max(rss, Ordering::Relaxed);
                        r.fetch_max(rss, Ordering::Relaxed);
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
            })
            .ok();
        RssSampler {
            window_peak,
            run_peak,
            stop,
            thread,
        }
    }

    /// Samples now, returns the peak since the last reset, and starts a new window.
    pub fn reset(&self) -> u64 {
        let now = status_bytes("RssAnon").unwrap_or(0);
        self.run_peak.fetch_max(now, Ordering::Relaxed);
        self.window_peak.swap(now, Ordering::Relaxed).max(now)
    }

    /// Samples now and returns the peak since the start.
    pub fn run_peak(&self) -> u64 {
        let now = status_bytes("RssAnon").unwrap_or(0);
        self.run_peak.fetch_max(now, Ordering::Relaxed).max(now)
    }
}

impl Drop for RssSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A latency histogram in nanoseconds, 1 ns to 1 hour at 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000_000, 3).expect("valid histogram bounds")
}
