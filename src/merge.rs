//! `report merge`: one report from the reports of several shards (or runs).

use crate::error::{Error, ExitStatus};
use serde_json::{Map, Value};
use std::io::{BufRead, Write};
use std::path::PathBuf;

/// Fields that describe the run rather than count it: shards of one job agree on
/// them, and reports that disagree do not belong together.
const MUST_AGREE: [&str; 4] = ["profile", "profile_digest", "key_fingerprint", "options"];

fn add(into: &mut Value, from: &Value) {
    match (into, from) {
        (Value::Number(a), Value::Number(b)) => {
            if let (Some(x), Some(y)) = (a.as_u64(), b.as_u64()) {
                *a = (x + y).into();
            }
        }
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                match a.get_mut(k) {
                    Some(slot) => add(slot, v),
                    None => {
                        a.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for v in b {
                if !a.contains(v) {
                    a.push(v.clone());
                }
            }
        }
        _ => {}
    }
}

pub fn merge(files: &[PathBuf], out: &mut dyn Write) -> Result<ExitStatus, Error> {
    let io = |context: String| move |source| Error::Io { context, source };
    let mut summary: Option<Map<String, Value>> = None;
    let mut seconds: f64 = 0.0;
    for f in files {
        let file = std::fs::File::open(f).map_err(io(format!("cannot read {}", f.display())))?;
        for line in std::io::BufReader::new(file).lines() {
            let line = line.map_err(io(format!("cannot read {}", f.display())))?;
            let v: Value = serde_json::from_str(&line).map_err(|e| {
                Error::Usage(format!("{}: not a dicom-deid report: {e}", f.display()))
            })?;
            let Some(s) = v.get("summary").and_then(Value::as_object) else {
                writeln!(out, "{line}").map_err(io("stdout".into()))?;
                continue;
            };
            seconds = seconds.max(s.get("seconds").and_then(Value::as_f64).unwrap_or(0.0));
            match summary.as_mut() {
                None => summary = Some(s.clone()),
                Some(acc) => {
                    for k in MUST_AGREE {
                        if acc.get(k) != s.get(k) {
                            return Err(Error::Usage(format!(
                                "{}: its `{k}` differs from the other reports': they are not shards of one run",
                                f.display()
                            )));
                        }
                    }
                    for (k, v) in s {
                        if MUST_AGREE.contains(&k.as_str())
                            || k == "seconds"
                            || k == "files_per_second"
                        {
                            continue;
                        }
                        match acc.get_mut(k) {
                            Some(slot) => add(slot, v),
                            None => {
                                acc.insert(k.clone(), v.clone());
                            }
                        }
                    }
                }
            }
        }
    }
    let mut s = summary.ok_or_else(|| Error::Usage("no summary line in the reports".into()))?;
    let seen = s.get("files_seen").and_then(Value::as_u64).unwrap_or(0);
    // Shards run side by side: the slowest one is the job's time.
    s.insert("seconds".into(), seconds.into());
    let rate = if seconds > 0.0 {
        seen as f64 / seconds
    } else {
        0.0
    };
    s.insert("files_per_second".into(), rate.into());
    s.insert("reports_merged".into(), files.len().into());
    let line = serde_json::to_string(&serde_json::json!({ "summary": s })).unwrap_or_default();
    writeln!(out, "{line}").map_err(io("stdout".into()))?;
    let failed = s.get("failed").and_then(Value::as_u64).unwrap_or(0);
    let skipped = s.get("skipped").and_then(Value::as_u64).unwrap_or(0);
    let benign = ["skipped_not_dicom", "skipped_unchanged"]
        .iter()
        .filter_map(|k| s.get(*k).and_then(Value::as_u64))
        .sum::<u64>();
    Ok(if failed > 0 || skipped > benign {
        ExitStatus::Partial
    } else {
        ExitStatus::Success
    })
}
