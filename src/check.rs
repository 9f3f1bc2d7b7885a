//! `dicom-deid check`: is a de-identified tree clean enough to share? Reads every
//! file (read-only) and reports what the profile required but the file still
//! holds, invalid or dangling UIDs, missing markers, burned-in annotation risk and,
//! given the originals, any identifying value of the original left anywhere in
//! the file.
//!
//! The check is a separate code path on purpose: it reads files with `io::read`
//! and asks the compiled profile what each tag requires, but never calls the
//! de-identification engine, so the engine is not the only judge of its work.

mod dataset;
mod expect;
mod finding;
mod markers;
mod ocr;
mod originals;
mod phi;
mod rules;
mod uids;

pub use finding::{Finding, Kind, ValueKind};

use crate::error::{Error, ExitStatus};
use crate::io::read::{Classified, Source, read};
use crate::io::walk::{Entry, Source as Root, Walked, walk_sources};
use crate::profile::{self, CompiledProfile};
use crate::s3::{Bucket, Endpoint, S3Url, input::S3Input};
use dataset::{Visit, flatten};
use expect::Expected;
use originals::{Index, Match, Matched};
use rayon::prelude::*;
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use uids::{Known, Reference};

/// Examples of each finding kind printed on stdout.
const EXAMPLES_PER_KIND: usize = 3;

/// What `dicom-deid check` was asked to do.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// De-identified files or folders.
    pub inputs: Vec<PathBuf>,
    /// The profile the tree was de-identified with (name or YAML path).
    pub profile: String,
    /// Folder of the originals: enables the residual-PHI search.
    pub originals: Option<PathBuf>,
    /// JSON Lines report.
    pub report: Option<PathBuf>,
    /// PS3.15 options the tree was de-identified with.
    pub options: Vec<String>,
    /// A `run --crosswalk` file: its original values are searched in every file.
    pub crosswalk: Option<PathBuf>,
    /// Kinds of finding reported but not counted against the exit code.
    pub allow: Vec<String>,
    /// Warnings count against the exit code too.
    pub strict: bool,
    /// OCR each file's pixels for identifying text (needs `tesseract`).
    pub ocr: bool,
}

/// The outcome for one file of the tree.
#[derive(Debug, Serialize)]
pub struct FileReport {
    pub file: PathBuf,
    /// How the file was matched to its original (`fingerprint` or `path`), with
    /// `--originals`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub original: Option<&'static str>,
    pub findings: Vec<Finding>,
    #[serde(skip)]
    references: Vec<Reference>,
    #[serde(skip)]
    sop_instance_uid: Option<String>,
    #[serde(skip)]
    study_instance_uid: Option<String>,
}

impl FileReport {
    fn new(file: &Path) -> FileReport {
        FileReport {
            file: file.to_path_buf(),
            original: None,
            findings: Vec::new(),
            references: Vec::new(),
            sop_instance_uid: None,
            study_instance_uid: None,
        }
    }
}

#[derive(Debug, Default, Serialize)]
pub struct OriginalsSummary {
    /// Originals read.
    pub files: u64,
    /// Files under the originals folder that are not readable DICOM.
    pub skipped: u64,
    /// Checked files matched to an original.
    pub matched: u64,
}

#[derive(Debug, Default, Serialize)]
pub struct Summary {
    pub files: u64,
    pub files_with_findings: u64,
    pub findings: u64,
    pub warnings: u64,
    /// Findings of a kind named by `--allow`: reported, not counted in the exit code.
    pub allowed: u64,
    /// Findings that make the exit code non-zero: neither allowed nor, without
    /// `--strict`, warnings.
    pub failing: u64,
    /// Findings per kind.
    pub counts: BTreeMap<&'static str, u64>,
    /// Residual-PHI findings per kind of value matched.
    pub matches: BTreeMap<&'static str, u64>,
    pub profile: String,
    pub profile_digest: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub originals: Option<OriginalsSummary>,
    /// Ledger files of `run` found in the tree (not checked).
    pub ledgers_not_checked: u64,
}

