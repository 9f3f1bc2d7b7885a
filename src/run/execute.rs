//! Runs a plan: a streaming walk, workers that each take one input through open ->
//! pipeline -> sink, and one collector thread that is the only writer of the report,
//! the crosswalk, the ledger and the quarantine manifest.

use super::plan::Destination;
use super::{RunOptions, RunPlan};
use crate::crosswalk::CrosswalkWriter;
use crate::deid::{CrosswalkEntry, Engine, Pseudonymizer};
use crate::error::{Error, ExitStatus, FileError};
use crate::io::layout::{Layout, output_name};
use crate::io::source::{Input, Stamp};
use crate::io::walk::{Entry, Source, Walked, in_shard, walk_sources};
use crate::ledger::{self, Ledger, LedgerWriter};
use crate::outcome::Kind;
use crate::pipeline::{Plan, Processed, process};
use crate::progress::{Progress, WalkTotal};
use crate::report::{FileOutcome, Reporter, Status, Summary, Verbosity, WriteFailures};
use crate::s3::input::S3Input;
use crate::store::fs::{FsSink, remove_stale_temporaries};
use crate::store::s3::S3Sink;
use crate::store::{NotNew, Sink, Staged};
use rayon::prelude::*;
use std::fs::File;
use std::io::IsTerminal;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

/// Worker threads get a large stack: the nesting depth is bounded before any
/// recursive parser runs, and this leaves a wide margin for the bound.
const WORKER_STACK: usize = 16 << 20;

/// Outcomes a worker collects before handing them to the collector: small enough
/// that an interrupted run loses little of its ledger (those files are simply redone).
const REPORT_BATCH: usize = 32;

/// Outcomes the collector holds at most while it waits for an earlier one.
const MAX_REORDER: usize = 1 << 16;

/// One input's result, as it travels to the collector thread.
struct Finished {
    /// Position of the input in the walk (sorted by path): the collector settles
    /// outcomes in this order, so that of two inputs with one output name the one
    /// first by path owns it, whichever worker finished first.
    seq: u64,
    outcome: FileOutcome,
    /// Original -> pseudonym pairs, for the crosswalk writer only.
    crosswalk: Vec<CrosswalkEntry>,
    /// The output name this input claims (hashed) and who claims it.
    claim: Option<Claim>,
    /// The output, written but not yet visible: the collector commits it or drops it.
    staged: Option<Box<dyn Staged>>,
}

#[derive(Clone, Copy)]
struct Claim {
    name: u64,
    /// The input's ledger id, hashed: an input redone because it changed keeps its
    /// own output.
    owner: u64,
}

impl From<FileOutcome> for Finished {
    fn from(outcome: FileOutcome) -> Self {
        Finished {
            seq: 0,
            outcome,
            crosswalk: Vec::new(),
            claim: None,
            staged: None,
        }
    }
}

