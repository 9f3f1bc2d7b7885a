//! The persistent queue of one destination: a folder of de-identified Part 10 files
//! (`<spool>/queue/<dest-id>/`), each made durable before the sender was told
//! success. A forwarder thread sends them, removes each once the destination has
//! it, backs off exponentially while the destination fails, and after a bounded
//! number of failed attempts (or at once, for a refusal that no retry changes)
//! moves the file to `<spool>/dead/<dest-id>/` with a `.reason.txt` beside it.
//!
//! A crash between a send and the removal re-sends that object on restart: every
//! destination treats a re-sent SOP Instance UID as the same object, so each object
//! still ends up there once.
//!
//! An object's failed attempts and the time of its next one live beside it, in
//! `<name>.retry` (written to `<name>.retry.part`, synced, renamed), so a restart
//! neither resets the count (a destination that always fails still dead-letters
//! after `max_attempts`) nor sends early.

use super::dest::{Destination, copy_to_folder, sync_dir};
use super::scu::{Peer, Sent, send_batch};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Retry policy, shared by all destinations.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    /// Failed attempts after which an object goes to the dead-letter folder.
    pub max_attempts: u32,
    pub base: Duration,
    pub max: Duration,
}

impl Retry {
    /// The wait after `failures` consecutive failures: base * 2^(failures-1), capped.
    pub fn backoff(&self, failures: u32) -> Duration {
        let exp = failures.saturating_sub(1).min(20);
        self.base.saturating_mul(1u32 << exp).min(self.max)
    }
}

/// Objects sent per association.
const BATCH: usize = 64;

pub struct Forwarder<'a> {
    pub dest: Destination,
    pub queue: PathBuf,
    pub dead: PathBuf,
    pub retry: Retry,
    pub calling_ae: String,
    pub timeout: Duration,
    /// Trust for `dimse+tls://` destinations.
    pub tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    /// Set at shutdown: finish the object in hand, then stop.
    pub stop: &'a AtomicBool,
    /// Hold a series until none of its objects arrived for this long, then send it
    /// whole in arrival order (zero: send each object as it comes).
    pub stable_age: Duration,
}

/// The entries waiting in a queue folder (temporaries start with a dot).
pub fn entries(queue: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(queue)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| {
                    let n = e.file_name();
                    let n = n.to_string_lossy();
                    !n.starts_with('.') && n.ends_with(".dcm")
                })
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// The series a queue entry belongs to: its name is `<Study>_<Series>_<SOP>.dcm`,
/// so everything before the last `_`. A name without one is a series of its own.
fn series_of(entry: &Path) -> String {
    let name = entry
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    match name.rsplit_once('_') {
        Some((series, _)) => series.to_string(),
        None => name,
    }
}

/// Of the queued `all`, those whose series is stable (no object of it arrived for
/// `age`), in arrival order. Arrival is the queue file's modification time: set
/// when the object was queued and kept on disk, so a restart changes nothing.
pub fn stable(all: &[PathBuf], age: Duration, now: SystemTime) -> Vec<PathBuf> {
    let mut arrived: Vec<(SystemTime, &PathBuf, String)> = all
        .iter()
        .filter_map(|p| {
            let t = std::fs::metadata(p).and_then(|m| m.modified()).ok()?;
            Some((t, p, series_of(p)))
        })
        .collect();
    let mut latest: HashMap<&str, SystemTime> = HashMap::new();
    for (t, _, series) in &arrived {
        let l = latest.entry(series.as_str()).or_insert(*t);
        *l = (*l).max(*t);
    }
    let ready: std::collections::HashSet<String> = latest
        .into_iter()
        .filter(|(_, t)| now.duration_since(*t).is_ok_and(|d| d >= age))
        .map(|(s, _)| s.to_string())
        .collect();
    arrived.retain(|(_, _, series)| ready.contains(series));
    arrived.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    arrived.into_iter().map(|(_, p, _)| p.clone()).collect()
}

/// An object's retry state: failed attempts so far, and when the next may start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempts {
    pub failed: u32,
    pub next: SystemTime,
}