/// Runs the check; exit status 0 only when nothing was found.
pub fn run(opts: CheckOptions, out: &mut dyn Write) -> Result<ExitStatus, Error> {
    check_paths(&opts)?;
    let allowed = parse_allowed(&opts.allow)?;
    let expected = Expected::new(profile::compile::load_with_options(
        &opts.profile,
        &opts.options,
    )?)?;
    let profile = &expected.profile;
    let mut report = opts.report.as_deref().map(create_report).transpose()?;
    let index = opts
        .originals
        .as_deref()
        .map(|dir| Index::build(dir, &expected));
    let skip = opts.report.as_deref().and_then(|p| p.canonicalize().ok());
    let roots = open_roots(&opts.inputs)?;
    let (ledgers, entries): (Vec<Walked>, Vec<Walked>) = walk_sources(&roots, true)
        .filter(|w| !is_same_file(w, skip.as_deref()))
        .partition(is_run_ledger);
    let crosswalk = match &opts.crosswalk {
        Some(p) => Some(
            phi::Needles::from_crosswalk(p)
                .map_err(|e| Error::Usage(format!("cannot read crosswalk {}: {e}", p.display())))?
                .compile(),
        ),
        None => None,
    };
    if opts.ocr && !ocr::available() {
        return Err(Error::Usage(
            "--ocr needs the tesseract program (Debian: tesseract-ocr tesseract-ocr-eng)".into(),
        ));
    }
    let checker = Checker {
        roots: &roots,
        ocr: opts.ocr,
        expected: &expected,
        index: index.as_ref(),
        crosswalk: crosswalk.as_ref(),
    };
    let mut files: Vec<FileReport> = entries.par_iter().map(|w| checker.check_entry(w)).collect();
    resolve_references(&mut files);
    for finding in files.iter_mut().flat_map(|f| f.findings.iter_mut()) {
        if allowed.contains(&finding.kind) {
            finding.severity = "allowed";
        }
    }
    let mut summary = summarize(&files, profile, index.as_ref(), opts.strict);
    summary.ledgers_not_checked = ledgers.len() as u64;
    if let Some((path, w)) = report.as_mut() {
        write_report(w, &files, &summary).map_err(|source| Error::Io {
            context: path.display().to_string(),
            source,
        })?;
    }
    print_summary(out, &files, &summary).map_err(|source| Error::Io {
        context: "stdout".into(),
        source,
    })?;
    Ok(if summary.failing == 0 {
        ExitStatus::Success
    } else {
        ExitStatus::Partial
    })
}

/// Any kind can be allowed: the site decides what it shares (an attribute kept on
/// purpose, references outside the export); the finding stays in the report.
fn parse_allowed(names: &[String]) -> Result<Vec<Kind>, Error> {
    names
        .iter()
        .map(|name| {
            Kind::parse(name).ok_or_else(|| {
                Error::Usage(format!(
                    "--allow {name}: no such kind of finding (one of {})",
                    Kind::ALL.map(Kind::as_str).join(", ")
                ))
            })
        })
        .collect()
}

/// Folders and files as given; `s3://bucket/prefix` opened with the AWS environment's
/// credentials and endpoint, and checked once (a missing bucket or refused
/// credentials end the check here).
fn open_roots(inputs: &[PathBuf]) -> Result<Vec<Root>, Error> {
    inputs
        .iter()
        .map(|p| match p.to_str().and_then(S3Url::parse) {
            None => Ok(Root::Local(p.clone())),
            Some(url) => {
                let fatal = |e: crate::s3::S3Error| Error::Usage(e.to_string());
                let bucket =
                    Bucket::open(&url.map_err(fatal)?, &Endpoint::default()).map_err(fatal)?;
                bucket.preflight().map_err(fatal)?;
                Ok(Root::S3(Arc::new(bucket)))
            }
        })
        .collect()
}

fn check_paths(opts: &CheckOptions) -> Result<(), Error> {
    if let Some(missing) = opts
        .inputs
        .iter()
        .filter(|p| !p.to_str().is_some_and(|s| s.starts_with("s3://")))
        .find(|p| !p.exists())
    {
        return Err(Error::Usage(format!(
            "{}: no such file or folder",
            missing.display()
        )));
    }
    match &opts.originals {
        Some(dir) if !dir.is_dir() => Err(Error::Usage(format!(
            "--originals {}: not a folder",
            dir.display()
        ))),
        _ => Ok(()),
    }
}

type ReportFile = (PathBuf, std::io::BufWriter<std::fs::File>);

fn create_report(path: &Path) -> Result<ReportFile, Error> {
    let file = std::fs::File::create(path).map_err(|source| Error::Io {
        context: path.display().to_string(),
        source,
    })?;
    Ok((path.to_path_buf(), std::io::BufWriter::new(file)))
}

