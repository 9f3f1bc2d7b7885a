//! Command-line interface: clap types and help text only.

use crate::io::layout::Layout;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "dicom-deid",
    version,
    about = "De-identify DICOM archives with PS3.15 Annex E profiles, in parallel"
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
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Files or folders to de-identify (folders are walked recursively).
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Output directory (created if needed; must not overlap an input).
    #[arg(long)]
    pub out: PathBuf,
    /// Built-in profile name or YAML file.
    #[arg(long, default_value = "basic")]
    pub profile: String,
    /// Project secret for keyed UIDs and pseudonyms (mode 0600, at least 32 bytes).
    /// Without it a random key is used and outputs link to no other run.
    #[arg(long, env = "DICOM_DEID_KEY_FILE")]
    pub key_file: Option<PathBuf>,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Output layout.
    #[arg(long, value_enum, default_value_t = Layout::Uid)]
    pub layout: Layout,
    /// Write a JSON Lines report (one object per input, then a summary). It names
    /// input paths: keep it with the originals, not with the shared output.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Do everything except writing DICOM outputs.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Subcommand)]
pub enum ProfileCommand {
    /// List the built-in profiles.
    List,
    /// Print the effective action of every rule of a profile.
    Show {
        /// Built-in name or YAML file.
        name: String,
    },
    /// Validate a profile and report its coverage of PS3.15 Table E.1-1.
    Check {
        /// YAML file (or built-in name).
        file: String,
    },
}