const RETRY_SUFFIX: &str = ".retry";

/// The sidecar of a queued file.
fn sidecar(entry: &Path) -> PathBuf {
    let mut s = entry.as_os_str().to_owned();
    s.push(RETRY_SUFFIX);
    PathBuf::from(s)
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Writes the retry state of `entry` atomically and durably.
fn save_attempts(entry: &Path, a: Attempts) -> std::io::Result<()> {
    use std::io::Write;
    let path = sidecar(entry);
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".part");
    let tmp = PathBuf::from(tmp);
    let r = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        writeln!(
            f,
            "failed-attempts {}\nnext-attempt-unix-ms {}",
            a.failed,
            unix_ms(a.next)
        )?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        match path.parent() {
            Some(dir) => sync_dir(dir),
            None => Ok(()),
        }
    })();
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r
}

fn parse_attempts(text: &str) -> Option<Attempts> {
    let mut failed = None;
    let mut next = None;
    for line in text.lines() {
        match line.split_once(' ') {
            Some(("failed-attempts", n)) => failed = n.trim().parse::<u32>().ok(),
            Some(("next-attempt-unix-ms", n)) => next = n.trim().parse::<u64>().ok(),
            _ => {}
        }
    }
    Some(Attempts {
        failed: failed?,
        next: UNIX_EPOCH + Duration::from_millis(next?),
    })
}