/// `run` keeps its ledger (keyed ids, sizes and times, no path or value) with the
/// output, and beside it the ledger's lock file (a random run id of at most 64
/// bytes); they are bookkeeping, not data, and are counted but not checked.
fn is_run_ledger(w: &Walked) -> bool {
    let Walked::File(e) = w else {
        return false;
    };
    let name = e.path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    if !name.starts_with(".dicom-deid-ledger") {
        return false;
    }
    name.ends_with(".jsonl")
        || (name.ends_with(".jsonl.lock")
            && std::fs::metadata(&e.path).is_ok_and(|m| m.len() <= 64))
}

/// The report file, when written inside the checked tree, is not checked.
fn is_same_file(w: &Walked, report: Option<&Path>) -> bool {
    match (w, report) {
        (Walked::File(e), Some(r)) => e.path.canonicalize().is_ok_and(|p| p == r),
        _ => false,
    }
}

/// The dataset and the elements after Pixel Data, flattened.
pub(crate) fn visits_of(src: &Source) -> Vec<Visit<'_>> {
    let mut visits = Vec::new();
    flatten(&src.header, &mut visits);
    if let Some(trailing) = &src.trailing {
        flatten(trailing, &mut visits);
    }
    visits
}

struct Checker<'a> {
    /// The roots walked, for the bucket an object entry comes from.
    roots: &'a [Root],
    /// OCR the pixels (`--ocr`).
    ocr: bool,
    expected: &'a Expected,
    index: Option<&'a Index>,
    /// Original values from a crosswalk, searched in every file.
    crosswalk: Option<&'a phi::Compiled>,
}

impl Checker<'_> {
    fn check_entry(&self, w: &Walked) -> FileReport {
        match w {
            Walked::File(e) => self.check_file(e),
            Walked::Error { path, message } => {
                let mut r = FileReport::new(path);
                r.findings
                    .push(Finding::new(Kind::Unreadable, message.clone()));
                r
            }
            // The judge follows links (it judges what a reader of the tree gets), so
            // these two come only from a loop or a link it was told not to follow.
            Walked::Symlink(e) => {
                let mut r = FileReport::new(&e.path);
                r.findings.push(Finding::new(
                    Kind::Unreadable,
                    "symbolic link, not followed".to_string(),
                ));
                r
            }
            Walked::Loop { path } => {
                let mut r = FileReport::new(path);
                r.findings.push(Finding::new(
                    Kind::Unreadable,
                    "symbolic link loop".to_string(),
                ));
                r
            }
        }
    }

    /// Never panics outward: a panic in a parser becomes a finding for its file.
    fn check_file(&self, e: &Entry) -> FileReport {
        let path = &e.path;
        let run = std::panic::AssertUnwindSafe(|| self.check_file_inner(e));
        std::panic::catch_unwind(run).unwrap_or_else(|_| {
            let mut r = FileReport::new(path);
            r.findings.push(Finding::new(
                Kind::Unreadable,
                "internal error while checking this file",
            ));
            r
        })
    }

    fn check_file_inner(&self, e: &Entry) -> FileReport {
        let (path, rel) = (e.path.as_path(), e.rel.as_path());
        let mut r = FileReport::new(path);
        let read = match &e.remote {
            None => read(path),
            Some(remote) => match self.roots.get(remote.source) {
                Some(Root::S3(bucket)) => {
                    let (input, stamp) = S3Input::open(bucket, remote.listed.clone());
                    crate::io::read::read_input(input, stamp)
                }
                _ => read(path),
            },
        };
        match read {
            Err(e) => r
                .findings
                .push(Finding::new(Kind::Unreadable, e.to_string())),
            Ok(Classified::NotDicom) => r.findings.push(Finding::new(
                Kind::NotDicom,
                "not a DICOM file: nothing in it can be verified",
            )),
            Ok(Classified::Dicomdir) => r.findings.push(Finding::new(
                Kind::Dicomdir,
                "a DICOMDIR lists patient names and must not be shared",
            )),
            Ok(Classified::Dicom(src)) => self.check_dicom(path, rel, &src, &mut r),
        }
        r
    }

    fn check_dicom(&self, path: &Path, rel: &Path, src: &Source, r: &mut FileReport) {
        let visits = visits_of(src);
        let matched = self.match_original(path, rel, src, r);
        let judge = rules::Judge {
            expected: self.expected,
            originals: matched.iter().map(|m| m.values()).collect(),
        };
        let findings = &mut r.findings;
        judge.check(&visits, findings);
        visits
            .iter()
            .for_each(|v| uids::check_uid_element(v, findings));
        let meta_class = src.meta.as_ref().map(|m| m.media_storage_sop_class_uid());
        if let Some(meta) = &src.meta {
            uids::check_meta(meta, &src.header, findings);
            judge.check_meta_instance(meta.media_storage_sop_instance_uid(), findings);
        }
        markers::check_markers(&src.header, findings);
        markers::check_burned_in(&src.header, meta_class, findings);
        if src.dropped_trailing_bytes > 0 {
            findings.push(Finding::new(
                Kind::UnparsedBytes,
                format!(
                    "{} bytes after Pixel Data do not parse as DICOM",
                    src.dropped_trailing_bytes
                ),
            ));
        }
        if matched.is_some() || self.crosswalk.is_some() {
            let kept = phi::kept_texts(&visits, self.expected);
            search_phi(
                path,
                src,
                &visits,
                (matched.as_ref(), self.crosswalk),
                &kept,
                findings,
            );
        }
        if self.ocr {
            // The file's own identifying values, and its original's when known.
            let own = phi::Needles::collect(&visits, self.expected).compile();
            let single;
            let mut sets: Vec<&phi::Compiled> = vec![&own];
            match matched.as_ref() {
                Some(originals::Matched::One(o)) => {
                    single = o.needles.compile();
                    sets.push(&single);
                }
                Some(originals::Matched::Several(m)) => sets.push(&m.needles),
                None => {}
            }
            sets.extend(self.crosswalk);
            ocr::check(path, src, &sets, findings);
        }
        uids::collect_references(&src.header, "", 0, &mut r.references);
        if let Some(trailing) = &src.trailing {
            uids::collect_references(trailing, "", 0, &mut r.references);
        }
        r.sop_instance_uid = uids::first_string(&src.header, uids::SOP_INSTANCE_UID);
        r.study_instance_uid = uids::first_string(&src.header, uids::STUDY_INSTANCE_UID);
    }

    /// The originals this file may come from (none without `--originals`); a file
    /// without one is a finding, since it cannot be searched for residual PHI.
    fn match_original(
        &self,
        path: &Path,
        rel: &Path,
        src: &Source,
        r: &mut FileReport,
    ) -> Option<Matched<'_>> {
        let index = self.index?;
        let found = originals::fingerprint(path, src)
            .ok()
            .and_then(|fp| index.lookup(&fp, rel));
        match found {
            Some((matched, how)) => {
                r.original = Some(match how {
                    Match::Fingerprint => "fingerprint",
                    Match::Path => "path",
                });
                Some(matched)
            }
            None => {
                r.findings.push(Finding::new(
                    Kind::OriginalNotFound,
                    "no original has this file's pixel fingerprint or relative path: residual PHI not searched",
                ));
                None
            }
        }
    }
}

