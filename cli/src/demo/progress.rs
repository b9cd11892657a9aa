//! Progress of a long step: an indicatif bar on stderr when stderr is a terminal, otherwise
//! a plain line every few seconds (logs and pipes get no control characters).

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// How often a plain progress line is printed.
const PLAIN_EVERY: Duration = Duration::from_secs(2);

/// Progress towards `total` units.
pub struct Progress {
    bar: Option<ProgressBar>,
    /// Print a line every few seconds when there is no bar.
    plain: bool,
    label: String,
    total: u64,
    started: Instant,
    last_line: Instant,
}

impl Progress {
    /// Progress of `label` towards `total` (e.g. keys written).
    pub fn new(label: &str, total: u64) -> Progress {
        let template = "  {prefix} [{bar:30}] {pos}/{len} {msg} eta {eta}";
        Progress::with_bar(
            label,
            total,
            std::io::stderr().is_terminal(),
            true,
            template,
        )
    }

    /// Progress shown only as a bar whose text is the caller's message (see
    /// [`Progress::set_with_message`]), and only when stderr is a terminal and `show` (no
    /// plain lines otherwise).
    pub fn bar_only(label: &str, total: u64, show: bool) -> Progress {
        let template = "  {prefix} [{bar:30}] {msg}";
        Progress::with_bar(
            label,
            total,
            show && std::io::stderr().is_terminal(),
            false,
            template,
        )
    }

    fn with_bar(label: &str, total: u64, bar: bool, plain: bool, template: &str) -> Progress {
        let bar = bar.then(|| {
            let style = ProgressStyle::with_template(template)
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
            let bar = ProgressBar::new(total).with_style(style);
            bar.set_prefix(label.to_owned());
            bar
        });
        let now = Instant::now();
        Progress {
            bar,
            plain,
            label: label.to_owned(),
            total,
            started: now,
            last_line: now,
        }
    }

    /// `done` units are done.
    pub fn set(&mut self, done: u64) {
        let rate = done as f64 / self.started.elapsed().as_secs_f64().max(1e-3);
        self.set_with_message(done, format!("{rate:.0}/s"));
    }

    /// `done` units are done; the bar says `message`.
    pub fn set_with_message(&mut self, done: u64, message: String) {
        let rate = done as f64 / self.started.elapsed().as_secs_f64().max(1e-3);
        match &self.bar {
            Some(bar) => {
                bar.set_position(done);
                bar.set_message(message);
            }
            None if self.plain && self.last_line.elapsed() >= PLAIN_EVERY => {
                self.last_line = Instant::now();
                say_err!(
                    "  {}: {done}/{} ({:.0}%, {rate:.0}/s)",
                    self.label,
                    self.total,
                    100.0 * done as f64 / self.total.max(1) as f64
                );
            }
            None => {}
        }
    }

    /// Removes the bar (the caller prints the result).
    pub fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}