/// The retry states of a queue's objects, from their sidecars. A sidecar whose
/// object is gone (sent or dead-lettered just before a crash) is removed.
pub fn load_attempts(queue: &Path) -> HashMap<PathBuf, Attempts> {
    let mut out = HashMap::new();
    let Ok(rd) = std::fs::read_dir(queue) else {
        return out;
    };
    for e in rd.filter_map(Result::ok) {
        let name = e.file_name();
        let name = name.to_string_lossy();
        let Some(entry) = name.strip_suffix(RETRY_SUFFIX) else {
            continue;
        };
        let entry = queue.join(entry);
        let state = std::fs::read_to_string(e.path())
            .ok()
            .and_then(|t| parse_attempts(&t));
        match state {
            Some(a) if entry.exists() => {
                out.insert(entry, a);
            }
            _ => {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    out
}

impl Forwarder<'_> {
    pub fn run(&self) {
        let stow = match &self.dest {
            Destination::Stow { base } => Some(super::stow::Stow::new(base, self.timeout)),
            _ => None,
        };
        // Mirrors the sidecars; every change is written through before it counts.
        let mut attempts = load_attempts(&self.queue);
        if !attempts.is_empty() {
            crate::say!(
                "dicom-deid serve: {} -> {}: {} queued objects had failed attempts before \
                 this start; their counts and next-attempt times are kept",
                self.dest.id(),
                self.dest,
                attempts.len()
            );
        }
        let mut failures = 0u32;
        let mut wait_until = Instant::now();
        let (mut forwarded, mut dead) = (0u64, 0u64);
        let mut last_said = (0u64, 0u64);
        while !self.stop.load(Ordering::Relaxed) {
            if Instant::now() < wait_until {
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
            let now = SystemTime::now();
            let all = entries(&self.queue);
            let waiting = all.len();
            let released = if self.stable_age.is_zero() {
                all
            } else {
                stable(&all, self.stable_age, now)
            };
            let pending: Vec<PathBuf> = released
                .into_iter()
                .filter(|p| attempts.get(p).is_none_or(|a| a.next <= now))
                .collect();
            if pending.is_empty() && waiting > 0 {
                // Everything queued waits: for its series to be stable, or for its
                // own next attempt. Both are counted in seconds; a slower poll spares
                // the stat of every queued file.
                std::thread::sleep(Duration::from_millis(200));
                continue;
            }
            if pending.is_empty() {
                if (forwarded, dead) != last_said {
                    crate::say!(
                        "dicom-deid serve: {} -> {}: {forwarded} forwarded, {dead} dead-lettered \
                         so far; queue empty",
                        self.dest.id(),
                        self.dest
                    );
                    last_said = (forwarded, dead);
                }
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
            let batch: Vec<PathBuf> = pending.into_iter().take(BATCH).collect();
            let mut transient = None;
            let mut handle = |path: &Path, sent: Sent| match sent {
                Sent::Stored => {
                    // Gone once the destination has it; a crash before this line
                    // re-sends it, which the destination takes as the same object.
                    let _ = std::fs::remove_file(path);
                    if attempts.remove(path).is_some() {
                        let _ = std::fs::remove_file(sidecar(path));
                    }
                    forwarded += 1;
                }
                Sent::Refused(why) => {
                    self.dead_letter(path, &why);
                    if attempts.remove(path).is_some() {
                        let _ = std::fs::remove_file(sidecar(path));
                    }
                    dead += 1;
                }
                Sent::Transient(why) => {
                    let failed = attempts.get(path).map_or(0, |a| a.failed) + 1;
                    if failed >= self.retry.max_attempts {
                        self.dead_letter(
                            path,
                            &format!("gave up after {failed} attempts; last: {why}"),
                        );
                        if attempts.remove(path).is_some() {
                            let _ = std::fs::remove_file(sidecar(path));
                        }
                        dead += 1;
                    } else {
                        let a = Attempts {
                            failed,
                            next: SystemTime::now() + self.retry.backoff(failed),
                        };
                        // Not durable (a full disk): the count still holds in
                        // memory for this process.
                        if let Err(e) = save_attempts(path, a) {
                            crate::say!(
                                "dicom-deid serve: cannot record the attempts of {}: {e}",
                                path.display()
                            );
                        }
                        attempts.insert(path.to_path_buf(), a);
                    }
                    transient.get_or_insert(why);
                }
            };
            match &self.dest {
                Destination::Folder(root) => {
                    for path in &batch {
                        if self.stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let name = path
                            .file_name()
                            .map(|n| n.to_string_lossy().into_owned())
                            .unwrap_or_default();
                        let sent = match copy_to_folder(path, &name, root) {
                            Ok(_) => Sent::Stored,
                            Err(e) => Sent::Transient(format!(
                                "cannot write into {}: {e}",
                                root.display()
                            )),
                        };
                        handle(path, sent);
                    }
                }
                Destination::Dimse {
                    ae,
                    host,
                    port,
                    tls,
                } => {
                    let peer = Peer {
                        calling_ae: self.calling_ae.clone(),
                        called_ae: ae.clone(),
                        host: host.clone(),
                        port: *port,
                        timeout: self.timeout,
                        tls: if *tls { self.tls.clone() } else { None },
                    };
                    send_batch(&peer, &batch, &mut handle);
                }
                Destination::S3(url) => {
                    // Credentials and endpoint from the AWS environment, as for `run`.
                    match crate::s3::Bucket::open(url, &crate::s3::Endpoint::default()) {
                        Err(e) => {
                            transient = Some(e.to_string());
                        }
                        Ok(bucket) => {
                            for path in &batch {
                                if self.stop.load(Ordering::Relaxed) {
                                    break;
                                }
                                let name = path
                                    .file_name()
                                    .map(|n| n.to_string_lossy().into_owned())
                                    .unwrap_or_default();
                                let sent = match super::dest::put_to_bucket(path, &name, &bucket) {
                                    Ok(_) => Sent::Stored,
                                    Err(e) => Sent::Transient(e.to_string()),
                                };
                                let failing = matches!(sent, Sent::Transient(_));
                                handle(path, sent);
                                if failing {
                                    break; // the store is failing: back off
                                }
                            }
                        }
                    }
                }
                Destination::Stow { .. } => {
                    for path in &batch {
                        if self.stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let sent = match (&stow, super::stow::instance_of(path)) {
                            (Some(stow), Ok(instance)) => stow.send(path, &instance),
                            (_, Err(why)) => Sent::Refused(why),
                            (None, _) => Sent::Transient("no STOW-RS client".into()),
                        };
                        let transient = matches!(sent, Sent::Transient(_));
                        handle(path, sent);
                        if transient {
                            break; // the destination is failing: back off
                        }
                    }
                }
            }
            if let Some(why) = transient {
                failures += 1;
                let wait = self.retry.backoff(failures);
                crate::say!(
                    "dicom-deid serve: {} -> {}: {why}; retrying in {:.1} s",
                    self.dest.id(),
                    self.dest,
                    wait.as_secs_f64()
                );
                wait_until = Instant::now() + wait;
            } else {
                failures = 0;
            }
        }
    }

    /// Moves a queued object to the dead-letter folder with its reason beside it.
    fn dead_letter(&self, path: &Path, why: &str) {
        let Some(name) = path.file_name() else { return };
        let _ = std::fs::create_dir_all(&self.dead);
        let dest = self.dead.join(name);
        let reason = self
            .dead
            .join(format!("{}.reason.txt", name.to_string_lossy()));
        let _ = std::fs::write(&reason, format!("{}: {why}\n", self.dest));
        match std::fs::rename(path, &dest) {
            Ok(()) => {
                let _ = sync_dir(&self.dead);
                crate::say!(
                    "dicom-deid serve: {} -> {}: dead letter {}: {why}",
                    self.dest.id(),
                    self.dest,
                    dest.display()
                );
            }
            Err(e) => crate::say!(
                "dicom-deid serve: cannot move {} to the dead-letter folder: {e}",
                path.display()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let r = Retry {
            max_attempts: 5,
            base: Duration::from_millis(100),
            max: Duration::from_secs(1),
        };
        assert_eq!(r.backoff(1), Duration::from_millis(100));
        assert_eq!(r.backoff(2), Duration::from_millis(200));
        assert_eq!(r.backoff(4), Duration::from_millis(800));
        assert_eq!(r.backoff(5), Duration::from_secs(1));
        assert_eq!(r.backoff(60), Duration::from_secs(1));
    }

    #[test]
    fn a_series_is_released_whole_in_arrival_order_once_stable() {
        let dir = tempfile::tempdir().unwrap();
        let q = dir.path();
        let now = SystemTime::now();
        let at = |name: &str, secs_ago: u64| {
            let p = q.join(name);
            let f = std::fs::File::create(&p).unwrap();
            f.set_modified(now - Duration::from_secs(secs_ago)).unwrap();
            p
        };
        let a2 = at("1.1_2.1_3.2.dcm", 12);
        let a1 = at("1.1_2.1_3.9.dcm", 15);
        let b1 = at("1.1_2.2_3.1.dcm", 20);
        let b2 = at("1.1_2.2_3.5.dcm", 2); // series 2.2 is still arriving
        let all = entries(q);
        let age = Duration::from_secs(10);
        assert_eq!(stable(&all, age, now), vec![a1.clone(), a2.clone()]);
        assert_eq!(
            stable(&all, age, now + Duration::from_secs(8)),
            vec![b1, a1, a2, b2]
        );
        assert!(stable(&all, Duration::from_secs(30), now).is_empty());
    }

    #[test]
    fn attempts_persist_beside_the_object_and_orphans_go() {
        let dir = tempfile::tempdir().unwrap();
        let q = dir.path();
        let entry = q.join("1.2_1.3_1.4.dcm");
        std::fs::write(&entry, b"x").unwrap();
        let a = Attempts {
            failed: 2,
            next: UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
        };
        save_attempts(&entry, a).unwrap();
        // Sidecars are not queue entries.
        assert_eq!(entries(q), vec![entry.clone()]);
        // An orphan (its object sent before a crash) is dropped at load.
        std::fs::write(q.join("9.9_9.9_9.9.dcm.retry"), "failed-attempts 1\n").unwrap();
        let loaded = load_attempts(q);
        assert_eq!(loaded.len(), 1);
        assert_eq!(loaded[&entry], a);
        assert!(!q.join("9.9_9.9_9.9.dcm.retry").exists());
    }
}
