//! The progress bar of a run, on stderr, only on a terminal and never with `-q`.
//! Lines printed through it (failures, warnings) go above the bar, which is redrawn
//! under them. Not on a terminal there is no bar, and lines are printed as they come.

use crate::report::Summary;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Inputs found so far by the walk that runs ahead of the workers, and whether it
/// has finished (until then the total is a lower bound: "≥ N").
#[derive(Debug, Default)]
pub struct WalkTotal {
    pub found: AtomicU64,
    pub done: AtomicBool,
}

/// The bar, or nothing when stderr is not a terminal or the run is quiet.
pub struct Progress {
    bar: Option<ProgressBar>,
    total: Arc<WalkTotal>,
    started: Instant,
    last: Option<Instant>,
}

/// Redrawing more often than this only costs time: the eye cannot follow it.
const REFRESH: Duration = Duration::from_millis(100);

impl Progress {
    /// No bar: lines go straight to stderr.
    pub fn hidden() -> Progress {
        Progress {
            bar: None,
            total: Arc::default(),
            started: Instant::now(),
            last: None,
        }
    }

    /// A bar on stderr, fed with the walk's running total.
    pub fn on_stderr(total: Arc<WalkTotal>) -> Progress {
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("[{bar:20}] {wide_msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        Progress {
            bar: Some(bar),
            total,
            started: Instant::now(),
            last: None,
        }
    }

    pub fn is_shown(&self) -> bool {
        self.bar.is_some()
    }

    /// Prints one line above the bar (or alone, without a bar).
    pub fn println(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.suspend(|| crate::say!("{line}")),
            None => crate::say!("{line}"),
        }
    }

    /// Moves the bar to the summary's counts (at most every [`REFRESH`]).
    pub fn update(&mut self, s: &Summary) {
        let Some(bar) = &self.bar else { return };
        let now = Instant::now();
        if self.last.is_some_and(|t| now - t < REFRESH) {
            return;
        }
        self.last = Some(now);
        let found = self.total.found.load(Ordering::Relaxed).max(s.files_seen);
        let walk_done = self.total.done.load(Ordering::Relaxed);
        bar.set_message(render(&State::of(
            s,
            found,
            walk_done,
            self.started.elapsed(),
        )));
        // Length and position in one redraw.
        bar.update(|st| {
            st.set_len(found);
            st.set_pos(s.files_seen);
        });
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// What the bar's text shows, apart from the bar.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct State {
    pub done: u64,
    pub total: u64,
    /// The walk has found every input: `total` is exact.
    pub total_known: bool,
    pub bytes: u64,
    pub elapsed: Duration,
    pub failed: u64,
    pub quarantined: u64,
}

impl State {
    pub fn of(s: &Summary, total: u64, total_known: bool, elapsed: Duration) -> State {
        State {
            done: s.files_seen,
            total,
            total_known,
            bytes: s.bytes_in,
            elapsed,
            failed: s.failed,
            quarantined: s.failed_by_kind.get("quarantined").copied().unwrap_or(0),
        }
    }
}

/// `1200/≥5000 files  12 failed (10 quarantined)  ETA 0:45  310.2 MB  85 files/s  3.1 MB/s`:
/// what matters most first, since a narrow terminal cuts the end off.
pub fn render(st: &State) -> String {
    let secs = st.elapsed.as_secs_f64();
    let rate = if secs > 0.0 {
        st.done as f64 / secs
    } else {
        0.0
    };
    let mut line = format!(
        "{}/{}{} files",
        st.done,
        if st.total_known { "" } else { "≥" },
        st.total
    );
    if st.failed > 0 {
        line.push_str(&format!("  {} failed", st.failed));
        if st.quarantined > 0 {
            line.push_str(&format!(" ({} quarantined)", st.quarantined));
        }
    }
    if rate > 0.0 && st.total >= st.done {
        let left = Duration::from_secs_f64((st.total - st.done) as f64 / rate);
        line.push_str(&format!(
            "  ETA {}{}",
            if st.total_known { "" } else { "≥" },
            clock(left)
        ));
    }
    line.push_str(&format!(
        "  {}  {:.0} files/s  {}/s",
        megabytes(st.bytes),
        rate,
        megabytes(if secs > 0.0 {
            (st.bytes as f64 / secs) as u64
        } else {
            0
        }),
    ));
    line
}

/// Bytes as MB with one decimal (decimal megabytes, as disks are sold).
pub fn megabytes(b: u64) -> String {
    format!("{:.1} MB", b as f64 / 1e6)
}

/// `m:ss`, or `h:mm:ss` from an hour on.
pub fn clock(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(done: u64, total: u64, known: bool) -> State {
        State {
            done,
            total,
            total_known: known,
            bytes: 310_200_000,
            elapsed: Duration::from_secs(10),
            failed: 0,
            quarantined: 0,
        }
    }

    #[test]
    fn a_total_still_growing_is_a_lower_bound() {
        assert_eq!(
            render(&state(850, 5000, false)),
            "850/≥5000 files  ETA ≥0:48  310.2 MB  85 files/s  31.0 MB/s"
        );
    }

    #[test]
    fn a_known_total_gives_an_eta_and_failures_are_counted() {
        let mut s = state(850, 5000, true);
        s.failed = 12;
        s.quarantined = 10;
        assert_eq!(
            render(&s),
            "850/5000 files  12 failed (10 quarantined)  ETA 0:48  310.2 MB  85 files/s  31.0 MB/s"
        );
    }

    #[test]
    fn nothing_done_yet_has_no_eta() {
        let mut s = state(0, 3, false);
        s.bytes = 0;
        s.elapsed = Duration::ZERO;
        assert_eq!(render(&s), "0/≥3 files  0.0 MB  0 files/s  0.0 MB/s");
    }

    #[test]
    fn clocks() {
        assert_eq!(clock(Duration::from_secs(59)), "0:59");
        assert_eq!(clock(Duration::from_secs(3725)), "1:02:05");
    }

    /// The bar as a terminal shows it: drawn into an off-screen target, the text
    /// of the line is the one [`render`] gives.
    #[test]
    fn the_bar_draws_the_rendered_line() {
        let bar = ProgressBar::with_draw_target(Some(10), ProgressDrawTarget::hidden());
        bar.set_style(ProgressStyle::with_template("[{bar:10}] {msg}").unwrap());
        bar.set_position(5);
        bar.set_message(render(&state(5, 10, true)));
        let text = bar.message();
        assert!(text.starts_with("5/10 files"), "{text}");
    }
}
