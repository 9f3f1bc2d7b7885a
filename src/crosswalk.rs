//! The crosswalk file: original -> pseudonym pairs, the only place original values
//! are ever written. Fed by the pipeline's results on the collector thread, apart
//! from the report, which never sees an original value.
//!
//! Nightly runs with one key add to one crosswalk: the file names the key it was
//! made with (a `key-fingerprint` row after the header), a later run with the same
//! key appends only the pairs it does not hold yet, and a run with another key is
//! refused. `--overwrite-crosswalk` starts it anew.

use crate::error::Error;
use crate::side_files::{Mode, open as open_side};
use std::collections::HashSet;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

const HEADER: [&str; 3] = ["kind", "original", "pseudonym"];
const FINGERPRINT_KIND: &str = "key-fingerprint";

pub struct CrosswalkWriter {
    out: csv::Writer<File>,
    /// Pairs already in the file, so each appears once however many files and runs
    /// share it.
    seen: HashSet<(String, String)>,
    /// Pairs this run added.
    added: u64,
    pub error: Option<std::io::Error>,
}

impl CrosswalkWriter {
    pub fn write(&mut self, entries: &[crate::deid::CrosswalkEntry]) {
        for e in entries {
            if self.seen.insert((e.kind.clone(), e.original.clone())) {
                self.added += 1;
                if let Err(err) = self
                    .out
                    .write_record([&e.kind, &e.original, &e.replacement])
                {
                    self.error.get_or_insert(err.into());
                }
            }
        }
    }

    /// Distinct pairs this run added.
    pub fn len(&self) -> u64 {
        self.added
    }

    pub fn is_empty(&self) -> bool {
        self.added == 0
    }

    pub fn finish(mut self) -> Option<std::io::Error> {
        if let Err(e) = self.out.flush() {
            self.error.get_or_insert(e);
        }
        self.error
    }
}

/// Opens the crosswalk for a run with the key whose fingerprint is `fingerprint`:
/// created owner-only, continued when it was made with the same key, refused when
/// it was made with another (or names none), replaced with `overwrite`.
pub fn open(path: &Path, overwrite: bool, fingerprint: &str) -> Result<CrosswalkWriter, Error> {
    let io = |what: &str| {
        let context = format!("cannot {what} crosswalk {}", path.display());
        move |source| Error::Io { context, source }
    };
    let exists = std::fs::symlink_metadata(path).is_ok();
    if overwrite || !exists {
        let mode = if overwrite { Mode::Replace } else { Mode::New };
        let file = open_side(path, mode, true).map_err(io("create"))?;
        restrict(&file).map_err(io("restrict"))?;
        let mut out = csv::Writer::from_writer(file);
        let error = out
            .write_record(HEADER)
            .and_then(|()| out.write_record([FINGERPRINT_KIND, fingerprint, fingerprint]))
            .err()
            .map(std::io::Error::from);
        return Ok(CrosswalkWriter {
            out,
            seen: HashSet::new(),
            added: 0,
            error,
        });
    }
    let mut file = open_side(path, Mode::ReadAppend, true).map_err(io("open"))?;
    restrict(&file).map_err(io("restrict"))?;
    let mut text = Vec::new();
    file.read_to_end(&mut text).map_err(io("read"))?;
    let (found, seen) = existing_pairs(&text);
    match found.as_deref() {
        Some(f) if f == fingerprint => {}
        Some(other) => {
            return Err(Error::Usage(format!(
                "crosswalk {} was made with another key (fingerprint {other}, this run's is \
                 {fingerprint}): its pseudonyms would not match; choose another file, or pass \
                 --overwrite-crosswalk to replace it",
                path.display()
            )));
        }
        None => {
            return Err(Error::Usage(format!(
                "crosswalk {} does not say which key made it (no key-fingerprint row): pass \
                 --overwrite-crosswalk to replace it, or choose another file",
                path.display()
            )));
        }
    }
    // A run killed mid-line left a torn last line: end it, so the next pair starts
    // on a line of its own (the torn one is skipped when read).
    if text.last().is_some_and(|b| *b != b'\n') {
        file.seek(SeekFrom::End(0)).map_err(io("append to"))?;
        file.write_all(b"\n").map_err(io("append to"))?;
    }
    Ok(CrosswalkWriter {
        out: csv::WriterBuilder::new()
            .has_headers(false)
            .from_writer(file),
        seen,
        added: 0,
        error: None,
    })
}

/// The key fingerprint a crosswalk names, and the (kind, original) pairs it holds.
fn existing_pairs(text: &[u8]) -> (Option<String>, HashSet<(String, String)>) {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(text);
    let mut fingerprint = None;
    let mut seen = HashSet::new();
    for rec in reader.records().filter_map(Result::ok) {
        if rec.len() != 3 {
            continue; // a torn line
        }
        if &rec[0] == FINGERPRINT_KIND {
            fingerprint = Some(rec[1].to_string());
        } else {
            seen.insert((rec[0].to_string(), rec[1].to_string()));
        }
    }
    (fingerprint, seen)
}

/// Owner-only, through the descriptor (never a path a link could redirect).
fn restrict(file: &File) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    #[cfg(not(unix))]
    let _ = file;
    Ok(())
}
