//! dicom-deid: de-identifies DICOM archives with PS3.15 Annex E profiles.
//! Data flows one way: source -> read -> de-identify -> encode -> sink -> report;
//! [`pipeline`] is that path, written once.

pub mod check;
pub mod cli;
pub mod commands;
pub mod crosswalk;
pub mod deid;
pub mod error;
pub mod gateway;
pub mod io;
#[cfg(test)]
mod layering;
pub mod ledger;
pub mod merge;
pub mod outcome;
pub mod pipeline;
pub mod profile;
pub mod quarantine;
pub mod report;
pub mod run;
pub mod side_files;
pub mod store;

/// A line on stderr. A closed stderr (`dicom-deid run ... 2>&1 | head`) ends the
/// printing, never the work: the report, ledger and crosswalk go on being written.
#[macro_export]
macro_rules! say {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($t)*);
    }};
}

/// Like [`say!`], without the newline (progress lines).
#[macro_export]
macro_rules! say_raw {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stderr(), $($t)*);
    }};
}

use cli::{Cli, Command, ProfileCommand, ReportCommand};
pub use error::{Error, ExitStatus};

/// Runs a parsed command line; the caller prints a returned error once.
pub fn run_cli(cli: Cli) -> Result<ExitStatus, Error> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match cli.command {
        Command::Run(a) if a.explain.is_some() => {
            let file = a.explain.clone().unwrap_or_default();
            run::explain(
                &a.profile,
                &a.options,
                a.key_file.as_deref(),
                &file,
                &mut out,
            )
        }
        Command::Run(a) => {
            let shard = a
                .shard
                .as_deref()
                .map(|s| run::parse_shard(s, a.shard_count, |k| std::env::var(k).ok()))
                .transpose()?;
            let (status, summary) = run::run(run::RunOptions {
                inputs: a.inputs,
                out: a.out.unwrap_or_default(),
                profile: a.profile,
                key_file: a.key_file,
                jobs: a.jobs,
                layout: a.layout,
                report: a.report,
                dry_run: a.dry_run,
                options: a.options,
                crosswalk: a.crosswalk,
                overwrite_crosswalk: a.overwrite_crosswalk,
                quarantine: a.quarantine,
                quarantine_copy: a.quarantine_copy,
                resume: !a.no_resume,
                follow: a.follow,
                shard,
            })?;
            say!(
                "dicom-deid: {} files: {} written{}, {} skipped ({} not DICOM), {} failed; {:.1} s, {:.0} files/s; key {}{}",
                summary.files_seen,
                summary.written,
                if summary.dry_run {
                    " (dry run: nothing written)"
                } else {
                    ""
                },
                summary.skipped,
                summary.skipped_not_dicom,
                summary.failed,
                summary.seconds,
                summary.files_per_second,
                summary.key_fingerprint,
                if summary.key_ephemeral {
                    " (random, this run only)"
                } else {
                    ""
                },
            );
            if summary.not_attempted > 0 {
                say!(
                    "dicom-deid: {} files not attempted: the output device is full; \
                     free space and run again (finished files are skipped)",
                    summary.not_attempted
                );
            }
            Ok(status)
        }
        Command::Serve(a) => gateway::serve(gateway::ServeOptions {
            listen: a.listen,
            ae_title: a.ae_title,
            allow: a.allow,
            spool: a.spool,
            forward: a.forward,
            profile: a.profile,
            key_file: a.key_file,
            options: a.options,
            quarantine: a.quarantine,
            quarantine_copy: a.quarantine_copy,
            refuse_quarantined: a.refuse_quarantined,
            max_associations: a.max_associations,
            max_per_ae: a.max_per_ae,
            artim: std::time::Duration::from_secs(a.artim_timeout),
            idle: std::time::Duration::from_secs(a.idle_timeout),
            retry: gateway::Retry {
                max_attempts: a.max_attempts.max(1),
                base: std::time::Duration::from_millis(a.retry_base_ms),
                max: std::time::Duration::from_millis(a.retry_max_ms),
            },
            tls: a.tls_cert.zip(a.tls_key),
            tls_ca: a.tls_ca,
        }),
        Command::Report(ReportCommand::Merge { reports }) => merge::merge(&reports, &mut out),
        Command::Profile(ProfileCommand::List) => {
            commands::list(&mut out).map_err(|source| Error::Io {
                context: "stdout".into(),
                source,
            })
        }
        Command::Profile(ProfileCommand::Show { name, options }) => {
            commands::show(&mut out, &name, &options)
        }
        Command::Profile(ProfileCommand::Check { file }) => commands::check(&mut out, &file),
        Command::Check(a) => check::run(
            check::CheckOptions {
                inputs: a.inputs,
                profile: a.profile,
                originals: a.originals,
                report: a.report,
                options: a.options,
                crosswalk: a.crosswalk,
                allow: a.allow,
                strict: a.strict,
            },
            &mut out,
        ),
    }
}
