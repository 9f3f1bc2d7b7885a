//! The `run` command: compile the profile and key once, then walk -> read -> apply ->
//! write in parallel, with one reporter thread collecting outcomes.

use crate::deid::{Engine, Key, Pseudonymizer};
use crate::error::{Error, ExitStatus, FileError};
use crate::io::layout::{Layout, output_path};
use crate::io::read::{Classified, read, read_open};
use crate::io::walk::{Entry, Walked, canonical_lenient, in_shard, walk};
use crate::io::write::{build_meta, remove_stale_temporaries, write_part10};
use crate::ledger::{self, Ledger, LedgerWriter};
use crate::profile::compile::Severity;
use crate::profile::{Action, CompiledProfile};
use crate::report::{FileOutcome, Reporter, Status, Summary};
use rayon::prelude::*;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

pub struct RunOptions {
    pub inputs: Vec<PathBuf>,
    pub out: PathBuf,
    pub profile: String,
    pub key_file: Option<PathBuf>,
    pub jobs: Option<usize>,
    pub layout: Layout,
    pub report: Option<PathBuf>,
    pub dry_run: bool,
    /// PS3.15 options switched on from the command line.
    pub options: Vec<String>,
    /// Where to write original -> pseudonym pairs (mode 0600).
    pub crosswalk: Option<PathBuf>,
    pub overwrite_crosswalk: bool,
    /// Where failed inputs are listed (manifest.jsonl), and copied if asked.
    pub quarantine: Option<PathBuf>,
    pub quarantine_copy: bool,
    /// Skip inputs the output's ledger shows finished with this profile and key.
    pub resume: bool,
    /// Process only shard `i` of `n` (0-based).
    pub shard: Option<(u64, u64)>,
}

/// Worker threads get a large stack: the nesting depth is bounded before any
/// recursive parser runs, and this leaves a wide margin for the bound.
const WORKER_STACK: usize = 16 << 20;

const PIXEL_DATA: u32 = 0x7FE0_0010;

struct Context<'a> {
    engine: Engine<'a>,
    profile: &'a CompiledProfile,
    key: &'a Key,
    out: &'a Path,
    layout: Layout,
    dry_run: bool,
    ledger: Ledger,
    /// Working directory at the start, for the ledger's absolute input paths.
    cwd: PathBuf,
    /// Set when the output device is full: the remaining inputs are not attempted.
    stop: AtomicBool,
}

