//! dicom-deid: de-identifies DICOM archives with PS3.15 Annex E profiles.
//! Data flows one way: source -> read -> de-identify -> (redact pixels) -> encode -> sink -> report;
//! [`pipeline`] is that path, written once.

pub mod check;
pub mod cli;
pub mod commands;
pub mod crosswalk;
pub mod deid;
pub mod dictionary;
pub mod error;
pub mod fast_hash;
pub mod gateway;
pub mod io;
#[cfg(test)]
mod layering;
pub mod ledger;
pub mod merge;
pub mod outcome;
pub mod pipeline;
pub mod pixels;
pub mod profile;
pub mod progress;
pub mod quarantine;
pub mod report;
pub mod report_html;
pub mod run;
pub mod s3;
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
            let target = match (&a.out, a.dry_run) {
                (Some(dir), false) => Some(run::explain::Target {
                    out: dir,
                    layout: a.layout,
                }),
                _ => None,
            };
            run::explain(
                &a.profile,
                &a.options,
                a.key_file.as_deref(),
                &file,
                target,
                &mut out,
            )
        }
        Command::Run(a) => {
            // `--report -` writes stdout from the collector thread: this thread must
            // not hold its lock.
            drop(out);
            let shard = a
                .shard
                .as_deref()
                .map(|s| run::parse_shard(s, a.shard_count, |k| std::env::var(k).ok()))
                .transpose()?;
            let verbosity = if a.quiet {
                report::Verbosity::Quiet
            } else if a.verbose {
                report::Verbosity::Verbose
            } else {
                report::Verbosity::Normal
            };
            let report_path = a.report.clone();
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
                verbosity,
                s3_endpoint: a.s3_endpoint,
                state_dir: a.state_dir,
                require_private: a.require_private,
                tls_ca: a.tls_ca,
                tls_client: a.tls_client_cert.zip(a.tls_client_key),
            })?;
            let resume = summary
                .interrupted
                .then(|| run::interrupt::resume_command(std::env::args_os()));
            say!(
                "{}",
                run::summary::render(
                    &summary,
                    &run::summary::Context {
                        report: report_path.as_deref(),
                        resume,
                        quiet: verbosity == report::Verbosity::Quiet,
                    }
                )
            );
            Ok(status)
        }
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "dicom-deid", &mut out);
            Ok(ExitStatus::Success)
        }
        Command::Man => {
            use clap::CommandFactory;
            clap_mangen::Man::new(Cli::command())
                .render(&mut out)
                .map_err(|source| Error::Io {
                    context: "stdout".into(),
                    source,
                })?;
            Ok(ExitStatus::Success)
        }
        Command::Serve(a) => {
            let file = match &a.config {
                Some(path) => gateway::config::load(path)?,
                None => gateway::config::Settings::default(),
            };
            let list = |v: Vec<String>| (!v.is_empty()).then_some(v);
            let flags = gateway::config::Settings {
                listen: a.listen,
                ae_title: a.ae_title,
                allow: list(a.allow),
                spool: a.spool,
                forward: list(a.forward).map(|v| {
                    v.into_iter()
                        .map(|to| gateway::config::ForwardSpec {
                            to,
                            stable_age: None,
                        })
                        .collect()
                }),
                profile: a.profile,
                key_file: a.key_file,
                option: list(a.options),
                quarantine: a.quarantine,
                quarantine_copy: a.quarantine_copy.then_some(true),
                refuse_quarantined: a.refuse_quarantined.then_some(true),
                max_associations: a.max_associations,
                max_per_ae: a.max_per_ae,
                artim_timeout: a.artim_timeout,
                idle_timeout: a.idle_timeout,
                max_attempts: a.max_attempts,
                retry_base_ms: a.retry_base_ms,
                retry_max_ms: a.retry_max_ms,
                tls_cert: a.tls_cert,
                tls_key: a.tls_key,
                tls_ca: a.tls_ca,
                tls_client_ca: a.tls_client_ca,
                tls_client_cert: a.tls_client_cert,
                tls_client_key: a.tls_client_key,
                stable_age: a.stable_age,
            };
            let opts = file.overridden_by(flags).into_options()?;
            if a.check {
                gateway::check(opts)
            } else {
                gateway::serve(opts)
            }
        }
        Command::Report(ReportCommand::Merge { reports }) => merge::merge(&reports, &mut out),
        Command::Report(ReportCommand::Html { report, check }) => {
            report_html::write(&report, check.as_deref(), &mut out)
        }
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
                ocr: a.ocr,
            },
            &mut out,
        ),
    }
}
