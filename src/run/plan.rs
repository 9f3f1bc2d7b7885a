//! The immutable plan of a run, built once before any file: the compiled profile,
//! the key, and the checked paths. Nothing here is touched per file.

use super::RunOptions;
use crate::deid::Key;
use crate::error::Error;
use crate::io::walk::canonical_lenient;
use crate::profile::CompiledProfile;
use std::path::{Path, PathBuf};

pub struct RunPlan {
    pub profile: CompiledProfile,
    pub key: Key,
    /// Working directory at the start, for the ledger's absolute input paths.
    pub cwd: PathBuf,
}

impl RunPlan {
    pub fn build(opts: &RunOptions) -> Result<RunPlan, Error> {
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
        check_paths(&opts.inputs, &opts.out)?;
        check_side_files(opts)?;
        // IOD tables are parsed before the walk, not by the first file of each class.
        crate::profile::iod::preload();
        let cwd = std::env::current_dir().map_err(|source| Error::Io {
            context: "cannot read the working directory".into(),
            source,
        })?;
        Ok(RunPlan { profile, key, cwd })
    }
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
fn check_side_files(opts: &RunOptions) -> Result<(), Error> {
    let out_c = resolve("--out", &opts.out)?;
    let inputs: Vec<(PathBuf, &PathBuf)> = opts
        .inputs
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
        if c.starts_with(&out_c) {
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
