//! The `profile` subcommands: print what a profile does, or why it is invalid.

use crate::error::{Error, ExitStatus};
use crate::profile::table::RowTarget;
use crate::profile::tagspec::Target;
use crate::profile::{self, CompiledProfile, table};
use std::io::Write;

pub fn list(out: &mut dyn Write) -> std::io::Result<ExitStatus> {
    for name in profile::builtin::names() {
        let p = profile::load(name).ok();
        let desc = p.as_ref().map(|p| p.description.as_str()).unwrap_or("");
        writeln!(out, "{name}\t{desc}")?;
    }
    Ok(ExitStatus::Success)
}

fn header(out: &mut dyn Write, p: &CompiledProfile) -> std::io::Result<()> {
    writeln!(out, "profile: {}", p.name)?;
    if !p.description.is_empty() {
        writeln!(out, "description: {}", p.description)?;
    }
    writeln!(out, "sources: {}", p.sources.join(" <- "))?;
    if !p.options.is_empty() {
        writeln!(out, "options: {}", p.options.join(", "))?;
    }
    writeln!(out, "digest: {}", p.digest)?;
    let builtin = p
        .pixels
        .rules
        .iter()
        .filter(|r| r.origin.source == "builtin:pixels")
        .count();
    writeln!(
        out,
        "pixels: {} rule(s) ({builtin} built-in); unmatched files at risk of burned-in text: {}",
        p.pixels.rules.len(),
        p.pixels.unmatched.keyword()
    )?;
    writeln!(
        out,
        "defaults: private {}, public {}",
        p.private_default.action().describe(),
        p.public_default.action().describe()
    )?;
    let cov = p.coverage();
    writeln!(
        out,
        "Table E.1-1 (2026d): {} of {} rows named by a rule, {} covered by the defaults, {} kept unchanged against the table",
        cov.named,
        cov.rows,
        cov.by_default,
        cov.weakened.len()
    )?;
    for t in cov.weakened.iter().take(20) {
        writeln!(out, "  keeps {t}")?;
    }
    let codes: Vec<_> = p.method_codes().iter().map(|(c, _)| *c).collect();
    writeln!(
        out,
        "markers: (0012,0062) {}; (0012,0064) [{}]; (0028,0303) {}",
        if p.removes_identity() { "YES" } else { "NO" },
        codes.join(", "),
        p.longitudinal_marker()
    )?;
    Ok(())
}

/// One line per rule: tag, name, effective action, the table's code, origin.
pub fn show(out: &mut dyn Write, name: &str, options: &[String]) -> Result<ExitStatus, Error> {
    let p = profile::compile::load_with_options(name, options)?;
    let io = |e| Error::Io {
        context: "stdout".into(),
        source: e,
    };
    header(out, &p).map_err(io)?;
    writeln!(
        out,
        "\n{:<28} {:<8} {:<10} {:<44} origin",
        "tag", "table", "action", "name"
    )
    .map_err(io)?;
    let table_code = |target: &Target| {
        table::rows()
            .iter()
            .find(|r| r.target == RowTarget::Target(target.clone()))
            .map(|r| r.basic.as_str())
            .unwrap_or("-")
    };
    for r in &p.rules {
        writeln!(
            out,
            "{:<28} {:<8} {:<10} {:<44} {}:{}",
            r.target.describe(),
            table_code(&r.target),
            r.action.describe(),
            r.name.as_deref().unwrap_or(""),
            r.origin.source,
            r.origin.line
        )
        .map_err(io)?;
    }
    Ok(ExitStatus::Success)
}

pub fn check(out: &mut dyn Write, file: &str) -> Result<ExitStatus, Error> {
    let p = profile::load(file)?;
    let io = |e| Error::Io {
        context: "stdout".into(),
        source: e,
    };
    writeln!(out, "{file}: valid").map_err(io)?;
    header(out, &p).map_err(io)?;
    Ok(ExitStatus::Success)
}
