//! The immutable plan of a run, built once before any file: the compiled profile,
//! the key, and the checked paths. Nothing here is touched per file.

use super::RunOptions;
use crate::deid::Key;
use crate::error::Error;
use crate::io::walk::Source;
use crate::io::walk::canonical_lenient;
use crate::profile::CompiledProfile;
use crate::s3::{Bucket, Endpoint, S3Error, S3Url};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub struct RunPlan {
    pub profile: CompiledProfile,
    pub key: Key,
    /// Working directory at the start, for the ledger's absolute input paths.
    pub cwd: PathBuf,
    /// The inputs: folders, files and bucket prefixes.
    pub sources: Vec<Source>,
    pub dest: Destination,
    /// Where the ledger and its lock live: the output folder, or for a bucket
    /// output a local state directory.
    pub state_dir: PathBuf,
}

/// Where de-identified objects go.
pub enum Destination {
    Dir(PathBuf),
    S3(Arc<Bucket>),
    /// A DICOM node (C-STORE) or a DICOMweb store (STOW-RS).
    Network(crate::gateway::dest::Destination),
}

impl Destination {
    /// How the destination is named in messages.
    pub fn describe(&self) -> String {
        match self {
            Destination::Dir(p) => p.display().to_string(),
            Destination::S3(b) => b.url.to_string(),
            Destination::Network(d) => d.to_string(),
        }
    }
}

fn s3_url(p: &Path) -> Option<Result<S3Url, Error>> {
    S3Url::parse(p.to_str()?).map(|r| r.map_err(|e| Error::Usage(e.to_string())))
}

fn s3_fatal(e: S3Error) -> Error {
    Error::Usage(e.to_string())
}

/// Opens every bucket named by the command line, checking each once (a missing
/// bucket or refused credentials end the run here, before any file).
fn open_buckets(opts: &RunOptions) -> Result<(Vec<Source>, Destination), Error> {
    let endpoint = Endpoint {
        url: opts.s3_endpoint.clone(),
        credentials: None,
    };
    let mut sources = Vec::new();
    let mut remote_inputs = Vec::new();
    for input in &opts.inputs {
        match s3_url(input) {
            Some(url) => {
                let url = url?;
                let bucket = Bucket::open(&url, &endpoint).map_err(s3_fatal)?;
                bucket.preflight().map_err(s3_fatal)?;
                remote_inputs.push(url);
                sources.push(Source::S3(Arc::new(bucket)));
            }
            None => sources.push(Source::Local(input.clone())),
        }
    }
    let out = opts.out.to_string_lossy();
    if out.starts_with("dimse://")
        || out.starts_with("dimse+tls://")
        || out.starts_with("dicomweb+")
    {
        let d = crate::gateway::dest::Destination::parse(&out)
            .map_err(|e| Error::Usage(e.to_string().replace("--forward", "--out")))?;
        return Ok((sources, Destination::Network(d)));
    }
    let dest = match s3_url(&opts.out) {
        Some(url) => {
            let url = url?;
            for input in &remote_inputs {
                let nested = |a: &S3Url, b: &S3Url| {
                    a.bucket == b.bucket
                        && (b.prefix.is_empty()
                            || a.prefix == b.prefix
                            || a.prefix.starts_with(&b.dir_prefix()))
                };
                if nested(&url, input) || nested(input, &url) {
                    return Err(Error::Usage(format!(
                        "output {url} overlaps input {input}: choose an output prefix \
                         outside the inputs"
                    )));
                }
            }
            let bucket = Bucket::open(&url, &endpoint).map_err(s3_fatal)?;
            if !opts.dry_run {
                bucket.preflight().map_err(s3_fatal)?;
            }
            Destination::S3(Arc::new(bucket))
        }
        None => Destination::Dir(opts.out.clone()),
    };
    Ok((sources, dest))
}

/// The default state directory of an `s3://` output: under XDG_STATE_HOME (or
/// ~/.local/state), one folder per output URL.
fn default_state_dir(url: &str) -> PathBuf {
    use sha2::{Digest, Sha256};
    let base = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(|| PathBuf::from(".dicom-deid-state"));
    let d = Sha256::digest(url.as_bytes());
    let id: String = d[..8].iter().map(|b| format!("{b:02x}")).collect();
    base.join("dicom-deid").join(id)
}

