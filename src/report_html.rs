//! `report html`: a run's JSON Lines report as one self-contained HTML page for a
//! data-protection officer or an ethics board. No script, no external asset, no
//! attribute value and no original path: inputs appear only as hashes, reasons are
//! the tool's own wording (which never quotes a value), modalities and SOP classes
//! are codes. Reads the report as plain JSON, so it knows nothing of the engine.

use crate::error::{Error, ExitStatus};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::BufRead;
use std::path::Path;

/// Reasons shown per kind at most: a kind with thousands of distinct reasons
/// (one per file) says what it means in the first few.
const MAX_REASONS: usize = 8;
/// Quarantined inputs listed at most (the manifest has them all).
const MAX_QUARANTINE: usize = 500;

/// What the page is built from.
#[derive(Debug, Default)]
pub struct RunReport {
    pub summary: serde_json::Map<String, Value>,
    /// Kind -> reason -> count, for failed and for skipped inputs.
    pub failed: BTreeMap<String, BTreeMap<String, u64>>,
    pub skipped: BTreeMap<String, BTreeMap<String, u64>>,
    pub modalities: BTreeMap<String, u64>,
    pub sop_classes: BTreeMap<String, u64>,
    /// (hashed input path, rule or kind, reason) of quarantined inputs.
    pub quarantined: Vec<(String, String, String)>,
}

fn read_lines(path: &Path) -> Result<Vec<Value>, Error> {
    let io = |source| Error::Io {
        context: format!("cannot read {}", path.display()),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut out = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(io)?;
        if line.trim().is_empty() {
            continue;
        }
        out.push(serde_json::from_str(&line).map_err(|e| {
            Error::Usage(format!(
                "{}:{}: not a dicom-deid report line: {e}",
                path.display(),
                i + 1
            ))
        })?);
    }
    Ok(out)
}

/// The hash an input path is shown as: the first 16 hex digits of its SHA-256. The
/// same path always gives the same hash, so an entry can be matched to the
/// quarantine manifest by whoever holds the paths; the page alone reveals none.
pub fn hashed_path(path: &str) -> String {
    Sha256::digest(path.as_bytes())[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl RunReport {
    pub fn read(path: &Path) -> Result<RunReport, Error> {
        let mut r = RunReport::default();
        let mut summary = None;
        for v in read_lines(path)? {
            if let Some(s) = v.get("summary").and_then(Value::as_object) {
                summary = Some(s.clone());
                continue;
            }
            let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
            let status = text("status").unwrap_or_default();
            let kind = text("kind").unwrap_or_else(|| "other".into());
            let reason = text("reason").unwrap_or_default();
            match status.as_str() {
                "ok" => {
                    if let Some(m) = text("modality") {
                        *r.modalities.entry(m).or_default() += 1;
                    }
                    if let Some(c) = text("sop_class") {
                        *r.sop_classes.entry(c).or_default() += 1;
                    }
                }
                "failed" => {
                    *r.failed
                        .entry(kind.clone())
                        .or_default()
                        .entry(reason.clone())
                        .or_default() += 1;
                    if kind == "quarantined" {
                        let input = v
                            .get("input_hex")
                            .and_then(Value::as_str)
                            .or_else(|| v.get("input").and_then(Value::as_str))
                            .unwrap_or("");
                        r.quarantined.push((
                            hashed_path(input),
                            text("quarantine_rule").unwrap_or(kind),
                            reason,
                        ));
                    }
                }
                "skipped" => {
                    *r.skipped
                        .entry(kind)
                        .or_default()
                        .entry(reason)
                        .or_default() += 1;
                }
                _ => {}
            }
        }
        r.summary = summary.ok_or_else(|| {
            Error::Usage(format!(
                "{}: no summary line: the run did not finish writing it, or this is not a \
                 dicom-deid run report",
                path.display()
            ))
        })?;
        Ok(r)
    }
}

/// `report html REPORT [--check CHECK]`: the page, to `out`.
pub fn write(
    report: &Path,
    check: Option<&Path>,
    out: &mut dyn std::io::Write,
) -> Result<ExitStatus, Error> {
    let r = RunReport::read(report)?;
    let check = match check {
        Some(p) => Some(
            read_lines(p)?
                .into_iter()
                .rev()
                .find_map(|v| v.get("summary").and_then(Value::as_object).cloned())
                .ok_or_else(|| {
                    Error::Usage(format!("{}: no summary line of `check`", p.display()))
                })?,
        ),
        None => None,
    };
    out.write_all(render(&r, check.as_ref()).as_bytes())
        .map_err(|source| Error::Io {
            context: "stdout".into(),
            source,
        })?;
    Ok(ExitStatus::Success)
}

/// Text made safe for HTML element content and attribute values.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            _ => o.push(c),
        }
    }
    o
}

