//! SIGINT and SIGTERM during a run: the first asks the run to stop starting new
//! files (those in flight finish, and the report summary, ledger and crosswalk are
//! written); the second ends the process at once. Outputs stay whole either way:
//! each is written to a temporary and renamed, and the next run removes temporaries.

use std::sync::atomic::{AtomicUsize, Ordering};

static SIGNALS: AtomicUsize = AtomicUsize::new(0);

const FIRST: &[u8] = b"\ndicom-deid: interrupted: finishing the files in flight, then writing the \
report and ledger (interrupt again to stop at once)\n";

extern "C" fn on_signal(_: libc::c_int) {
    // Only async-signal-safe calls here: an atomic add, write(2) and _exit(2).
    if SIGNALS.fetch_add(1, Ordering::SeqCst) == 0 {
        // SAFETY: write(2) on fd 2 with a valid static buffer; its result is not needed.
        unsafe { libc::write(2, FIRST.as_ptr().cast(), FIRST.len()) };
    } else {
        // SAFETY: _exit ends the process without running anything else.
        unsafe { libc::_exit(130) };
    }
}

/// Installs the handlers for the rest of the process (a run is its last work).
pub fn install() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: a zeroed sigaction with a plain handler and an empty mask is valid;
        // the handler only does async-signal-safe work.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
            sa.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

/// A signal asked the run to stop.
pub fn requested() -> bool {
    SIGNALS.load(Ordering::Relaxed) > 0
}

/// The command line that resumes this run: the same one (the ledger makes a run
/// skip what is finished), without `--no-resume`, shell-quoted.
pub fn resume_command(args: impl IntoIterator<Item = std::ffi::OsString>) -> String {
    let mut out = Vec::new();
    for (i, a) in args.into_iter().enumerate() {
        let a = a.to_string_lossy().into_owned();
        if a == "--no-resume" {
            continue;
        }
        if i == 0 {
            // The program as the user typed it would be best; its file name is
            // what a PATH install runs.
            let name = std::path::Path::new(&a)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or(a);
            out.push(quote(&name));
        } else {
            out.push(quote(&a));
        }
    }
    out.join(" ")
}

fn quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_resume_command_is_the_same_command_quoted_without_no_resume() {
        let args = [
            "/usr/local/bin/dicom-deid",
            "run",
            "in dir",
            "-o",
            "out",
            "--no-resume",
            "--profile",
            "it's.yaml",
        ]
        .map(std::ffi::OsString::from);
        assert_eq!(
            resume_command(args),
            r"dicom-deid run 'in dir' -o out --profile 'it'\''s.yaml'"
        );
    }
}
