//! The crosswalk file: original -> pseudonym pairs, the only place original values
//! are ever written. Fed by the pipeline's results on the collector thread, apart
//! from the report, which never sees an original value.

use crate::deid::CrosswalkEntry;
use std::collections::HashSet;
use std::path::Path;

pub struct CrosswalkWriter {
    out: csv::Writer<std::fs::File>,
    /// Pairs already written, so each appears once however many files share it.
    seen: HashSet<(String, String)>,
    pub error: Option<std::io::Error>,
}

impl CrosswalkWriter {
    pub fn new(file: std::fs::File) -> Self {
        let mut out = csv::Writer::from_writer(file);
        let error = out
            .write_record(["kind", "original", "pseudonym"])
            .err()
            .map(std::io::Error::from);
        CrosswalkWriter {
            out,
            seen: HashSet::new(),
            error,
        }
    }

    pub fn write(&mut self, entries: &[CrosswalkEntry]) {
        for e in entries {
            if self.seen.insert((e.kind.clone(), e.original.clone()))
                && let Err(err) = self
                    .out
                    .write_record([&e.kind, &e.original, &e.replacement])
            {
                self.error.get_or_insert(err.into());
            }
        }
    }

    /// Distinct pairs written.
    pub fn len(&self) -> u64 {
        self.seen.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    pub fn finish(mut self) -> Option<std::io::Error> {
        if let Err(e) = self.out.flush() {
            self.error.get_or_insert(e);
        }
        self.error
    }
}

/// The crosswalk holds original values: created owner-only, never silently replaced.
pub fn open(path: &Path, overwrite: bool) -> Result<std::fs::File, crate::error::Error> {
    use crate::error::Error;
    use crate::side_files::Mode;
    let mode = if overwrite { Mode::Replace } else { Mode::New };
    let file = crate::side_files::open(path, mode, true).map_err(|source| {
        let context = if source.kind() == std::io::ErrorKind::AlreadyExists {
            format!(
                "crosswalk {} exists; pass --overwrite-crosswalk to replace it",
                path.display()
            )
        } else {
            format!("cannot create crosswalk {}", path.display())
        };
        Error::Io { context, source }
    })?;
    #[cfg(unix)]
    {
        // An existing file keeps its mode on truncation: make it owner-only too
        // (fchmod on the descriptor opened without following links).
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(|source| Error::Io {
                context: format!("cannot restrict crosswalk {}", path.display()),
                source,
            })?;
    }
    Ok(file)
}