fn hash64(bytes: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

/// Decides, in one place and in one thread, which input an output name belongs to.
/// Two inputs with one SOP Instance UID (copies in an archive, a re-sent study)
/// raced for one path, and the file kept was not always the one the report named.
/// Now the first claimant seen (or, on resume, the input the ledger says made it)
/// owns the name; only the owner's object is made visible; any other is dropped and
/// reported `duplicate`: skipped when its bytes equal the kept output's, failed
/// otherwise.
struct Owners {
    by_name: std::collections::HashMap<u64, u64>,
}

impl Owners {
    fn from_ledger(ledger: &Ledger) -> Owners {
        let by_name = ledger
            .records()
            .map(|r| {
                (
                    hash64(r.output.as_os_str().as_encoded_bytes()),
                    hash64(r.id.as_bytes()),
                )
            })
            .collect();
        Owners { by_name }
    }

    /// Decides whether `f` owns its output name: if so, returns its staged object
    /// for the caller to commit, and whether it may replace what is stored under the
    /// name (only its own earlier output, by the ledger); if not, drops the object and
    /// turns the outcome into a duplicate. `drain` makes every earlier commit visible
    /// first (the stored object is compared with this one).
    fn settle(
        &mut self,
        f: &mut Finished,
        drain: impl FnOnce(),
    ) -> Option<(Box<dyn Staged>, bool)> {
        let claim = f.claim?;
        match self.by_name.get(&claim.name) {
            Some(owner) if *owner != claim.owner => {
                drain();
                let identical = f.staged.as_ref().is_some_and(|s| s.same_as_stored());
                f.staged = None; // dropped: its temporary goes
                let (status, reason) = duplicate_reason(identical);
                f.outcome
                    .not_written(status, Kind::Duplicate, reason.into());
                None
            }
            Some(_) => f.staged.take().map(|s| (s, true)),
            None => {
                self.by_name.insert(claim.name, claim.owner);
                f.staged.take().map(|s| (s, false))
            }
        }
    }
}

/// What other runs writing into the same folder claim: the ledgers of the other
/// shards (and of earlier sharded or unsharded runs) next to this run's own. A
/// create-only commit that finds the name taken asks them who took it: another
/// input's output is never replaced (this input is then a duplicate), while a file
/// no ledger claims (an interrupted run's, or one made with another profile) is.
struct Claims {
    dir: PathBuf,
    own: PathBuf,
    /// This shard's ledger, for claim lines written before each create-only commit,
    /// so that a shard racing for the same name always finds the winner's claim.
    announce: Option<File>,
}

#[derive(serde::Deserialize)]
struct ClaimLine {
    id: Option<String>,
    output: Option<PathBuf>,
    claim: Option<PathBuf>,
}

impl Claims {
    fn announce(&self, r: &ledger::Record) {
        use std::io::Write;
        if let Some(mut f) = self.announce.as_ref() {
            let line = serde_json::json!({ "claim": r.output, "id": r.id });
            // One write per line: O_APPEND keeps it whole beside the ledger's own lines.
            let _ = f.write_all(format!("{line}\n").as_bytes());
        }
    }

    /// Whether a ledger other than this run's names another input for `output`.
    fn claimed_by_other(&self, output: &Path, id: &str) -> bool {
        use std::io::BufRead;
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return false;
        };
        entries.flatten().any(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            if !(name.starts_with(".dicom-deid-ledger") && name.ends_with(".jsonl"))
                || e.path() == self.own
            {
                return false;
            }
            let Ok(file) = File::open(e.path()) else {
                return false;
            };
            std::io::BufReader::new(file)
                .lines()
                .map_while(Result::ok)
                .filter_map(|l| serde_json::from_str::<ClaimLine>(&l).ok())
                .any(|l| {
                    l.id.is_some_and(|other| other != id)
                        && (l.output.as_deref() == Some(output)
                            || l.claim.as_deref() == Some(output))
                })
        })
    }

    /// Settles a create-only commit that found the name taken.
    fn resolve(&self, staged: Box<dyn Staged>, f: &Finished) -> Result<u64, Taken> {
        let other = f
            .outcome
            .ledger
            .as_ref()
            .is_some_and(|r| self.claimed_by_other(&r.output, &r.id));
        let identical = staged.same_as_stored();
        match (identical, other) {
            (_, true) => Err(Taken::Duplicate { identical }),
            // This run's own output (a crash came between rename and ledger line).
            (true, false) => Ok(staged.bytes()),
            (false, false) => staged.commit().map_err(Taken::Failed),
        }
    }
}

/// Why a committed output did not become visible under its name.
enum Taken {
    /// Another input owns the name.
    Duplicate {
        identical: bool,
    },
    Failed(crate::store::StoreError),
}

fn duplicate_reason(identical: bool) -> (Status, &'static str) {
    if identical {
        (
            Status::Skipped,
            "another input with the same SOP Instance UID gave a byte-identical \
             output, which is kept",
        )
    } else {
        (
            Status::Failed,
            "another input maps to the same output (same SOP Instance UID) with \
             different contents; the first one's output is kept",
        )
    }
}

/// Commits staged objects and hands outcomes on in walk order. A folder's commit
/// is a rename, done in place; an object store's is a request of some
/// milliseconds, so `threads` commit in parallel (one collector thread doing them
/// one by one capped a bucket run at a few hundred objects a second) while the
/// outcomes still reach the report in order.
struct Committer {
    pool: Option<(mpsc::Sender<CommitJob>, Vec<std::thread::JoinHandle<()>>)>,
    /// Outcomes in walk order, each waiting for its commit's result if it has one.
    waiting: std::collections::VecDeque<(Finished, Option<mpsc::Receiver<CommitResult>>)>,
}

type CommitResult = Result<u64, NotNew>;
/// An object, whether it may replace what is stored under its name, and where the
/// result goes.
type CommitJob = (Box<dyn Staged>, bool, mpsc::Sender<CommitResult>);

fn commit(staged: Box<dyn Staged>, replace: bool) -> CommitResult {
    if replace {
        staged.commit().map_err(NotNew::Failed)
    } else {
        staged.commit_new()
    }
}

/// Commits in flight at most (each may hold its object in memory).
const MAX_COMMITS_IN_FLIGHT: usize = 64;

impl Committer {
    fn new(threads: usize) -> Committer {
        if threads == 0 {
            return Committer {
                pool: None,
                waiting: Default::default(),
            };
        }
        let (tx, rx) = mpsc::channel::<CommitJob>();
        let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
        let handles = (0..threads)
            .map(|_| {
                let rx = rx.clone();
                std::thread::spawn(move || {
                    loop {
                        let job = rx.lock().map(|r| r.recv());
                        let Ok(Ok((staged, replace, reply))) = job else {
                            break;
                        };
                        let _ = reply.send(commit(staged, replace));
                    }
                })
            })
            .collect();
        Committer {
            pool: Some((tx, handles)),
            waiting: Default::default(),
        }
    }

