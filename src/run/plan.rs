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
                eprintln!(
                    "dicom-deid: no --key-file: using a random key for this run only; \
                     its UIDs and pseudonyms cannot be linked to any other run"
                );
                Key::random()?
            }
        };
        check_paths(&opts.inputs, &opts.out)?;
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