fn num(m: &serde_json::Map<String, Value>, k: &str) -> u64 {
    m.get(k).and_then(Value::as_u64).unwrap_or(0)
}

fn text<'a>(m: &'a serde_json::Map<String, Value>, k: &str) -> &'a str {
    m.get(k).and_then(Value::as_str).unwrap_or("")
}

const STYLE: &str = "body{font:15px/1.45 system-ui,sans-serif;max-width:60em;margin:2em auto;\
padding:0 1em;color:#222}h1{font-size:1.5em}h2{font-size:1.15em;margin-top:2em;\
border-bottom:1px solid #ccc}table{border-collapse:collapse;margin:.5em 0}\
td,th{padding:.2em .8em;border-bottom:1px solid #eee;text-align:left;vertical-align:top}\
td.n{text-align:right;font-variant-numeric:tabular-nums}code{font-size:.9em}\
.ok{color:#176117}.bad{color:#a11}.muted{color:#666}";

/// A table of (label, count) rows; each count cell carries `id` for machines.
fn count_table(o: &mut String, id_prefix: &str, rows: &BTreeMap<String, u64>, head: &str) {
    let _ = write!(o, "<table><tr><th>{}</th><th>files</th></tr>", esc(head));
    for (k, n) in rows {
        let _ = write!(
            o,
            "<tr><td><code>{}</code></td><td class=\"n\" id=\"{}-{}\">{n}</td></tr>",
            esc(k),
            id_prefix,
            esc(k)
        );
    }
    o.push_str("</table>");
}

/// The actions as horizontal bars in inline SVG: one bar per kind of action, its
/// length proportional to the number of elements.
fn action_chart(o: &mut String, counts: &serde_json::Map<String, Value>) {
    let rows: Vec<(&str, &str, u64)> = [
        ("removed", "removed"),
        ("emptied", "emptied"),
        ("replaced", "replaced (dummy, pseudonym, shifted date)"),
        ("uid_remapped", "UIDs remapped"),
        ("kept", "kept"),
    ]
    .iter()
    .map(|(k, label)| (*k, *label, num(counts, k)))
    .collect();
    let max = rows.iter().map(|r| r.2).max().unwrap_or(0).max(1);
    let (bar_x, bar_w, row_h) = (290.0, 360.0, 26.0);
    let height = row_h * rows.len() as f64 + 6.0;
    let _ = write!(
        o,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"760\" height=\"{height}\" \
         role=\"img\" aria-label=\"elements per action\">"
    );
    for (i, (key, label, n)) in rows.iter().enumerate() {
        let y = 4.0 + i as f64 * row_h;
        let w = (*n as f64 / max as f64 * bar_w).max(if *n > 0 { 1.0 } else { 0.0 });
        let _ = write!(
            o,
            "<text x=\"0\" y=\"{ty}\" font-size=\"14\">{label}</text>\
             <rect id=\"bar-{key}\" x=\"{bar_x}\" y=\"{y}\" width=\"{w:.1}\" height=\"18\" fill=\"#4a7ab8\" data-count=\"{n}\"/>\
             <text x=\"{tx:.1}\" y=\"{ty}\" font-size=\"14\">{n}</text>",
            ty = y + 14.0,
            tx = bar_x + w + 6.0,
            label = esc(label)
        );
    }
    o.push_str("</svg>");
}