pub fn run(opts: RunOptions) -> Result<(ExitStatus, Summary), Error> {
    let profile = crate::profile::compile::load_with_options(&opts.profile, &opts.options)?;
    let key = match &opts.key_file {
        Some(p) => Key::from_file(p)?,
        None => {
            eprintln!(
                "dicom-deid: no --key-file: using a random key for this run only; \
                 its UIDs and pseudonyms cannot be linked to any other run"
            );
            Key::random()?
        }
    };
    check_paths(&opts.inputs, &opts.out)?;
    let crosswalk_out = match &opts.crosswalk {
        Some(p) => Some(open_crosswalk(p, opts.overwrite_crosswalk)?),
        None => None,
    };
    let report_out: Option<Box<dyn std::io::Write + Send>> = match &opts.report {
        Some(p) => Some(Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).map_err(|source| Error::Io {
                context: format!("cannot create report {}", p.display()),
                source,
            })?,
        ))),
        None => None,
    };
    if !opts.dry_run {
        std::fs::create_dir_all(&opts.out).map_err(|source| Error::Io {
            context: format!("cannot create output directory {}", opts.out.display()),
            source,
        })?;
        let stale = remove_stale_temporaries(&opts.out);
        if stale > 0 {
            eprintln!("dicom-deid: removed {stale} temporary files left by an interrupted run");
        }
    }
    let fingerprint = key.fingerprint();
    let ledger_file = ledger::ledger_path(&opts.out, opts.shard);
    let (ledger, ledger_out) = if opts.dry_run {
        (Ledger::default(), None)
    } else {
        let previous = if opts.resume {
            Ledger::load(&ledger_file, &profile.digest, &fingerprint)
        } else {
            Ledger::default()
        };
        let writer = LedgerWriter::open(
            &ledger_file,
            !previous.is_empty(),
            &profile.digest,
            &fingerprint,
        )
        .map_err(|source| Error::Io {
            context: format!("cannot write the run ledger {}", ledger_file.display()),
            source,
        })?;
        if !previous.is_empty() {
            eprintln!(
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
        key_ephemeral: key.ephemeral,
        dry_run: opts.dry_run,
        ..Summary::default()
    };
    crate::profile::iod::preload();
    let ctx = Context {
        engine: Engine::new(&profile, Pseudonymizer::new(&key))
            .with_crosswalk(crosswalk_out.is_some()),
        profile: &profile,
        key: &key,
        out: &opts.out,
        layout: opts.layout,
        dry_run: opts.dry_run,
        ledger,
        cwd: std::env::current_dir().map_err(|source| Error::Io {
            context: "cannot read the working directory".into(),
            source,
        })?,
        stop: AtomicBool::new(false),
    };

    let out_dir = opts.out.clone();
    // Outcomes travel in batches: one message per file woke the reporter thread for
    // every file (measured at about four context switches a file).
    let (tx, rx) = mpsc::sync_channel::<Vec<FileOutcome>>(64);
    let (summary, io_error) = std::thread::scope(|scope| {
        let reporter = scope.spawn(move || {
            let mut r = Reporter::new(report_out, summary)
                .with_crosswalk(crosswalk_out)
                .with_ledger(ledger_out, out_dir)
                .with_quarantine(quarantine_out, opts.quarantine_copy);
            for batch in rx {
                for o in batch {
                    r.record(o);
                }
            }
            r.finish()
        });
        pool.install(|| {
            walk(&opts.inputs)
                .filter(|w| match w {
                    Walked::File(e) => in_shard(&e.rel, opts.shard),
                    Walked::Error { .. } => opts.shard.is_none_or(|(i, _)| i == 0),
                })
                .par_bridge()
                .fold(Vec::new, |mut batch, walked| {
                    batch.push(match walked {
                        Walked::File(entry) => process_guarded(&ctx, &entry),
                        Walked::Error { path, message } => {
                            let mut o = FileOutcome::new(path, Status::Failed);
                            o.kind = Some("unreadable");
                            o.reason = Some(message);
                            o
                        }
                    });
                    if batch.len() >= REPORT_BATCH {
                        // The reporter ends only when every sender is gone, so a send
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
        reporter
            .join()
            .unwrap_or_else(|_| (Summary::default(), None))
    });
    if let Some(e) = io_error {
        return Err(Error::Io {
            context: "cannot write the report".into(),
            source: e,
        });
    }
    let status = if summary.failed > 0
        || summary.skipped > summary.skipped_not_dicom + summary.skipped_unchanged
    {
        ExitStatus::Partial
    } else {
        ExitStatus::Success
    };
    Ok((status, summary))
}

/// The quarantine manifest: one JSON line per failed input (shards keep their own).
fn open_quarantine(
    dir: &Path,
    shard: Option<(u64, u64)>,
) -> Result<(PathBuf, std::fs::File), Error> {
    std::fs::create_dir_all(dir).map_err(|source| Error::Io {
        context: format!("cannot create quarantine directory {}", dir.display()),
        source,
    })?;
    let name = match shard {
        Some((i, n)) => format!("manifest-{i}-of-{n}.jsonl"),
        None => "manifest.jsonl".into(),
    };
    let path = dir.join(name);
    let file = std::fs::File::create(&path).map_err(|source| Error::Io {
        context: format!("cannot create quarantine manifest {}", path.display()),
        source,
    })?;
    Ok((dir.to_path_buf(), file))
}

/// The crosswalk holds original values: created owner-only, never silently replaced.
fn open_crosswalk(path: &Path, overwrite: bool) -> Result<std::fs::File, Error> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true);
    if overwrite {
        o.create(true).truncate(true);
    } else {
        o.create_new(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let file = o.open(path).map_err(|source| {
        let context = if source.kind() == std::io::ErrorKind::AlreadyExists {
            format!(
                "crosswalk {} exists; pass --overwrite-crosswalk to replace it",
                path.display()
            )
        } else {
            format!("cannot create crosswalk {}", path.display())
        };
        Error::Io { context, source }
    })?;
    #[cfg(unix)]
    {
        // An existing file keeps its mode on truncation: make it owner-only too.
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(|source| Error::Io {
                context: format!("cannot restrict crosswalk {}", path.display()),
                source,
            })?;
    }
    Ok(file)
}

/// Refuses an output directory equal to, inside, or containing an input: outputs
/// would be walked as inputs, or inputs overwritten.
fn check_paths(inputs: &[PathBuf], out: &Path) -> Result<(), Error> {
    if inputs.is_empty() {
        return Err(Error::Usage("no input given".into()));
    }
    let out_c = canonical_lenient(out).map_err(|source| Error::Io {
        context: format!("cannot resolve output directory {}", out.display()),
        source,
    })?;
    for input in inputs {
        let in_c = input.canonicalize().map_err(|source| Error::Io {
            context: format!("cannot open input {}", input.display()),
            source,
        })?;
        if out_c.starts_with(&in_c) || in_c.starts_with(&out_c) {
            return Err(Error::Usage(format!(
                "output directory {} overlaps input {}: choose an output outside the inputs",
                out.display(),
                input.display()
            )));
        }
    }
    Ok(())
}

/// Outcomes a worker collects before handing them to the reporter: small enough that
/// an interrupted run loses little of its ledger (those files are simply redone).
const REPORT_BATCH: usize = 32;

/// A panic in one file (a bug of ours or of a library) becomes that file's failure.
fn process_guarded(ctx: &Context<'_>, entry: &Entry) -> FileOutcome {
    std::panic::catch_unwind(AssertUnwindSafe(|| process(ctx, entry))).unwrap_or_else(|p| {
        let msg = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic".into());
        fail(entry, FileError::Panic(msg))
    })
}

fn fail(entry: &Entry, e: FileError) -> FileOutcome {
    let mut o = FileOutcome::new(entry.path.clone(), Status::Failed);
    o.rel = entry.rel.clone();
    o.kind = Some(e.kind());
    o.reason = Some(e.to_string());
    o.bytes_in = std::fs::metadata(&entry.path).map(|m| m.len()).unwrap_or(0);
    o
}

fn process(ctx: &Context<'_>, entry: &Entry) -> FileOutcome {
    if ctx.stop.load(Ordering::Relaxed) {
        return fail(entry, FileError::Aborted);
    }
    match process_file(ctx, entry) {
        Ok(o) => o,
        Err(e) => {
            if matches!(e, FileError::OutputFull(_)) {
                ctx.stop.store(true, Ordering::Relaxed);
            }
            fail(entry, e)
        }
    }
}

fn process_file(ctx: &Context<'_>, entry: &Entry) -> Result<FileOutcome, FileError> {
    // One open and one fstat serve both the ledger stamp and the read.
    let file = std::fs::File::open(&entry.path).map_err(FileError::Read)?;
    let stamp = file
        .metadata()
        .map(|m| ledger::stamp(&m))
        .map_err(FileError::Read)?;
    let ledger_id = (!ctx.dry_run).then(|| ledger::input_id(ctx.key, &entry.path, &ctx.cwd));
    if let Some(done) = ledger_id
        .as_deref()
        .and_then(|id| ctx.ledger.finished(id, stamp, ctx.out))
    {
        let mut o = FileOutcome::new(entry.path.clone(), Status::Skipped);
        o.kind = Some("unchanged");
        o.reason = Some("finished by an earlier run with this profile and key".into());
        o.output = Some(ctx.out.join(&done.output));
        o.bytes_in = stamp.0;
        o.ledger = Some(done.clone());
        return Ok(o);
    }
    let mut src = match read_open(file, stamp.0)? {
        Classified::Dicom(src) => src,
        Classified::NotDicom => {
            let mut o = FileOutcome::new(entry.path.clone(), Status::Skipped);
            o.kind = Some("not-dicom");
            o.reason = Some("not a DICOM file".into());
            return Ok(o);
        }
        Classified::Dicomdir => {
            let mut o = FileOutcome::new(entry.path.clone(), Status::Skipped);
            o.kind = Some("dicomdir");
            o.reason = Some(
                "DICOMDIR: holds patient names and file offsets, never copied; \
                 rebuild it from the de-identified files"
                    .into(),
            );
            return Ok(o);
        }
    };
    let mut outcome = FileOutcome::new(entry.path.clone(), Status::Ok);
    outcome.rel = entry.rel.clone();
    outcome.bytes_in = src.size;
    for finding in crate::quarantine::assess(&src.header, &ctx.profile.quarantine) {
        match finding.severity {
            Severity::Fail => return Err(FileError::Quarantined(finding.reason)),
            _ => outcome.notes.push(format!("warning: {}", finding.reason)),
        }
    }
    let result = ctx.engine.apply(&mut src.header)?;
    let mut counts = result.counts;
    outcome.crosswalk = result.crosswalk;
    outcome.private_creators_dropped = result.creators_dropped;
    if let Some(mut trailing) = src.trailing.take() {
        counts.add(&ctx.engine.apply_trailing(&mut trailing)?.counts);
        if trailing.tags().next().is_some() {
            src.trailing = Some(trailing);
        }
    }
    if src.implicit_vr_repaired.is_some() {
        outcome.notes.push(
            "dataset declared explicit VR but was encoded in implicit VR: read as implicit, \
             written in the declared transfer syntax"
                .into(),
        );
    }
    if src.meta_read_leniently {
        outcome.notes.push(
            "file meta group without its group length or transfer syntax: read element by \
             element (transfer syntax sniffed from the dataset when missing) and rebuilt"
                .into(),
        );
    }
    if src.un_retyped > 0 {
        outcome.notes.push(format!(
            "{} standard attribute(s) stored as UN given their dictionary VR",
            src.un_retyped
        ));
    }
    if src.un_sequences_repaired > 0 {
        outcome.notes.push(format!(
            "{} sequence(s) stored as UN with undefined length (CP-246) read as implicit VR \
             sequences and written as SQ",
            src.un_sequences_repaired
        ));
    }
    if src.dropped_trailing_bytes > 0 {
        outcome.notes.push(format!(
            "dropped {} unparseable bytes after Pixel Data",
            src.dropped_trailing_bytes
        ));
    }
    if src.pixel.is_some() {
        if *ctx.profile.decide(PIXEL_DATA, None).action() == Action::Keep {
            counts.kept += 1;
        } else {
            // Pixel data is never rewritten: any other action drops it.
            src.pixel = None;
            counts.removed += 1;
        }
    }
    outcome.counts = counts;
    let pseudo = ctx.engine.pseudonymizer();
    let meta = build_meta(&src.header, src.meta.as_ref(), src.ts.uid(), |u| {
        pseudo.uid(u)
    })?;
    // A dataset missing its SOP identity (a Type 1 violation) gets the one the meta
    // group carries, so the two always agree.
    fill_sop_identity(&mut src.header, &meta);
    let dest = output_path(ctx.layout, ctx.out, &entry.rel, &src.header, ctx.key);
    if !ctx.dry_run {
        outcome.bytes_out = write_part10(&dest, &entry.path, &meta, *src)?;
        if let Some(id) = ledger_id {
            outcome.ledger = Some(ledger::Record {
                id,
                size: stamp.0,
                mtime_ns: stamp.1,
                output: dest.strip_prefix(ctx.out).unwrap_or(&dest).to_path_buf(),
                output_size: Some(outcome.bytes_out),
            });
        }
    }
    outcome.output = Some(dest);
    Ok(outcome)
}

fn fill_sop_identity(
    dataset: &mut dicom_object::InMemDicomObject,
    meta: &dicom_object::FileMetaTable,
) {
    use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
    for (tag, value) in [
        (Tag(0x0008, 0x0016), meta.media_storage_sop_class_uid()),
        (Tag(0x0008, 0x0018), meta.media_storage_sop_instance_uid()),
    ] {
        if dataset.get(tag).is_none() {
            dataset.put(DataElement::new(tag, VR::UI, PrimitiveValue::from(value)));
        }
    }
}

/// `run --dry-run --explain FILE`: what the profile does to each element of one
/// file, and why; never a value.
pub fn explain(
    profile: &str,
    options: &[String],
    key_file: Option<&Path>,
    file: &Path,
    out: &mut dyn std::io::Write,
) -> Result<ExitStatus, Error> {
    let profile = crate::profile::compile::load_with_options(profile, options)?;
    let key = match key_file {
        Some(p) => Key::from_file(p)?,
        None => Key::random()?,
    };
    let engine = Engine::new(&profile, Pseudonymizer::new(&key));
    let io = |source| Error::Io {
        context: "stdout".into(),
        source,
    };
    let mut src = match read(file) {
        Ok(Classified::Dicom(src)) => src,
        Ok(Classified::NotDicom) => {
            writeln!(out, "{}: not DICOM: would be skipped", file.display()).map_err(io)?;
            return Ok(ExitStatus::Success);
        }
        Ok(Classified::Dicomdir) => {
            writeln!(out, "{}: DICOMDIR: would be skipped", file.display()).map_err(io)?;
            return Ok(ExitStatus::Partial);
        }
        Err(e) => {
            writeln!(out, "{}: would fail: {e}", file.display()).map_err(io)?;
            return Ok(ExitStatus::Partial);
        }
    };
    let sop_class = src
        .header
        .get(dicom_core::Tag(0x0008, 0x0016))
        .and_then(|e| e.to_str().ok())
        .map(|s| s.trim_end_matches(['\0', ' ']).to_string())
        .unwrap_or_default();
    let iod = crate::profile::iod::for_sop_class(&sop_class)
        .map(|i| i.iod_id().to_string())
        .unwrap_or_else(|| "unknown (IOD-free resolution of compound codes)".into());
    let (result, lines) = match engine.explain(&mut src.header) {
        Ok(r) => r,
        Err(e) => {
            writeln!(out, "{}: would fail: {e}", file.display()).map_err(io)?;
            return Ok(ExitStatus::Partial);
        }
    };
    writeln!(out, "file: {}", file.display()).map_err(io)?;
    writeln!(
        out,
        "profile: {} ({})",
        profile.name,
        profile.sources.join(" <- ")
    )
    .map_err(io)?;
    if !profile.options.is_empty() {
        writeln!(out, "options: {}", profile.options.join(", ")).map_err(io)?;
    }
    writeln!(out, "SOP class: {sop_class}; IOD: {iod}").map_err(io)?;
    writeln!(
        out,
        "\n{:<44} {:<36} {:<3} {:<12} {:<22} rule",
        "path", "keyword", "vr", "size", "action"
    )
    .map_err(io)?;
    for l in &lines {
        writeln!(
            out,
            "{:<44} {:<36} {:<3} {:<12} {:<22} {}",
            l.path, l.keyword, l.vr, l.size, l.action, l.why
        )
        .map_err(io)?;
    }
    if src.pixel.is_some() {
        let keep = *profile.decide(PIXEL_DATA, None).action() == Action::Keep;
        writeln!(
            out,
            "{:<44} {:<36} {:<3} {:<12} {:<22} pixel data is copied byte for byte, never decoded",
            "(7FE0,0010)",
            "PixelData",
            "",
            "",
            if keep { "keep" } else { "remove" }
        )
        .map_err(io)?;
    }
    let c = result.counts;
    writeln!(
        out,
        "\n{} elements: {} removed, {} emptied, {} replaced, {} UIDs remapped, {} kept; markers (0012,0062/0063/0064) and (0028,0303) written",
        lines.len(),
        c.removed,
        c.emptied,
        c.replaced,
        c.uid_remapped,
        c.kept
    )
    .map_err(io)?;
    Ok(ExitStatus::Success)
}

/// Parses `--shard`: `I/N` (0-based), or `auto` from the variables array jobs set:
/// Slurm's SLURM_ARRAY_TASK_ID (minus SLURM_ARRAY_TASK_MIN) and
/// SLURM_ARRAY_TASK_COUNT, or Kubernetes' JOB_COMPLETION_INDEX with `count`.
pub fn parse_shard(
    spec: &str,
    count: Option<u64>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<(u64, u64), Error> {
    let num = |name: &str, v: &str| {
        v.trim()
            .parse::<u64>()
            .map_err(|_| Error::Usage(format!("{name} is not a number: `{v}`")))
    };
    let (i, n) = if spec == "auto" {
        if let Some(id) = env("SLURM_ARRAY_TASK_ID") {
            let min = match env("SLURM_ARRAY_TASK_MIN") {
                Some(m) => num("SLURM_ARRAY_TASK_MIN", &m)?,
                None => 0,
            };
            let n = match (env("SLURM_ARRAY_TASK_COUNT"), count) {
                (Some(c), _) => num("SLURM_ARRAY_TASK_COUNT", &c)?,
                (None, Some(c)) => c,
                (None, None) => {
                    return Err(Error::Usage(
                        "--shard auto: SLURM_ARRAY_TASK_COUNT is not set; pass --shard-count"
                            .into(),
                    ));
                }
            };
            (num("SLURM_ARRAY_TASK_ID", &id)?.saturating_sub(min), n)
        } else if let Some(idx) = env("JOB_COMPLETION_INDEX") {
            let n = count.ok_or_else(|| {
                Error::Usage("--shard auto with JOB_COMPLETION_INDEX needs --shard-count (the Job's completions)".into())
            })?;
            (num("JOB_COMPLETION_INDEX", &idx)?, n)
        } else {
            return Err(Error::Usage(
                "--shard auto: neither SLURM_ARRAY_TASK_ID nor JOB_COMPLETION_INDEX is set".into(),
            ));
        }
    } else {
        let (i, n) = spec
            .split_once('/')
            .ok_or_else(|| Error::Usage(format!("--shard expects I/N or auto, got `{spec}`")))?;
        (num("shard index", i)?, num("shard count", n)?)
    };
    if n == 0 || i >= n {
        return Err(Error::Usage(format!(
            "shard {i} of {n} does not exist (shards are numbered 0 to N-1)"
        )));
    }
    Ok((i, n))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: std::collections::HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn shards_parse_from_flags_slurm_and_kubernetes() {
        assert_eq!(parse_shard("1/3", None, env(&[])).unwrap(), (1, 3));
        assert!(parse_shard("3/3", None, env(&[])).is_err());
        assert!(parse_shard("x", None, env(&[])).is_err());
        let slurm = env(&[
            ("SLURM_ARRAY_TASK_ID", "3"),
            ("SLURM_ARRAY_TASK_MIN", "1"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
        ]);
        assert_eq!(parse_shard("auto", None, slurm).unwrap(), (2, 4));
        let k8s = env(&[("JOB_COMPLETION_INDEX", "0")]);
        assert_eq!(parse_shard("auto", Some(5), &k8s).unwrap(), (0, 5));
        assert!(parse_shard("auto", None, &k8s).is_err());
        assert!(parse_shard("auto", None, env(&[])).is_err());
    }
}
