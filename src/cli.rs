//! Command-line interface: clap types and help text only.

use crate::io::layout::Layout;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// Shown under `--help`: scripts and cron jobs branch on these.
pub const EXIT_CODES: &str = "\
Exit codes:
  0    every DICOM input was written (files that are not DICOM may be skipped)
  1    some inputs failed or were skipped, no input file was found, or a report,
       crosswalk or manifest could not be written in full (outputs are complete)
  2    usage, profile or key error: nothing was written
  130  interrupted (Ctrl-C or SIGTERM): finished files are kept, run the same
       command again to resume";

#[derive(Debug, Parser)]
#[command(
    name = "dicom-deid",
    version,
    about = "De-identify DICOM archives with PS3.15 Annex E profiles, in parallel",
    after_help = EXIT_CODES
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// De-identify files and folders into an output directory.
    Run(RunArgs),
    /// List, show or check profiles.
    #[command(subcommand)]
    Profile(ProfileCommand),
    /// Work with run reports.
    #[command(subcommand)]
    Report(ReportCommand),
    /// Check that de-identified files hold nothing identifying (exit 0 only when
    /// nothing is found).
    Check(CheckArgs),
    /// Print a shell completion script, e.g.
    /// `dicom-deid completions bash > /etc/bash_completion.d/dicom-deid`.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), e.g. `dicom-deid man | man -l -`.
    Man,
    /// Run a DICOM gateway: receive by C-STORE, de-identify, forward through
    /// persistent queues (stops on SIGTERM).
    Serve(ServeArgs),
}

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// A YAML file holding any of the settings below, each under its flag's name
    /// (`listen:`, `max-attempts:`, `forward:` as a list ...). Flags given here win
    /// over the file; relative paths in it are taken from its folder.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Check the settings (config, profile, key, destinations, TLS files) and exit 0
    /// without listening or touching the spool.
    #[arg(long)]
    pub check: bool,
    /// Address and port to listen on, e.g. 0.0.0.0:11112.
    #[arg(long, value_name = "HOST:PORT")]
    pub listen: Option<String>,
    /// This node's AE title (callers must use it as the called AE title)
    /// [default: DICOM-DEID].
    #[arg(long)]
    pub ae_title: Option<String>,
    /// Calling AE title allowed in, optionally only from one address (repeatable).
    /// Without any, every calling AE is allowed.
    #[arg(long = "allow", value_name = "AE[@IP]")]
    pub allow: Vec<String>,
    /// Spool folder: incoming objects, the queues and the dead letters.
    #[arg(long, value_name = "DIR")]
    pub spool: Option<PathBuf>,
    /// Destination (repeatable): a folder, dimse://AE@host:port (dimse+tls:// for
    /// DICOM TLS, trusting --tls-ca), or
    /// dicomweb+http(s)://host/path (STOW-RS; credentials from DICOM_DEID_STOW_TOKEN,
    /// or DICOM_DEID_STOW_USER and DICOM_DEID_STOW_PASSWORD).
    #[arg(long = "forward", value_name = "DEST")]
    pub forward: Vec<String>,
    /// Built-in profile name or YAML file [default: basic].
    #[arg(long)]
    pub profile: Option<String>,
    /// Project secret, as for `run`. Without it UIDs change at every restart.
    #[arg(long, env = "DICOM_DEID_KEY_FILE")]
    pub key_file: Option<PathBuf>,
    /// Switch on a PS3.15 E.3 option (repeatable), as for `run`.
    #[arg(long = "option", value_name = "NAME")]
    pub options: Vec<String>,
    /// Quarantine folder (default: SPOOL/quarantine): manifest.jsonl lists objects
    /// not forwarded.
    #[arg(long, value_name = "DIR")]
    pub quarantine: Option<PathBuf>,
    /// Also keep a copy of each object not forwarded in the quarantine (PHI: opt-in).
    #[arg(long)]
    pub quarantine_copy: bool,
    /// Answer status 0122 (refused) instead of success for an object the profile's
    /// quarantine stops.
    #[arg(long)]
    pub refuse_quarantined: bool,
    /// Associations open at once, all callers together [default: 16].
    #[arg(long)]
    pub max_associations: Option<usize>,
    /// Associations open at once per calling AE title [default: 4].
    #[arg(long)]
    pub max_per_ae: Option<usize>,
    /// ARTIM timeout: seconds a new connection has to request an association
    /// [default: 30].
    #[arg(long)]
    pub artim_timeout: Option<u64>,
    /// Seconds an association may stay silent, mid-object or between objects
    /// [default: 60].
    #[arg(long)]
    pub idle_timeout: Option<u64>,
    /// Failed attempts before an object goes to the dead-letter folder [default: 10].
    #[arg(long)]
    pub max_attempts: Option<u32>,
    /// First retry delay in milliseconds (doubles per failure, up to --retry-max-ms)
    /// [default: 1000].
    #[arg(long)]
    pub retry_base_ms: Option<u64>,
    /// Longest retry delay in milliseconds [default: 300000].
    #[arg(long)]
    pub retry_max_ms: Option<u64>,
    /// DICOM TLS (PS3.15 B.1) on the listener: certificate chain, PEM (the usual
    /// port is 2762). Every association must then use TLS. Needs --tls-key.
    #[arg(long, value_name = "PEM")]
    pub tls_cert: Option<PathBuf>,
    /// The certificate's private key, PEM.
    #[arg(long, value_name = "PEM")]
    pub tls_key: Option<PathBuf>,
    /// Certificates (PEM) trusted for dimse+tls://AE@host:port destinations.
    #[arg(long, value_name = "PEM")]
    pub tls_ca: Option<PathBuf>,
    /// Require every caller on the TLS listener to present a client certificate
    /// that chains to these certificates (PEM): mutual TLS, e.g. `storescu +tls
    /// client.key client.pem`.
    #[arg(long, value_name = "PEM")]
    pub tls_client_ca: Option<PathBuf>,
    /// Client certificate chain (PEM) presented to dimse+tls:// destinations that
    /// ask for one (dcmtk's storescp does by default). Needs --tls-client-key.
    #[arg(long, value_name = "PEM")]
    pub tls_client_cert: Option<PathBuf>,
    /// The client certificate's private key, PEM.
    #[arg(long, value_name = "PEM")]
    pub tls_client_key: Option<PathBuf>,
    /// Forward a series only once none of its objects arrived for SECS seconds,
    /// then all of it in arrival order (like Orthanc's StableAge). In --config it
    /// can also be set per destination: `forward: [{to: DEST, stable-age: 60}]`.
    #[arg(long, value_name = "SECS")]
    pub stable_age: Option<u64>,
}

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// De-identified files or folders to check (folders are walked recursively).
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Built-in profile name or YAML file the files were de-identified with.
    #[arg(long, default_value = "basic")]
    pub profile: String,
    /// Folder of the original inputs: each file is matched to its original and
    /// searched for the original's identifying values.
    #[arg(long, value_name = "DIR")]
    pub originals: Option<PathBuf>,
    /// Write a JSON Lines report (one object per file, then a summary). It names
    /// tag paths and kinds of findings, never a value.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// PS3.15 options the tree was de-identified with (repeatable).
    #[arg(long = "option", value_name = "NAME")]
    pub options: Vec<String>,
    /// A crosswalk written by `run --crosswalk`: every original value in it is
    /// searched for in every file (instead of, or besides, `--originals`).
    #[arg(long, value_name = "FILE")]
    pub crosswalk: Option<PathBuf>,
    /// A kind of finding that is still reported but does not make the exit code
    /// non-zero (repeatable), e.g. unresolved-reference, original-not-found or, for
    /// a site that shares an attribute on purpose, not-removed. Any kind can be
    /// allowed; the report and the summary still count it.
    #[arg(long = "allow", value_name = "KIND")]
    pub allow: Vec<String>,
    /// Warnings (references to instances outside the tree) make the exit code
    /// non-zero too.
    #[arg(long)]
    pub strict: bool,
    /// OCR the pixels of every file (all frames of short files, a sample of long
    /// cines) and report text that matches an identifying value of the file, or of
    /// its original with --originals, by frame and box. Needs `tesseract`.
    #[arg(long)]
    pub ocr: bool,
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Files or folders to de-identify (folders are walked recursively), or
    /// `s3://bucket/prefix` (every object under the prefix).
    #[arg(required_unless_present = "explain")]
    pub inputs: Vec<PathBuf>,
    /// Output directory (created if needed; must not overlap an input),
    /// `s3://bucket/prefix`, `dimse://AE@host:port` (C-STORE; `dimse+tls://` with
    /// --tls-ca for DICOM TLS) or
    /// `dicomweb+http(s)://host/path` (STOW-RS).
    #[arg(short, long, required_unless_present = "explain")]
    pub out: Option<PathBuf>,
    /// S3 endpoint URL for `s3://` inputs and outputs (default: AWS_ENDPOINT_URL, else
    /// AWS). Credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY /
    /// AWS_SESSION_TOKEN; the region from AWS_REGION.
    #[arg(long, value_name = "URL")]
    pub s3_endpoint: Option<String>,
    /// Local folder for the ledger and lock of an `s3://` output (default:
    /// $XDG_STATE_HOME/dicom-deid/<hash of the output URL>).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Refuse to write to an `s3://` output that can be read without credentials.
    #[arg(long)]
    pub require_private: bool,
    /// Certificates (PEM) trusted for a `dimse+tls://AE@host:port` output (DICOM
    /// TLS, as for `serve --forward`).
    #[arg(long, value_name = "PEM")]
    pub tls_ca: Option<PathBuf>,
    /// Client certificate chain (PEM) presented to a `dimse+tls://` output that asks
    /// for one.
    #[arg(long, value_name = "PEM", requires = "tls_client_key")]
    pub tls_client_cert: Option<PathBuf>,
    /// The client certificate's private key, PEM.
    #[arg(long, value_name = "PEM", requires = "tls_client_cert")]
    pub tls_client_key: Option<PathBuf>,
    /// Built-in profile name or YAML file.
    #[arg(long, default_value = "basic")]
    pub profile: String,
    /// Project secret for keyed UIDs and pseudonyms (mode 0600, at least 32 bytes).
    /// Without it a random key is used and outputs link to no other run.
    #[arg(long, env = "DICOM_DEID_KEY_FILE")]
    pub key_file: Option<PathBuf>,
    /// Worker threads (default: all cores).
    #[arg(short, long)]
    pub jobs: Option<usize>,
    /// Output layout.
    #[arg(long, value_enum, default_value_t = Layout::Uid)]
    pub layout: Layout,
    /// Write a JSON Lines report (one object per input, then a summary); `-` writes
    /// it to stdout. It names input paths: keep it with the originals, not with the
    /// shared output.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Print only the final summary line and fatal errors: no progress, no line
    /// per failed file (the report still lists them).
    #[arg(short, long, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Print a line for every input, written ones too.
    #[arg(short, long)]
    pub verbose: bool,
    /// Do everything except writing DICOM outputs.
    #[arg(long)]
    pub dry_run: bool,
    /// Switch on a PS3.15 E.3 option (repeatable): retain-safe-private, retain-uids,
    /// retain-device-identity, retain-institution-identity,
    /// retain-patient-characteristics, retain-long-full-dates,
    /// retain-long-modified-dates, clean-descriptors, clean-structured-content,
    /// clean-graphics.
    #[arg(long = "option", value_name = "NAME")]
    pub options: Vec<String>,
    /// Write original -> pseudonym pairs (Patient ID, Accession Number, Study
    /// Instance UID, date offset per patient) as CSV, mode 0600. The only place
    /// original values are ever written: keep it with the originals.
    #[arg(long, value_name = "FILE")]
    pub crosswalk: Option<PathBuf>,
    /// Replace an existing crosswalk file instead of refusing.
    #[arg(long)]
    pub overwrite_crosswalk: bool,
    /// List failed inputs in DIR/manifest.jsonl (kind and reason per file).
    #[arg(long, value_name = "DIR")]
    pub quarantine: Option<PathBuf>,
    /// Also copy failed originals into DIR/files/ (they are PHI: opt-in).
    #[arg(long, requires = "quarantine")]
    pub quarantine_copy: bool,
    /// Skip inputs the output's run ledger shows finished with the same profile and
    /// key (the default when a ledger exists).
    #[arg(long, conflicts_with = "no_resume")]
    pub resume: bool,
    /// Reprocess every input even if the ledger shows it finished.
    #[arg(long)]
    pub no_resume: bool,
    /// Follow symbolic links inside the inputs, like `cp -r -L` (loops are reported).
    /// Without it each link is reported as skipped (kind `symlink`), never silently.
    #[arg(long)]
    pub follow: bool,
    /// Process only shard I of N (0-based: 0/3, 1/3, 2/3), or `auto` from
    /// SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT or JOB_COMPLETION_INDEX.
    #[arg(long, value_name = "I/N|auto")]
    pub shard: Option<String>,
    /// Number of shards for `--shard auto` when the batch system does not say it
    /// (Kubernetes Indexed Jobs: the Job's completions).
    #[arg(long, value_name = "N")]
    pub shard_count: Option<u64>,
    /// Print, for this one input file, every element's tag path, its action and the
    /// rule (profile line) that chose it, values masked: what a run with these
    /// options does to it. Writes nothing (with or without --dry-run).
    #[arg(long, value_name = "FILE")]
    pub explain: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum ProfileCommand {
    /// List the built-in profiles.
    List,
    /// Print the effective action of every rule of a profile.
    Show {
        /// Built-in name or YAML file.
        name: String,
        /// Show the effect of these PS3.15 options (repeatable).
        #[arg(long = "option", value_name = "NAME")]
        options: Vec<String>,
    },
    /// Validate a profile and report its coverage of PS3.15 Table E.1-1.
    Check {
        /// YAML file (or built-in name).
        file: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// Merge the JSON Lines reports of several shards into one (to stdout): every
    /// file line, then one summary with the counts added up. Exit code as for the
    /// run: 1 when any shard had failures.
    Merge {
        /// Reports to merge.
        #[arg(required = true)]
        reports: Vec<PathBuf>,
    },
    /// Write a report as one self-contained HTML page (to stdout) for a
    /// data-protection officer or an ethics board: profile, options, key
    /// fingerprint, counts and reasons, modalities, actions, the quarantine list by
    /// hashed path. No attribute value and no original path is shown.
    Html {
        /// A JSON Lines report written by `run --report` (or `report merge`).
        report: PathBuf,
        /// The JSON Lines report of `check --report` on the de-identified tree.
        #[arg(long, value_name = "FILE")]
        check: Option<PathBuf>,
    },
}