    /// Queues `f`, committing `staged` for it, and passes on to `done` every outcome
    /// whose turn has come.
    fn push(
        &mut self,
        mut f: Finished,
        staged: Option<(Box<dyn Staged>, bool)>,
        done: &mut impl FnMut(Finished, Option<CommitResult>),
    ) {
        match (staged, &self.pool) {
            (None, _) => self.waiting.push_back((f, None)),
            (Some((s, replace)), None) => {
                if self.waiting.is_empty() {
                    let r = commit(s, replace);
                    return done(f, Some(r));
                }
                let (tx, rx) = mpsc::channel();
                let _ = tx.send(commit(s, replace));
                self.waiting.push_back((f, Some(rx)));
            }
            (Some((s, replace)), Some((pool, _))) => {
                let (tx, rx) = mpsc::channel();
                if let Err(mpsc::SendError((s, replace, _))) = pool.send((s, replace, tx)) {
                    let r = commit(s, replace);
                    f.staged = None;
                    return done(f, Some(r));
                }
                self.waiting.push_back((f, Some(rx)));
            }
        }
        self.flush(false, done);
    }

    /// Passes on finished outcomes; with `all`, waits for every commit.
    fn flush(&mut self, all: bool, done: &mut impl FnMut(Finished, Option<CommitResult>)) {
        while let Some((_, rx)) = self.waiting.front() {
            let wait = all || self.waiting.len() > MAX_COMMITS_IN_FLIGHT;
            let result = match rx {
                None => None,
                Some(rx) if wait => Some(rx.recv().unwrap_or_else(|_| {
                    Err(NotNew::Failed(crate::store::StoreError::Write(
                        "commit thread ended".into(),
                    )))
                })),
                Some(rx) => match rx.try_recv() {
                    Ok(r) => Some(r),
                    Err(mpsc::TryRecvError::Empty) => return,
                    Err(mpsc::TryRecvError::Disconnected) => Some(Err(NotNew::Failed(
                        crate::store::StoreError::Write("commit thread ended".into()),
                    ))),
                },
            };
            let (f, _) = self.waiting.pop_front().expect("front exists");
            done(f, result);
        }
    }

    fn finish(mut self, done: &mut impl FnMut(Finished, Option<CommitResult>)) {
        self.flush(true, done);
        if let Some((tx, handles)) = self.pool.take() {
            drop(tx);
            for h in handles {
                let _ = h.join();
            }
        }
    }
}

/// What every worker shares, read-only (but for the stop flag).
struct Worker<'a> {
    pipeline: Plan<'a>,
    plan: &'a RunPlan,
    /// Where outputs go; None in a dry run.
    sink: Option<&'a dyn Sink>,
    /// The same destination, for lookups only (a dry run names outputs too).
    store: &'a dyn Sink,
    layout: Layout,
    ledger: Ledger,
    /// Copy failed inputs here (`--quarantine-copy`): `<dir>/files/<rel>`.
    quarantine_copy: Option<PathBuf>,
    /// Set when the output device is full: the remaining inputs are not attempted.
    stop: AtomicBool,
}

