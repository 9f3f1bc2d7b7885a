//! The `run` command: a [`plan::RunPlan`] compiled once (profile, key, paths), then
//! [`execute`] walks the inputs and sends each through the pipeline to the sink in
//! parallel, and [`explain`] shows what the pipeline does to one file.

pub mod execute;
pub mod explain;
pub mod interrupt;
pub mod lock;
pub mod ocr;
pub mod plan;
pub mod summary;

pub use explain::explain;
pub use plan::RunPlan;

use crate::error::{Error, ExitStatus};
use crate::io::layout::Layout;
use crate::report::Summary;
use std::path::PathBuf;

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
    /// Follow symbolic links inside the inputs.
    pub follow: bool,
    pub verbosity: crate::report::Verbosity,
    /// S3 endpoint URL (`--s3-endpoint`), else the AWS environment's.
    pub s3_endpoint: Option<String>,
    /// Where the ledger and lock of an `s3://` output live (local disk).
    pub state_dir: Option<PathBuf>,
    /// Refuse to write to an output that anyone can read without credentials.
    pub require_private: bool,
    /// Trust for a `dimse+tls://` output.
    pub tls_ca: Option<PathBuf>,
    /// (certificate, key) presented to a `dimse+tls://` output.
    pub tls_client: Option<(PathBuf, PathBuf)>,
}

/// Compiles the plan, then runs it. From here on SIGINT and SIGTERM stop the run
/// cleanly (see [`interrupt`]).
pub fn run(opts: RunOptions) -> Result<(ExitStatus, Summary), Error> {
    let plan = RunPlan::build(&opts)?;
    interrupt::install();
    let (mut status, summary) = execute::execute(&plan, &opts)?;
    if summary.files_seen == 0 && !summary.interrupted {
        // A mistyped folder or an empty mount must not look like a finished job.
        let inputs: Vec<String> = opts
            .inputs
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        match opts.shard {
            Some((i, n)) => crate::say!(
                "dicom-deid: no input files in shard {i} of {n} of {}",
                inputs.join(", ")
            ),
            None => {
                crate::say!(
                    "dicom-deid: error: no input files found in {}",
                    inputs.join(", ")
                );
                status = status.max(ExitStatus::Partial);
            }
        }
    }
    Ok((status, summary))
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

/// The OCR engine a profile with `pixels: {unmatched: ocr}` needs, found before any
/// file: a run that cannot honour the profile stops at once instead of
/// quarantining every file.
pub fn ocr_finder(
    profile: &crate::profile::CompiledProfile,
) -> Result<Option<ocr::Tesseract>, crate::error::Error> {
    if profile.pixels.unmatched != crate::profile::pixels::Unmatched::Ocr {
        return Ok(None);
    }
    ocr::Tesseract::new().map(Some).ok_or_else(|| {
        crate::error::Error::Usage(
            "the profile says pixels.unmatched: ocr, which needs the tesseract program \
             (Debian: tesseract-ocr tesseract-ocr-eng)"
                .into(),
        )
    })
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