impl RunPlan {
    pub fn build(opts: &RunOptions) -> Result<RunPlan, Error> {
        // The IOD tables (about 4 ms of parsing) and the built-in pixel rules (about
        // 2 ms) are read on a second thread while the profile loads (about 7 ms):
        // startup is serial time in every run.
        let iod_tables = std::thread::spawn(|| {
            crate::profile::pixels::preload_builtin();
            crate::profile::iod::preload();
        });
        let profile = crate::profile::compile::load_with_options(&opts.profile, &opts.options)?;
        let key = match &opts.key_file {
            Some(p) => Key::from_file(p)?,
            None => {
                if opts.verbosity != crate::report::Verbosity::Quiet {
                    crate::say!(
                        "dicom-deid: no --key-file: using a random key for this run only; \
                     its UIDs and pseudonyms cannot be linked to any other run"
                    );
                }
                Key::random()?
            }
        };
        let (sources, dest) = open_buckets(opts)?;
        let local_inputs: Vec<PathBuf> = sources
            .iter()
            .filter_map(|s| match s {
                Source::Local(p) => Some(p.clone()),
                Source::S3(_) => None,
            })
            .collect();
        if sources.is_empty() {
            return Err(Error::Usage("no input given".into()));
        }
        let state_dir = match &dest {
            Destination::Dir(out) => {
                check_paths(&local_inputs, out)?;
                out.clone()
            }
            Destination::S3(b) => opts
                .state_dir
                .clone()
                .unwrap_or_else(|| default_state_dir(&b.url.to_string())),
            Destination::Network(d) => opts
                .state_dir
                .clone()
                .unwrap_or_else(|| default_state_dir(&d.to_string())),
        };
        check_side_files(opts, &local_inputs, &dest)?;
        // IOD tables are parsed before the walk, not by the first file of each class.
        if iod_tables.join().is_err() {
            crate::profile::iod::preload();
        }
        let cwd = std::env::current_dir().map_err(|source| Error::Io {
            context: "cannot read the working directory".into(),
            source,
        })?;
        Ok(RunPlan {
            profile,
            key,
            cwd,
            sources,
            dest,
            state_dir,
        })
    }
}

/// Refuses an output directory equal to, inside, or containing an input: outputs
/// would be walked as inputs, or inputs overwritten.
fn check_paths(inputs: &[PathBuf], out: &Path) -> Result<(), Error> {
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

fn resolve(flag: &str, p: &Path) -> Result<PathBuf, Error> {
    canonical_lenient(p).map_err(|source| Error::Io {
        context: format!("cannot resolve {flag} {}", p.display()),
        source,
    })
}

/// Refuses a report, crosswalk or quarantine directory inside the output (the tree
/// that gets shared: they hold input paths and original values), inside an input
/// (they would overwrite an original, or be read as one), or equal to the key file
/// or to each other. Checked before anything is written.
fn check_side_files(
    opts: &RunOptions,
    local_inputs: &[PathBuf],
    dest: &Destination,
) -> Result<(), Error> {
    let out_c = match dest {
        Destination::Dir(out) => Some(resolve("--out", out)?),
        Destination::S3(_) | Destination::Network(_) => None,
    };
    let inputs: Vec<(PathBuf, &PathBuf)> = local_inputs
        .iter()
        .map(|i| resolve("input", i).map(|c| (c, i)))
        .collect::<Result<_, _>>()?;
    let key_c = match &opts.key_file {
        Some(k) => Some(resolve("--key-file", k)?),
        None => None,
    };
    let mut seen: Vec<(PathBuf, &str)> = Vec::new();
    for (flag, path) in [
        ("--report", opts.report.as_ref()),
        ("--crosswalk", opts.crosswalk.as_ref()),
        ("--quarantine", opts.quarantine.as_ref()),
    ] {
        let Some(path) = path else { continue };
        if path == Path::new("-") && flag == "--report" {
            continue; // stdout
        }
        if path == Path::new("/dev/null") || path == Path::new("/dev/full") {
            continue;
        }
        let c = resolve(flag, path)?;
        let refuse = |why: String| {
            Err(Error::Usage(format!(
                "{flag} {}: {why}; choose a path outside the inputs and the output",
                path.display()
            )))
        };
        if out_c.as_ref().is_some_and(|o| c.starts_with(o)) {
            return refuse(format!(
                "inside the output directory {}, which is the tree that gets shared, \
                 and this file holds input paths or original values",
                opts.out.display()
            ));
        }
        if let Some((_, input)) = inputs
            .iter()
            .find(|(ic, _)| c.starts_with(ic) || ic.starts_with(&c))
        {
            return refuse(format!(
                "overlaps input {}: it would overwrite an original or be read as one",
                input.display()
            ));
        }
        if key_c.as_ref() == Some(&c) {
            return refuse("is the key file".into());
        }
        if let Some((_, other)) = seen.iter().find(|(o, _)| o == &c) {
            return refuse(format!("is also given as {other}"));
        }
        seen.push((c, flag));
    }
    Ok(())
}