pub fn execute(plan: &RunPlan, opts: &RunOptions) -> Result<(ExitStatus, Summary), Error> {
    let crosswalk_out = match &opts.crosswalk {
        Some(p) => Some(crate::crosswalk::open(
            p,
            opts.overwrite_crosswalk,
            &plan.key.fingerprint(),
        )?),
        None => None,
    };
    let report_out: Option<Box<dyn std::io::Write + Send>> = match &opts.report {
        // `--report -`: the collector thread is the only writer of stdout in a run.
        Some(p) if p.as_os_str() == "-" => {
            Some(Box::new(std::io::BufWriter::new(std::io::stdout())))
        }
        Some(p) => Some(Box::new(std::io::BufWriter::new(File::create(p).map_err(
            |source| Error::Io {
                context: format!("cannot create report {}", p.display()),
                source,
            },
        )?))),
        None => None,
    };
    let ledger_file = ledger::ledger_path(&plan.state_dir, opts.shard);
    let mut public_readable = Vec::new();
    for source in &plan.sources {
        if let Source::S3(b) = source
            && b.source_is_public()
        {
            crate::say!(
                "dicom-deid: warning: input {} can be read without credentials: anyone \
                 on the network can read these files",
                b.url
            );
            public_readable.push(b.url.to_string());
        }
    }
    let lock = if opts.dry_run {
        None
    } else {
        std::fs::create_dir_all(&plan.state_dir).map_err(|source| Error::Io {
            context: format!("cannot create directory {}", plan.state_dir.display()),
            source,
        })?;
        let lock = super::lock::acquire(&ledger_file)?;
        if let Destination::S3(bucket) = &plan.dest {
            prepare_bucket(bucket, &lock, opts.require_private, &mut public_readable)?;
        }
        let (stale, link) = match &plan.dest {
            Destination::Dir(out) => remove_stale_temporaries(out, &super::lock::live_run_ids(out)),
            Destination::S3(_) => (0, None),
            Destination::Network(_) => remove_stale_temporaries(
                &plan.state_dir.join("outgoing"),
                &super::lock::live_run_ids(&plan.state_dir),
            ),
        };
        if let Some(link) = link {
            // Outputs are written below the output's own folders: a linked folder
            // there could send them anywhere.
            return Err(Error::Usage(format!(
                "the output directory holds a symbolic link, {}: outputs could land \
                 outside {}; remove the link",
                link.display(),
                opts.out.display()
            )));
        }
        if stale > 0 && opts.verbosity != Verbosity::Quiet {
            crate::say!("dicom-deid: removed {stale} temporary files left by an interrupted run");
        }
        Some(lock)
    };
    let profile = &plan.profile;
    let fingerprint = plan.key.fingerprint();
    // Whatever decides output names is part of what a ledger line vouches for: a
    // resume with another layout redoes the work instead of skipping it.
    let ledger_scope = format!("{}+layout={:?}", profile.digest, opts.layout).to_lowercase();
    let (ledger, ledger_out) = if opts.dry_run {
        (Ledger::default(), None)
    } else {
        let previous = if opts.resume {
            Ledger::load(&ledger_file, &ledger_scope, &fingerprint)
        } else {
            Ledger::default()
        };
        let writer = LedgerWriter::open(
            &ledger_file,
            !previous.is_empty(),
            &ledger_scope,
            &fingerprint,
        )
        .map_err(|source| Error::Io {
            context: format!("cannot write the run ledger {}", ledger_file.display()),
            source,
        })?;
        if !previous.is_empty() && opts.verbosity != Verbosity::Quiet {
            crate::say!(
                "dicom-deid: resuming: {} inputs already finished with this profile and key",
                previous.len()
            );
        }
        (previous, Some(writer))
    };
    let quarantine_out = match &opts.quarantine {
        Some(dir) => Some(open_quarantine(dir, opts.shard)?),
        None => None,
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.jobs.unwrap_or(0))
        .stack_size(WORKER_STACK)
        .build()
        .map_err(|e| Error::Usage(format!("cannot start worker threads: {e}")))?;

    let summary = Summary {
        options: profile.options.iter().map(|o| o.to_string()).collect(),
        profile: profile.name.clone(),
        profile_digest: profile.digest.clone(),
        key_fingerprint: fingerprint.clone(),
        key_ephemeral: plan.key.ephemeral,
        dry_run: opts.dry_run,
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
        public_readable,
        ..Summary::default()
    };
    let run_id = lock.as_ref().map_or("dry-run", |l| l.run_id.as_str());
    let sink: Box<dyn Sink> = match &plan.dest {
        Destination::Dir(out) => Box::new(FsSink::new(out.clone(), run_id)),
        Destination::S3(bucket) => Box::new(S3Sink::new(bucket.clone(), run_id)),
        Destination::Network(d) => Box::new(
            crate::gateway::sink::NetSink::new(
                d.clone(),
                &plan.state_dir,
                run_id,
                opts.tls_ca.as_deref(),
                opts.tls_client.as_ref(),
            )
            .map_err(|e| Error::Usage(format!("--out {d}: {e}")))?,
        ),
    };
    let ocr = super::ocr_finder(profile)?;
    let mut pipeline = Plan::new(
        profile,
        Engine::new(profile, Pseudonymizer::new(&plan.key)).with_crosswalk(crosswalk_out.is_some()),
    );
    pipeline.text_finder = ocr.as_ref().map(|t| t as &dyn crate::pixels::TextFinder);
    let worker = Worker {
        pipeline,
        plan,
        sink: (!opts.dry_run).then_some(sink.as_ref()),
        store: sink.as_ref(),
        layout: opts.layout,
        ledger,
        quarantine_copy: opts
            .quarantine
            .as_ref()
            .filter(|_| opts.quarantine_copy)
            .map(|d| d.join("files")),
        stop: AtomicBool::new(false),
    };

    // The bar's total comes from a second walk that only counts, running ahead of
    // the workers; without a bar nobody needs the total, and it is not walked.
    let show_progress = opts.verbosity != Verbosity::Quiet && std::io::stderr().is_terminal();
    let walk_total = std::sync::Arc::new(WalkTotal::default());
    let progress = if show_progress {
        Progress::on_stderr(walk_total.clone())
    } else {
        Progress::hidden()
    };
    let wanted = |w: &Walked| match w {
        Walked::File(e) | Walked::Symlink(e) => in_shard(&e.rel, opts.shard),
        Walked::Error { .. } | Walked::Loop { .. } => opts.shard.is_none_or(|(i, _)| i == 0),
    };
    // Set when a signal cut the walk short: the run then reports itself interrupted.
    let cut = AtomicBool::new(false);
    let cut = &cut;
    let verbosity = opts.verbosity;

    let mut owners = Owners::from_ledger(&worker.ledger);
    let claims = Claims {
        dir: plan.state_dir.clone(),
        own: ledger_file.clone(),
        // Only shards race with each other for a name; one run settles its own
        // inputs in walk order before committing.
        announce: match (&plan.dest, opts.shard, opts.dry_run) {
            (Destination::Dir(_), Some(_), false) => {
                crate::side_files::open(&ledger_file, crate::side_files::Mode::Append, false).ok()
            }
            _ => None,
        },
    };
    let claims = &claims;
    let commit_threads = sink.commit_threads();
    let stop = &worker.stop;
    let out_dir = plan.state_dir.clone();
    // Outcomes travel in batches: one message per file woke the collector thread for
    // every file (measured at about four context switches a file).
    let (tx, rx) = mpsc::sync_channel::<Vec<Finished>>(64);
    let (summary, failures, crosswalk_error) = std::thread::scope(|scope| {
        let collector = scope.spawn(move || {
            let mut crosswalk: Option<CrosswalkWriter> = crosswalk_out;
            let mut r = Reporter::new(report_out, summary)
                .with_ledger(ledger_out, out_dir)
                .with_quarantine(quarantine_out)
                .with_display(progress, verbosity);
            let mut committer = Committer::new(commit_threads);
            let mut done = |mut f: Finished, commit: Option<CommitResult>| {
                let result = commit.map(|r| match r {
                    Ok(n) => Ok(n),
                    Err(NotNew::Failed(e)) => Err(Taken::Failed(e)),
                    Err(NotNew::Exists(s)) => claims.resolve(s, &f),
                });
                match result {
                    Some(Err(Taken::Failed(e))) => {
                        let e = FileError::Store(e);
                        if e.is_output_full() {
                            stop.store(true, Ordering::Relaxed);
                        }
                        f.outcome
                            .not_written(Status::Failed, e.kind(), e.to_string());
                    }
                    Some(Err(Taken::Duplicate { identical })) => {
                        let (status, reason) = duplicate_reason(identical);
                        f.outcome
                            .not_written(status, Kind::Duplicate, reason.into());
                    }
                    _ => {}
                }
                if let Some(c) = crosswalk.as_mut() {
                    c.write(&f.crosswalk);
                }
                r.record(f.outcome);
            };
            let mut settle = |mut f: Finished| {
                let staged = {
                    let c = &mut committer;
                    let d = &mut done;
                    owners.settle(&mut f, || c.flush(true, d))
                };
                if let (Some((_, false)), Some(r)) = (&staged, &f.outcome.ledger) {
                    claims.announce(r);
                }
                committer.push(f, staged, &mut done);
            };
            // Outcomes arrive in the order workers finish; they are settled in walk
            // order. Workers take inputs in walk order and send every 32, so the
            // gap is small; past MAX_REORDER waiting outcomes the smallest goes first
            // (memory stays bounded; only the owner of a shared name could then
            // differ from the first by path).
            let mut pending = std::collections::BTreeMap::new();
            let mut next = 0u64;
            for batch in rx {
                for f in batch {
                    pending.insert(f.seq, f);
                }
                loop {
                    let waiting = pending.len();
                    let Some(entry) = pending.first_entry() else {
                        break;
                    };
                    if *entry.key() != next && waiting <= MAX_REORDER {
                        break;
                    }
                    let f = entry.remove();
                    next = f.seq + 1;
                    settle(f);
                }
            }
            for (_, f) in std::mem::take(&mut pending) {
                settle(f);
            }
            committer.finish(&mut done);
            if cut.load(Ordering::Relaxed) {
                r.interrupted();
            }
            let mut crosswalk_error = None;
            if let Some(c) = crosswalk {
                r.crosswalk_entries(c.len());
                crosswalk_error = c.finish();
            }
            let (summary, failures) = r.finish();
            (summary, failures, crosswalk_error)
        });
        if show_progress {
            let total = &walk_total;
            scope.spawn(move || {
                for _ in walk_sources(&plan.sources, opts.follow).filter(wanted) {
                    if super::interrupt::requested() {
                        return;
                    }
                    total.found.fetch_add(1, Ordering::Relaxed);
                }
                total.done.store(true, Ordering::Relaxed);
            });
        }
        pool.install(|| {
            walk_sources(&plan.sources, opts.follow)
                .filter(wanted)
                // After SIGINT/SIGTERM no new input is started; those taken finish.
                .take_while(|_| {
                    let stop = super::interrupt::requested();
                    if stop {
                        cut.store(true, Ordering::Relaxed);
                    }
                    !stop
                })
                .enumerate()
                .par_bridge()
                .fold(Vec::new, |mut batch, (seq, walked)| {
                    let mut finished: Finished = match walked {
                        Walked::File(entry) => worker.guarded(&entry),
                        Walked::Symlink(entry) => {
                            let mut o = FileOutcome::new(entry.path, Status::Skipped);
                            o.kind = Some(Kind::Symlink);
                            o.reason = Some(
                                "symbolic link, not followed (pass --follow to follow links)"
                                    .into(),
                            );
                            o.into()
                        }
                        Walked::Loop { path } => {
                            let mut o = FileOutcome::new(path, Status::Failed);
                            o.kind = Some(Kind::Symlink);
                            o.reason = Some(
                                "symbolic link loop: the link leads back to a folder above it"
                                    .into(),
                            );
                            o.into()
                        }
                        Walked::Error { path, message } => {
                            let mut o = FileOutcome::new(path, Status::Failed);
                            o.kind = Some(Kind::Unreadable);
                            o.reason = Some(message);
                            o.into()
                        }
                    };
                    finished.seq = seq as u64;
                    batch.push(finished);
                    if batch.len() >= REPORT_BATCH {
                        // The collector ends only when every sender is gone, so a send
                        // cannot fail while it runs.
                        let _ = tx.send(std::mem::take(&mut batch));
                    }
                    batch
                })
                .for_each(|rest| {
                    if !rest.is_empty() {
                        let _ = tx.send(rest);
                    }
                });
        });
        drop(tx);
        collector
            .join()
            .unwrap_or_else(|_| (Summary::default(), WriteFailures::default(), None))
    });
    // The outputs are written whatever happened to the bookkeeping: say which file
    // is incomplete, and exit 1 (not 2, which means nothing was written).
    let mut incomplete = false;
    for (what, path, err) in [
        ("report", opts.report.as_deref(), failures.report),
        ("crosswalk", opts.crosswalk.as_deref(), crosswalk_error),
        (
            "quarantine manifest",
            opts.quarantine.as_deref(),
            failures.manifest,
        ),
    ] {
        if let Some(e) = err {
            incomplete = true;
            crate::say!(
                "dicom-deid: error: cannot write the {what} {}: {e}; it is incomplete \
                 (outputs are not affected)",
                path.map(|p| p.display().to_string()).unwrap_or_default()
            );
        }
    }
    let status = if summary.interrupted {
        ExitStatus::Interrupted
    } else if incomplete
        || summary.failed > 0
        || summary.skipped
            > summary.skipped_not_dicom + summary.skipped_unchanged + summary.skipped_duplicate
    {
        ExitStatus::Partial
    } else {
        ExitStatus::Success
    };
    Ok((status, summary))
}