fn reasons(o: &mut String, id: &str, by_kind: &BTreeMap<String, BTreeMap<String, u64>>) {
    if by_kind.is_empty() {
        o.push_str("<p class=\"muted\">none</p>");
        return;
    }
    let _ = write!(
        o,
        "<table id=\"{id}\"><tr><th>kind</th><th>files</th><th>reasons</th></tr>"
    );
    for (kind, rs) in by_kind {
        let total: u64 = rs.values().sum();
        let mut sorted: Vec<_> = rs.iter().collect();
        sorted.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let _ = write!(
            o,
            "<tr><td><code>{}</code></td><td class=\"n\" id=\"{id}-{}\">{total}</td><td>",
            esc(kind),
            esc(kind)
        );
        for (reason, n) in sorted.iter().take(MAX_REASONS) {
            let _ = write!(o, "{n} × {}<br>", esc(reason));
        }
        if sorted.len() > MAX_REASONS {
            let _ = write!(
                o,
                "<span class=\"muted\">and {} other reasons</span>",
                sorted.len() - MAX_REASONS
            );
        }
        o.push_str("</td></tr>");
    }
    o.push_str("</table>");
}

/// The whole page.
pub fn render(r: &RunReport, check: Option<&serde_json::Map<String, Value>>) -> String {
    let s = &r.summary;
    let mut o = String::new();
    let profile = text(s, "profile");
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>De-identification report: {}</title><style>{STYLE}</style></head><body>",
        esc(profile)
    );
    let _ = write!(
        o,
        "<h1>De-identification report</h1><p>Written by <code>dicom-deid report html</code> {} \
         from a run report. It names no patient, no attribute value and no original path.</p>",
        esc(env!("CARGO_PKG_VERSION"))
    );
    if s.get("interrupted").and_then(Value::as_bool) == Some(true) {
        o.push_str(
            "<p class=\"bad\" id=\"interrupted\">The run was interrupted: not every input \
             was processed.</p>",
        );
    }
    if s.get("dry_run").and_then(Value::as_bool) == Some(true) {
        o.push_str("<p class=\"bad\" id=\"dry-run\">Dry run: no output was written.</p>");
    }

    o.push_str("<h2>How the files were de-identified</h2><table>");
    let options: Vec<&str> = s
        .get("options")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let tool = text(s, "tool_version");
    let ephemeral = s.get("key_ephemeral").and_then(Value::as_bool) == Some(true);
    for (id, label, value) in [
        ("profile", "Profile", profile.to_string()),
        (
            "profile-digest",
            "Profile digest (SHA-256)",
            text(s, "profile_digest").to_string(),
        ),
        (
            "options",
            "PS3.15 options",
            if options.is_empty() {
                "none".into()
            } else {
                options.join(", ")
            },
        ),
        (
            "key-fingerprint",
            "Key fingerprint",
            format!(
                "{}{}",
                text(s, "key_fingerprint"),
                if ephemeral {
                    " (random key for this run only: outputs link to no other run)"
                } else {
                    ""
                }
            ),
        ),
        (
            "tool-version",
            "dicom-deid version",
            if tool.is_empty() {
                "not recorded (report of an older version)".into()
            } else {
                tool.to_string()
            },
        ),
        (
            "seconds",
            "Duration (s)",
            format!(
                "{:.1}",
                s.get("seconds").and_then(Value::as_f64).unwrap_or(0.0)
            ),
        ),
    ] {
        let _ = write!(
            o,
            "<tr><th>{}</th><td><code id=\"{id}\">{}</code></td></tr>",
            esc(label),
            esc(&value)
        );
    }
    o.push_str(
        "</table><p class=\"muted\">The key itself is never in a report; its fingerprint \
                identifies which key was used.</p>",
    );

    o.push_str("<h2>Files</h2><table>");
    for (id, label) in [
        ("files_seen", "inputs"),
        ("written", "written"),
        ("skipped", "skipped"),
        ("skipped_not_dicom", "of which not DICOM"),
        ("skipped_unchanged", "of which finished by an earlier run"),
        ("failed", "failed"),
    ] {
        let _ = write!(
            o,
            "<tr><th>{label}</th><td class=\"n\" id=\"{id}\">{}</td></tr>",
            num(s, id)
        );
    }
    o.push_str("</table><h3>Failed, by kind</h3>");
    reasons(&mut o, "failed-kind", &r.failed);
    o.push_str("<h3>Skipped, by kind</h3>");
    reasons(&mut o, "skipped-kind", &r.skipped);

    if !r.modalities.is_empty() || !r.sop_classes.is_empty() {
        o.push_str("<h2>Written files by modality and SOP class</h2>");
        count_table(&mut o, "modality", &r.modalities, "modality");
        count_table(&mut o, "sop-class", &r.sop_classes, "SOP Class UID");
    }

    o.push_str("<h2>Actions applied</h2><p>Data elements, over all written files.</p>");
    let empty = serde_json::Map::new();
    action_chart(
        &mut o,
        s.get("counts").and_then(Value::as_object).unwrap_or(&empty),
    );

    let _ = write!(
        o,
        "<h2>Quarantine</h2><p>Files refused because de-identification cannot make them safe \
         (burned-in text, documents, SOP classes not allowed): <span id=\"quarantined\">{}</span>. \
         Each is shown by the first 16 hex digits of the SHA-256 of its input path.</p>",
        r.quarantined.len()
    );
    if !r.quarantined.is_empty() {
        o.push_str("<table><tr><th>input (hashed)</th><th>rule</th><th>reason</th></tr>");
        for (h, rule, reason) in r.quarantined.iter().take(MAX_QUARANTINE) {
            let _ = write!(
                o,
                "<tr><td><code class=\"qhash\">{}</code></td><td><code>{}</code></td><td>{}</td></tr>",
                esc(h),
                esc(rule),
                esc(reason)
            );
        }
        o.push_str("</table>");
        if r.quarantined.len() > MAX_QUARANTINE {
            let _ = write!(
                o,
                "<p class=\"muted\">and {} more (see the quarantine manifest)</p>",
                r.quarantined.len() - MAX_QUARANTINE
            );
        }
    }

    o.push_str("<h2>Independent check</h2>");
    match check {
        None => o.push_str(
            "<p class=\"muted\" id=\"check\">No result of <code>dicom-deid check</code> was \
             given.</p>",
        ),
        Some(c) => {
            let failing = num(c, "failing");
            let _ = write!(
                o,
                "<p id=\"check\" class=\"{}\">{}</p><table>",
                if failing == 0 { "ok" } else { "bad" },
                if failing == 0 {
                    "Passed: the check found nothing identifying that counts against the tree."
                } else {
                    "Failed: the check found identifying content."
                }
            );
            for (id, label) in [
                ("files", "files checked"),
                ("files_with_findings", "files with findings"),
                ("findings", "findings"),
                ("warnings", "warnings"),
                ("allowed", "allowed findings"),
                ("failing", "failing findings"),
            ] {
                let _ = write!(
                    o,
                    "<tr><th>{label}</th><td class=\"n\" id=\"check-{id}\">{}</td></tr>",
                    num(c, id)
                );
            }
            o.push_str("</table>");
            if let Some(counts) = c.get("counts").and_then(Value::as_object)
                && !counts.is_empty()
            {
                let rows = counts
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
                    .collect();
                count_table(&mut o, "check-kind", &rows, "kind of finding");
            }
        }
    }
    o.push_str("</body></html>\n");
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }

    #[test]
    fn paths_hash_the_same_way_every_time() {
        assert_eq!(hashed_path("/data/a.dcm"), hashed_path("/data/a.dcm"));
        assert_ne!(hashed_path("/data/a.dcm"), hashed_path("/data/b.dcm"));
        assert_eq!(hashed_path("x").len(), 16);
    }
}
