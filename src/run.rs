//! The `run` command: compile the profile and key once, then walk -> read -> apply ->
//! write in parallel, with one reporter thread collecting outcomes.

use crate::deid::{Engine, Key, Pseudonymizer};
use crate::error::{Error, ExitStatus, FileError};
use crate::io::layout::{Layout, output_path};
use crate::io::read::{Classified, read};
use crate::io::walk::{Entry, Walked, canonical_lenient, walk};
use crate::io::write::{build_meta, write_part10};
use crate::profile::{Action, CompiledProfile};
use crate::report::{FileOutcome, Reporter, Status, Summary};
use rayon::prelude::*;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
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
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.jobs.unwrap_or(0))
        .stack_size(WORKER_STACK)
        .build()
        .map_err(|e| Error::Usage(format!("cannot start worker threads: {e}")))?;

    let summary = Summary {
        options: profile.options.iter().map(|o| o.to_string()).collect(),
        profile: profile.name.clone(),
        profile_digest: profile.digest.clone(),
        key_fingerprint: key.fingerprint(),
        key_ephemeral: key.ephemeral,
        dry_run: opts.dry_run,
        ..Summary::default()
    };
    let ctx = Context {
        engine: Engine::new(&profile, Pseudonymizer::new(&key))
            .with_crosswalk(crosswalk_out.is_some()),
        profile: &profile,
        key: &key,
        out: &opts.out,
        layout: opts.layout,
        dry_run: opts.dry_run,
    };

    let (tx, rx) = mpsc::sync_channel::<FileOutcome>(1024);
    let (summary, io_error) = std::thread::scope(|scope| {
        let reporter = scope.spawn(move || {
            let mut r = Reporter::new(report_out, summary).with_crosswalk(crosswalk_out);
            for o in rx {
                r.record(o);
            }
            r.finish()
        });
        pool.install(|| {
            walk(&opts.inputs)
                .par_bridge()
                .for_each_with(tx, |tx, walked| {
                    let outcome = match walked {
                        Walked::File(entry) => process_guarded(&ctx, &entry),
                        Walked::Error { path, message } => {
                            let mut o = FileOutcome::new(path, Status::Failed);
                            o.kind = Some("unreadable");
                            o.reason = Some(message);
                            o
                        }
                    };
                    // The reporter ends only when every sender is gone.
                    let _ = tx.send(outcome);
                });
        });
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
    let status = if summary.failed > 0 || summary.skipped > summary.skipped_not_dicom {
        ExitStatus::Partial
    } else {
        ExitStatus::Success
    };
    Ok((status, summary))
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
    o.kind = Some(e.kind());
    o.reason = Some(e.to_string());
    o.bytes_in = std::fs::metadata(&entry.path).map(|m| m.len()).unwrap_or(0);
    o
}

fn process(ctx: &Context<'_>, entry: &Entry) -> FileOutcome {
    match process_file(ctx, entry) {
        Ok(o) => o,
        Err(e) => fail(entry, e),
    }
}

fn process_file(ctx: &Context<'_>, entry: &Entry) -> Result<FileOutcome, FileError> {
    let mut src = match read(&entry.path)? {
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
    outcome.bytes_in = src.size;
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
        outcome.bytes_out = write_part10(&dest, &entry.path, &meta, &src)?;
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