thread_local! {
    /// Set while this thread works on one input, whose panics are caught.
    static IN_FILE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` on one input: a panic in it is caught by the caller and becomes that
/// input's failure line, so the panic hook prints nothing for it.
pub fn quiet_panics<T>(f: impl FnOnce() -> T) -> T {
    let was = IN_FILE.with(|c| c.replace(true));
    let out = f();
    IN_FILE.with(|c| c.set(was));
    out
}

/// Keeps the default panic message (and backtrace) for panics nothing catches, and
/// silences the ones a worker turns into a file's failure: one line per file, not a
/// "panicked at" and a 75-frame backtrace each.
pub fn install_panic_hook() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !IN_FILE.with(|c| c.get()) {
            default(info);
        }
    }));
}

impl Worker<'_> {
    /// A panic in one file (a bug of ours or of a library) becomes that file's failure.
    fn guarded(&self, entry: &Entry) -> Finished {
        let caught =
            quiet_panics(|| std::panic::catch_unwind(AssertUnwindSafe(|| self.process(entry))));
        caught.unwrap_or_else(|p| {
            let msg = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "panic".into());
            // A library's panic message may quote the value it choked on.
            let msg = crate::io::error::withhold_values(&msg);
            failed(entry, FileError::Panic(msg), 0).into()
        })
    }

    fn process(&self, entry: &Entry) -> Finished {
        if self.stop.load(Ordering::Relaxed) {
            return failed(entry, FileError::Aborted, 0).into();
        }
        if let Some(remote) = &entry.remote {
            let Some(Source::S3(bucket)) = self.plan.sources.get(remote.source) else {
                return failed(entry, FileError::Panic("unknown source".into()), 0).into();
            };
            let (input, stamp) = S3Input::open(bucket, remote.listed.clone());
            return match self.process_open(entry, input, stamp) {
                Ok(f) => f,
                Err(e) => {
                    if e.is_output_full() {
                        self.stop.store(true, Ordering::Relaxed);
                    }
                    let mut o = failed(entry, e, stamp.size);
                    if let Some(dir) = &self.quarantine_copy {
                        // Read again with If-Match on the listed ETag: the copy is the
                        // version that failed, or no copy at all.
                        let (mut again, _) = S3Input::open(bucket, remote.listed.clone());
                        o.quarantine_copy = copy_to_quarantine(&mut again, &dir.join(&entry.rel));
                    }
                    o.into()
                }
            };
        }
        // The one open of this input for the whole run.
        let (file, stamp) = match File::open(&entry.path).and_then(|f| {
            let stamp = Input::stamp(&f)?;
            Ok((f, stamp))
        }) {
            Ok(x) => x,
            Err(e) => return failed(entry, FileError::Open(e), 0).into(),
        };
        // A second descriptor of the same open file, kept only to copy a failed
        // input to quarantine: never a second open by path.
        let keep = self
            .quarantine_copy
            .as_ref()
            .and_then(|_| file.try_clone().ok());
        match self.process_open(entry, Box::new(file), stamp) {
            Ok(f) => f,
            Err(e) => {
                if e.is_output_full() {
                    self.stop.store(true, Ordering::Relaxed);
                }
                let mut o = failed(entry, e, stamp.size);
                if let (Some(dir), Some(mut f)) = (&self.quarantine_copy, keep) {
                    use std::io::{Seek, SeekFrom};
                    if f.seek(SeekFrom::Start(0)).is_ok() {
                        o.quarantine_copy = copy_to_quarantine(&mut f, &dir.join(&entry.rel));
                    }
                }
                o.into()
            }
        }
    }

    fn process_open(
        &self,
        entry: &Entry,
        input: Box<dyn Input>,
        stamp: Stamp,
    ) -> Result<Finished, FileError> {
        let dry_run = self.sink.is_none();
        // An object's URL is absolute already; a path is made absolute.
        let cwd = if entry.remote.is_some() {
            Path::new("/")
        } else {
            self.plan.cwd.as_path()
        };
        let ledger_id = (!dry_run).then(|| ledger::input_id(&self.plan.key, &entry.path, cwd));
        if let Some(done) = ledger_id.as_deref().and_then(|id| {
            self.ledger.finished(id, (stamp.size, stamp.mtime_ns), |n| {
                self.store.stored_size(n)
            })
        }) {
            let mut o = FileOutcome::new(entry.path.clone(), Status::Skipped);
            o.kind = Some(Kind::Unchanged);
            o.reason = Some("finished by an earlier run with this profile and key".into());
            o.output = Some(self.store.locate(&done.output));
            o.bytes_in = stamp.size;
            o.ledger = Some(done.clone());
            let claim = Claim {
                name: hash64(done.output.as_os_str().as_encoded_bytes()),
                owner: hash64(done.id.as_bytes()),
            };
            let mut f: Finished = o.into();
            f.claim = Some(claim);
            return Ok(f);
        }
        let d = match process(input, stamp, &self.pipeline)? {
            Processed::Deidentified(d) => d,
            Processed::NotDicom => {
                let mut o = FileOutcome::new(entry.path.clone(), Status::Skipped);
                o.kind = Some(Kind::NotDicom);
                o.reason = Some("not a DICOM file".into());
                return Ok(o.into());
            }
            Processed::Dicomdir => {
                let mut o = FileOutcome::new(entry.path.clone(), Status::Skipped);
                o.kind = Some(Kind::Dicomdir);
                o.reason = Some(
                    "DICOMDIR: holds patient names and file offsets, never copied; \
                     rebuild it from the de-identified files"
                        .into(),
                );
                return Ok(o.into());
            }
        };
        let d = *d;
        let mut outcome = FileOutcome::new(entry.path.clone(), Status::Ok);
        outcome.rel = entry.rel.clone();
        outcome.bytes_in = d.bytes_in;
        outcome.counts = d.counts;
        outcome.notes = d.notes;
        outcome.private_creators_dropped = d.creators_dropped;
        outcome.modality = code_string(&d.object.dataset, MODALITY);
        outcome.sop_class = code_string(&d.object.dataset, SOP_CLASS_UID)
            .or_else(|| code_string_of(d.object.meta.media_storage_sop_class_uid()));
        let name = output_name(self.layout, &entry.rel, &d.object.dataset, || {
            unsorted_name(&self.plan.key, &entry.rel)
        });
        let claim = Claim {
            name: hash64(name.as_os_str().as_encoded_bytes()),
            owner: hash64(
                ledger_id
                    .as_deref()
                    .map_or(entry.path.as_os_str().as_encoded_bytes(), str::as_bytes),
            ),
        };
        let mut staged = None;
        if let Some(sink) = self.sink {
            let s = sink.stage(&name, d.object)?;
            outcome.bytes_out = s.bytes();
            staged = Some(s);
            if let Some(id) = ledger_id {
                outcome.ledger = Some(ledger::Record {
                    id,
                    size: stamp.size,
                    mtime_ns: stamp.mtime_ns,
                    output: name.clone(),
                    output_size: Some(outcome.bytes_out),
                });
            }
            outcome.output = Some(sink.locate(&name));
        } else {
            outcome.output = Some(self.store.locate(&name));
        }
        Ok(Finished {
            seq: 0,
            outcome,
            crosswalk: d.crosswalk,
            claim: Some(claim),
            staged,
        })
    }
}

/// The name of an output the layout cannot sort by UIDs: stable across runs with
/// the same key, and reveals nothing of the path.
pub(crate) fn unsorted_name(key: &crate::deid::Key, rel: &Path) -> String {
    let mac = key.mac(&[b"output-path\0", rel.as_os_str().as_encoded_bytes()]);
    crate::deid::key::hex(&mac[..16])
}

/// Before the first object goes to a bucket: removes what dead runs left there,
/// and says (or, with `--require-private`, refuses) when anyone can read it.
fn prepare_bucket(
    bucket: &crate::s3::Bucket,
    lock: &super::lock::RunLock,
    require_private: bool,
    public_readable: &mut Vec<String>,
) -> Result<(), Error> {
    let fatal = |e: crate::s3::S3Error| Error::Usage(format!("{}: {e}", bucket.url));
    if bucket.output_is_public(&lock.run_id).map_err(fatal)? {
        if require_private {
            return Err(Error::Usage(format!(
                "output {} can be read without credentials (anonymous GET succeeded); \
                 --require-private refuses to write patient images there: make the bucket \
                 private (remove its public policy or ACL) and run again",
                bucket.url
            )));
        }
        crate::say!(
            "dicom-deid: warning: output {} can be read without credentials: anyone on \
             the network can read what is written there (--require-private refuses such \
             an output)",
            bucket.url
        );
        public_readable.push(bucket.url.to_string());
    }
    let dead: Vec<String> = lock.previous_run_id.iter().cloned().collect();
    let (aborted, deleted) =
        crate::s3::uploads::remove_abandoned(bucket, &dead, &lock.run_id).map_err(fatal)?;
    if aborted + deleted > 0 {
        crate::say!(
            "dicom-deid: removed {aborted} unfinished uploads and {deleted} temporary objects \
             left by an interrupted run"
        );
    }
    Ok(())
}

fn failed(entry: &Entry, e: FileError, bytes_in: u64) -> FileOutcome {
    let mut o = FileOutcome::new(entry.path.clone(), Status::Failed);
    o.rel = entry.rel.clone();
    o.kind = Some(e.kind());
    o.quarantine_rule = e.quarantine_rule();
    o.reason = Some(e.to_string());
    o.bytes_in = bytes_in;
    o
}

/// Copies a failed input, from the descriptor opened for it, to `dest` (it is PHI:
/// opt-in only). Returns where it went.
/// Copies a failed input whole into the quarantine folder, through a temporary
/// renamed into place: a copy cut short (a full disk, an object that changed) leaves
/// nothing, and the manifest then names no copy.
fn copy_to_quarantine(from: &mut dyn std::io::Read, dest: &Path) -> Option<PathBuf> {
    let dir = dest.parent()?;
    std::fs::create_dir_all(dir).ok()?;
    let mut name = dest.file_name()?.to_os_string();
    name.push(format!(".dicom-deid-copy-{}", std::process::id()));
    let tmp = dir.join(name);
    let copied = File::create_new(&tmp)
        .and_then(|mut to| std::io::copy(from, &mut to))
        .and_then(|_| std::fs::rename(&tmp, dest));
    if copied.is_err() {
        let _ = std::fs::remove_file(&tmp);
        return None;
    }
    Some(dest.to_path_buf())
}

/// The quarantine manifest: one JSON line per failed input (shards keep their own).
fn open_quarantine(dir: &Path, shard: Option<(u64, u64)>) -> Result<File, Error> {
    std::fs::create_dir_all(dir).map_err(|source| Error::Io {
        context: format!("cannot create quarantine directory {}", dir.display()),
        source,
    })?;
    let name = match shard {
        Some((i, n)) => format!("manifest-{i}-of-{n}.jsonl"),
        None => "manifest.jsonl".into(),
    };
    let path = dir.join(name);
    let file = crate::side_files::open(&path, crate::side_files::Mode::Replace, false).map_err(
        |source| Error::Io {
            context: format!("cannot create quarantine manifest {}", path.display()),
            source,
        },
    )?;
    Ok(file)
}

const MODALITY: dicom_core::Tag = dicom_core::Tag(0x0008, 0x0060);
const SOP_CLASS_UID: dicom_core::Tag = dicom_core::Tag(0x0008, 0x0016);

/// A Modality or SOP Class UID for the report's counts: only when it has the form
/// of a code (capitals, digits, dots, underscores; at most 64 characters), so that
/// a malformed file cannot put free text, which might identify someone, in the report.
fn code_string(obj: &dicom_object::InMemDicomObject, tag: dicom_core::Tag) -> Option<String> {
    code_string_of(&obj.get(tag)?.to_str().ok()?)
}

fn code_string_of(v: &str) -> Option<String> {
    let v = v.trim_end_matches(['\0', ' ']).trim();
    let ok = !v.is_empty()
        && v.len() <= 64
        && v.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'.' || b == b'_');
    ok.then(|| v.to_string())
}