/// `kept`: the texts of the file's kept attributes; a needle among them is not
/// residual PHI in this file (see `phi::Compiled::exempt`).
fn search_phi(
    path: &Path,
    src: &Source,
    visits: &[Visit<'_>],
    (matched, crosswalk): (Option<&Matched<'_>>, Option<&phi::Compiled>),
    kept: &HashSet<String>,
    findings: &mut Vec<Finding>,
) {
    // A single original's needles are compiled here (cheap, and not worth keeping);
    // a group's and the crosswalk's were compiled once.
    let own;
    let mut sets: Vec<&phi::Compiled> = Vec::new();
    match matched {
        Some(Matched::One(o)) => {
            own = o.needles.compile();
            sets.push(&own);
        }
        Some(Matched::Several(m)) => sets.push(&m.needles),
        None => {}
    }
    sets.extend(crosswalk);
    sets.retain(|s| !s.is_empty());
    if sets.is_empty() {
        return;
    }
    let exempt: Vec<HashSet<usize>> = sets.iter().map(|s| s.exempt(kept)).collect();
    let with_exempt: Vec<(&phi::Compiled, &HashSet<usize>)> =
        sets.iter().copied().zip(exempt.iter()).collect();
    let mut found = phi::search_strings(visits, &with_exempt, findings);
    // The raw search skips what the decoded search found and what is exempt.
    for (f, e) in found.iter_mut().zip(&exempt) {
        f.extend(e);
    }
    let with_skips: Vec<(&phi::Compiled, &HashSet<usize>)> =
        sets.iter().copied().zip(found.iter()).collect();
    match phi::search_raw(path, &with_skips, src.pixel.clone()) {
        Ok(raw) => findings.extend(raw),
        Err(e) => findings.push(Finding::new(
            Kind::Unreadable,
            format!("cannot read the file's bytes: {e}"),
        )),
    }
}

/// References must name an instance (or study) of the checked tree.
fn resolve_references(files: &mut [FileReport]) {
    let mut known = Known::default();
    for f in files.iter() {
        known.instances.extend(f.sop_instance_uid.clone());
        known.studies.extend(f.study_instance_uid.clone());
    }
    for f in files.iter_mut() {
        for reference in std::mem::take(&mut f.references) {
            if !known.resolves(&reference) {
                f.findings.push(uids::unresolved(&reference));
            }
        }
    }
}

fn summarize(
    files: &[FileReport],
    profile: &CompiledProfile,
    index: Option<&Index>,
    strict: bool,
) -> Summary {
    let mut s = Summary {
        files: files.len() as u64,
        profile: profile.name.clone(),
        profile_digest: profile.digest.clone(),
        ..Summary::default()
    };
    for f in files {
        if !f.findings.is_empty() {
            s.files_with_findings += 1;
        }
        for finding in &f.findings {
            s.findings += 1;
            if finding.kind.is_warning() {
                s.warnings += 1;
            }
            if finding.severity == "allowed" {
                s.allowed += 1;
            } else if strict || !finding.kind.is_warning() {
                s.failing += 1;
            }
            *s.counts.entry(finding.kind.as_str()).or_default() += 1;
            if let Some(m) = finding.matched {
                *s.matches.entry(m.as_str()).or_default() += 1;
            }
        }
    }
    s.originals = index.map(|ix| OriginalsSummary {
        files: ix.count() as u64,
        skipped: ix.skipped as u64,
        matched: files.iter().filter(|f| f.original.is_some()).count() as u64,
    });
    s
}

fn write_report(
    w: &mut impl Write,
    files: &[FileReport],
    summary: &Summary,
) -> std::io::Result<()> {
    for f in files {
        serde_json::to_writer(&mut *w, f)?;
        writeln!(w)?;
    }
    serde_json::to_writer(&mut *w, &serde_json::json!({ "summary": summary }))?;
    writeln!(w)?;
    w.flush()
}

fn print_summary(out: &mut dyn Write, files: &[FileReport], s: &Summary) -> std::io::Result<()> {
    writeln!(
        out,
        "dicom-deid check: {} files, {} with findings; {} findings ({} warnings, {} allowed); profile {}",
        s.files, s.files_with_findings, s.findings, s.warnings, s.allowed, s.profile
    )?;
    if s.ledgers_not_checked > 0 {
        writeln!(out, "run ledgers not checked: {}", s.ledgers_not_checked)?;
    }
    if let Some(o) = &s.originals {
        writeln!(
            out,
            "originals: {} read, {} skipped; {} of {} checked files matched to an original",
            o.files, o.skipped, o.matched, s.files
        )?;
    }
    for (kind, n) in &s.counts {
        let extra = if *kind == Kind::ResidualPhi.as_str() {
            let by_match: Vec<String> = s.matches.iter().map(|(m, n)| format!("{m} {n}")).collect();
            format!("  ({})", by_match.join(", "))
        } else if *kind == Kind::UnresolvedReference.as_str() {
            "  (warning)".into()
        } else {
            String::new()
        };
        writeln!(out, "  {kind:<22} {n:>6}{extra}")?;
    }
    print_examples(out, files)?;
    if s.findings == 0 {
        writeln!(out, "clean: nothing found")
    } else if s.failing == 0 {
        writeln!(
            out,
            "clean: no failing finding ({} warnings, {} allowed; --strict makes warnings fail)",
            s.warnings, s.allowed
        )
    } else {
        writeln!(
            out,
            "NOT CLEAN: {} findings in {} files",
            s.findings, s.files_with_findings
        )
    }
}

/// The first findings of each kind, with file and tag path (or byte offset).
fn print_examples(out: &mut dyn Write, files: &[FileReport]) -> std::io::Result<()> {
    let mut by_kind: BTreeMap<Kind, Vec<(&Path, &Finding)>> = BTreeMap::new();
    for f in files {
        for finding in &f.findings {
            let examples = by_kind.entry(finding.kind).or_default();
            if examples.len() < EXAMPLES_PER_KIND {
                examples.push((&f.file, finding));
            }
        }
    }
    if !by_kind.is_empty() {
        writeln!(out, "first examples of each kind:")?;
    }
    for (kind, examples) in by_kind {
        writeln!(out, "  {kind}")?;
        for (file, finding) in examples {
            let matched = finding
                .matched
                .map(|m| format!(" [{}]", m.as_str()))
                .unwrap_or_default();
            writeln!(
                out,
                "    {} at {}{}: {}",
                file.display(),
                finding.location(),
                matched,
                finding.detail
            )?;
        }
    }
    Ok(())
}
