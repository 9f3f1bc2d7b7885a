//! `run --explain FILE`: the pipeline run on one file, element by element, with
//! the rule that chose each action; never a value. Nothing is written.

use crate::deid::{Engine, Key, Pseudonymizer};
use crate::error::{Error, ExitStatus};
use crate::io::error::ReadError;
use crate::io::layout::{Layout, output_name};
use crate::io::source::open_file;
use crate::pipeline::{PipelineError, Plan, Processed, process};
use std::path::Path;

/// Where a real run would put the explained file: its output directory and layout.
pub struct Target<'a> {
    pub out: &'a Path,
    pub layout: Layout,
}

/// `run --explain FILE`: what the profile does to each element of one file, and
/// why; never a value. With a `target` (a real run's `--out`, no `--dry-run`) it
/// also names the output the run would write.
pub fn explain(
    profile: &str,
    options: &[String],
    key_file: Option<&Path>,
    file: &Path,
    target: Option<Target>,
    out: &mut dyn std::io::Write,
) -> Result<ExitStatus, Error> {
    let profile = crate::profile::compile::load_with_options(profile, options)?;
    let key = match key_file {
        Some(p) => Key::from_file(p)?,
        None => Key::random()?,
    };
    let mut plan = Plan::new(&profile, Engine::new(&profile, Pseudonymizer::new(&key)));
    plan.explain = true;
    let ocr = super::ocr_finder(&profile)?;
    plan.text_finder = ocr.as_ref().map(|t| t as &dyn crate::pixels::TextFinder);
    let io = |source| Error::Io {
        context: "stdout".into(),
        source,
    };
    let processed = open_file(file)
        .map_err(|e| PipelineError::Read(ReadError::Io(e)))
        .and_then(|(input, stamp)| {
            super::execute::quiet_panics(|| {
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    process(input, stamp, &plan)
                }))
            })
            .unwrap_or_else(|_| {
                Err(PipelineError::Read(ReadError::Malformed(
                    "internal error while reading this file".into(),
                )))
            })
        });
    let d = match processed {
        Ok(Processed::Deidentified(d)) => d,
        Ok(Processed::NotDicom) => {
            writeln!(out, "{}: not DICOM: would be skipped", file.display()).map_err(io)?;
            return Ok(ExitStatus::Success);
        }
        Ok(Processed::Dicomdir) => {
            writeln!(out, "{}: DICOMDIR: would be skipped", file.display()).map_err(io)?;
            return Ok(ExitStatus::Partial);
        }
        Err(e) => {
            writeln!(out, "{}: would fail: {e}", file.display()).map_err(io)?;
            return Ok(ExitStatus::Partial);
        }
    };
    let sop_class = d
        .object
        .meta
        .media_storage_sop_class_uid()
        .trim_end_matches(['\0', ' '])
        .to_string();
    let iod = crate::profile::iod::for_sop_class(&sop_class)
        .map(|i| i.iod_id().to_string())
        .unwrap_or_else(|| "unknown (IOD-free resolution of compound codes)".into());
    let lines = &d.explain;
    writeln!(out, "file: {}", file.display()).map_err(io)?;
    writeln!(
        out,
        "profile: {} ({})",
        profile.name,
        profile.sources.join(" <- ")
    )
    .map_err(io)?;
    if !profile.options.is_empty() {
        writeln!(out, "options: {}", profile.options.join(", ")).map_err(io)?;
    }
    writeln!(out, "SOP class: {sop_class}; IOD: {iod}").map_err(io)?;
    match &target {
        Some(t) if d.quarantined.is_none() => {
            // The file as a one-file input: its path below the input is its name.
            let rel = Path::new(file.file_name().unwrap_or(file.as_os_str()));
            let name = output_name(t.layout, rel, &d.object.dataset, || {
                super::execute::unsorted_name(&key, rel)
            });
            writeln!(
                out,
                "run: writes {} (nothing is written now)",
                t.out.join(name).display()
            )
            .map_err(io)?;
        }
        Some(_) => writeln!(out, "run: writes nothing for this file").map_err(io)?,
        None => writeln!(out, "nothing is written").map_err(io)?,
    }
    writeln!(
        out,
        "\n{:<44} {:<36} {:<3} {:<12} {:<22} rule",
        "path", "keyword", "vr", "size", "action"
    )
    .map_err(io)?;
    for l in lines {
        writeln!(
            out,
            "{:<44} {:<36} {:<3} {:<12} {:<22} {}",
            l.path, l.keyword, l.vr, l.size, l.action, l.why
        )
        .map_err(io)?;
    }
    if let Some(what) = &d.pixels {
        writeln!(
            out,
            "{:<44} {:<36} {:<3} {:<12} {:<22} {}",
            "(7FE0,0010)", "PixelData", "", "", "redact", what
        )
        .map_err(io)?;
    } else if d.had_pixel_data {
        let keep = d.object.pixel.is_some();
        writeln!(
            out,
            "{:<44} {:<36} {:<3} {:<12} {:<22} pixel data is copied byte for byte, never decoded",
            "(7FE0,0010)",
            "PixelData",
            "",
            "",
            if keep { "keep" } else { "remove" }
        )
        .map_err(io)?;
    }
    let c = d.counts;
    writeln!(
        out,
        "\n{} elements: {} removed, {} emptied, {} replaced, {} UIDs remapped, {} kept; markers (0012,0062/0063/0064) and (0028,0303) written",
        lines.len(),
        c.removed,
        c.emptied,
        c.replaced,
        c.uid_remapped,
        c.kept
    )
    .map_err(io)?;
    for note in &d.notes {
        writeln!(out, "note: {note}").map_err(io)?;
    }
    if let Some(reason) = &d.quarantined {
        writeln!(out, "{}: would be quarantined: {reason}", file.display()).map_err(io)?;
        return Ok(ExitStatus::Partial);
    }
    Ok(ExitStatus::Success)
}
