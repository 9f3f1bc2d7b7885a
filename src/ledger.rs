//! The run ledger: what a previous run over the same output already finished, so a
//! nightly re-run (or a run restarted after a crash) does only what is new or
//! changed. Inputs are identified by a keyed hash of their path (input paths often
//! hold patient names and the ledger sits with the shared output) and by size and
//! modification time; a different profile or key invalidates the whole ledger.

use crate::deid::Key;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
struct Header {
    ledger: u32,
    profile: String,
    key: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Record {
    pub id: String,
    pub size: u64,
    pub mtime_ns: i128,
    /// Output path relative to the output directory.
    pub output: PathBuf,
    /// Size of the output as written. Outputs are not fsynced: after a power loss a
    /// file can be left empty or short while its ledger line survived, and then it
    /// must be redone, not skipped. (Absent in ledgers of earlier versions.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_size: Option<u64>,
}

/// Size and modification time of an input, as the ledger compares them.
pub fn stamp(meta: &std::fs::Metadata) -> (u64, i128) {
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as i128);
    (meta.len(), mtime)
}

/// The ledger id of an input path: keyed, so the ledger reveals no path. `cwd` is
/// the working directory, read once per run rather than once per file.
pub fn input_id(key: &Key, path: &Path, cwd: &Path) -> String {
    // Absolute, not canonical: canonicalising costs a readlink per path component
    // for every file, and runs name their inputs the same way night after night.
    // (`absolute` of an absolute path normalises it without asking for the cwd.)
    let joined = cwd.join(path);
    let abs = std::path::absolute(&joined).unwrap_or(joined);
    let mac = key.mac(&[b"ledger-input\0", abs.as_os_str().as_encoded_bytes()]);
    crate::deid::key::hex(&mac[..16])
}

/// What earlier runs finished, read once at the start.
#[derive(Debug, Default)]
pub struct Ledger {
    done: HashMap<String, Record>,
}

impl Ledger {
    /// Reads `path` if it exists and was written with this profile and key; anything
    /// else (no file, other profile or key, a damaged header) means nothing is done.
    /// A line cut short by a crash is ignored.
    pub fn load(path: &Path, profile_digest: &str, key_fingerprint: &str) -> Ledger {
        let Ok(file) = File::open(path) else {
            return Ledger::default();
        };
        let mut lines = BufReader::new(file).lines();
        let expected = Header {
            ledger: 1,
            profile: profile_digest.into(),
            key: key_fingerprint.into(),
        };
        let header_ok = lines
            .next()
            .and_then(Result::ok)
            .and_then(|l| serde_json::from_str::<Header>(&l).ok())
            .is_some_and(|h| h == expected);
        if !header_ok {
            return Ledger::default();
        }
        let done = lines
            .map_while(Result::ok)
            .filter_map(|l| serde_json::from_str::<Record>(&l).ok())
            .map(|r| (r.id.clone(), r))
            .collect();
        Ledger { done }
    }

    pub fn len(&self) -> usize {
        self.done.len()
    }

    /// Every record (input id -> output), for the outputs' owners.
    pub fn records(&self) -> impl Iterator<Item = &Record> {
        self.done.values()
    }

    pub fn is_empty(&self) -> bool {
        self.done.is_empty()
    }

    /// The earlier output of this input, if it was finished from the same bytes and
    /// its output is still there.
    /// `stored_size` tells the size of an output stored now (None: not there).
    pub fn finished(
        &self,
        id: &str,
        stamp: (u64, i128),
        stored_size: impl Fn(&Path) -> Option<u64>,
    ) -> Option<&Record> {
        let r = self.done.get(id)?;
        if r.size != stamp.0 || r.mtime_ns != stamp.1 {
            return None;
        }
        let len = stored_size(&r.output)?;
        r.output_size.is_none_or(|n| n == len).then_some(r)
    }
}

/// Appends one line per finished input, flushed at once so a killed run loses at most
/// the line it was writing.
pub struct LedgerWriter {
    file: File,
}

impl LedgerWriter {
    /// Continues the ledger when it matches this profile and key (`keep`), else starts
    /// it anew.
    pub fn open(
        path: &Path,
        keep: bool,
        profile_digest: &str,
        key_fingerprint: &str,
    ) -> std::io::Result<LedgerWriter> {
        use crate::side_files::{Mode, open};
        if keep && path.is_file() {
            return Ok(LedgerWriter {
                file: open(path, Mode::Append, false)?,
            });
        }
        let mut file = open(path, Mode::Replace, false)?;
        let header = Header {
            ledger: 1,
            profile: profile_digest.into(),
            key: key_fingerprint.into(),
        };
        writeln!(
            file,
            "{}",
            serde_json::to_string(&header).unwrap_or_default()
        )?;
        Ok(LedgerWriter { file })
    }

    pub fn append(&mut self, r: &Record) -> std::io::Result<()> {
        let mut line = serde_json::to_string(r).unwrap_or_default();
        line.push('\n');
        // One write per line: either all of it lands or a torn line is skipped on load.
        self.file.write_all(line.as_bytes())
    }
}

/// The ledger's file name; shards keep their own.
pub fn ledger_path(out: &Path, shard: Option<(u64, u64)>) -> PathBuf {
    match shard {
        Some((i, n)) => out.join(format!(".dicom-deid-ledger-{i}-of-{n}.jsonl")),
        None => out.join(".dicom-deid-ledger.jsonl"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ledger_is_honoured_only_for_the_same_profile_key_and_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path();
        let p = ledger_path(out, None);
        std::fs::write(out.join("a.dcm"), b"x").unwrap();
        let mut w = LedgerWriter::open(&p, false, "P", "K").unwrap();
        let r = Record {
            id: "i1".into(),
            size: 10,
            mtime_ns: 5,
            output: "a.dcm".into(),
            output_size: Some(1),
        };
        w.append(&r).unwrap();
        // A torn last line is ignored.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&p)
            .unwrap()
            .write_all(b"{\"id\":\"i2\",\"si")
            .unwrap();
        let l = Ledger::load(&p, "P", "K");
        let size = |n: &Path| std::fs::metadata(out.join(n)).ok().map(|m| m.len());
        assert_eq!(l.len(), 1);
        assert!(l.finished("i1", (10, 5), size).is_some());
        assert!(l.finished("i1", (11, 5), size).is_none(), "changed input");
        assert!(l.finished("i2", (10, 5), size).is_none());
        assert!(Ledger::load(&p, "P2", "K").is_empty(), "other profile");
        assert!(Ledger::load(&p, "P", "K2").is_empty(), "other key");
        std::fs::write(out.join("a.dcm"), b"").unwrap();
        assert!(
            l.finished("i1", (10, 5), size).is_none(),
            "output emptied by a crash before write-back"
        );
        std::fs::remove_file(out.join("a.dcm")).unwrap();
        assert!(l.finished("i1", (10, 5), size).is_none(), "output gone");
    }
}
