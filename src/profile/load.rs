//! Reading profiles: files and built-ins, `extends` layering, YAML parsing with the
//! line of each problem, and the lookup CSV files rules point at.

use super::action::{LookupTable, OnMissing};
use super::builtin;
use super::compile::compile;
use super::compiled::{CompiledProfile, Diagnostic, ProfileErrors};
use super::diagnose;
use super::model::{LookupSpec, ProfileFile};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Loads and compiles a profile given by built-in name or by path.
pub fn load(spec: &str) -> Result<CompiledProfile, ProfileErrors> {
    load_with_options(spec, &[])
}

/// Like [`load`], with PS3.15 options switched on from the command line.
pub fn load_with_options(spec: &str, options: &[String]) -> Result<CompiledProfile, ProfileErrors> {
    let mut layers = Vec::new();
    load_layers(spec, None, &mut layers, 0)
        .and_then(|()| compile(&layers, options))
        .map_err(|e| diagnose::annotate(e, &source_text))
}

/// The text of a profile named in a diagnostic (a built-in or a file), for the
/// snippet under the error.
fn source_text(source: &str) -> Option<String> {
    match source.strip_prefix("builtin:") {
        Some(name) => builtin::get(name).map(str::to_string),
        None => std::fs::read_to_string(source).ok(),
    }
}

/// Compiles a profile from YAML text (`source` names it in diagnostics).
pub fn compile_str(source: &str, text: &str) -> Result<CompiledProfile, ProfileErrors> {
    compile_str_inner(source, text).map_err(|e| {
        diagnose::annotate(e, &|s| {
            if s == source {
                Some(text.to_string())
            } else {
                source_text(s)
            }
        })
    })
}

fn compile_str_inner(source: &str, text: &str) -> Result<CompiledProfile, ProfileErrors> {
    let mut layers = Vec::new();
    let file = parse_yaml(source, text)?;
    let base = Path::new(source).parent().map(Path::to_path_buf);
    if let Some(parent) = &file.extends {
        load_layers(&parent.value, base.as_deref(), &mut layers, 1)
            .map_err(|e| with_context(e, source, parent.referenced.line()))?;
    }
    layers.push(Layer {
        source: source.to_string(),
        dir: base,
        file,
    });
    compile(&layers, &[])
}

pub(super) struct Layer {
    pub(super) source: String,
    /// Directory relative paths in the layer resolve against (none for built-ins).
    pub(super) dir: Option<PathBuf>,
    pub(super) file: ProfileFile,
}

const MAX_EXTENDS: usize = 8;

fn load_layers(
    spec: &str,
    base_dir: Option<&Path>,
    layers: &mut Vec<Layer>,
    depth: usize,
) -> Result<(), ProfileErrors> {
    let diag = |source: &str, msg: String| {
        ProfileErrors(vec![Diagnostic {
            source: source.to_string(),
            line: None,
            message: msg,
            ..Diagnostic::default()
        }])
    };
    if depth > MAX_EXTENDS {
        return Err(diag(
            spec,
            format!("`extends` nests deeper than {MAX_EXTENDS} (a cycle?)"),
        ));
    }
    let (source, text, dir) = if let Some(text) = builtin::get(spec) {
        (format!("builtin:{spec}"), text.to_string(), None)
    } else {
        let path: PathBuf = match base_dir {
            Some(d) if Path::new(spec).is_relative() => d.join(spec),
            _ => PathBuf::from(spec),
        };
        let text = std::fs::read_to_string(&path).map_err(|e| {
            diag(
                &path.display().to_string(),
                format!(
                    "cannot read profile ({e}); built-in profiles are: {}",
                    builtin::names().join(", ")
                ),
            )
        })?;
        let dir = path.parent().map(Path::to_path_buf);
        (path.display().to_string(), text, dir)
    };
    let file = parse_yaml(&source, &text)?;
    if let Some(parent) = &file.extends {
        load_layers(&parent.value, dir.as_deref(), layers, depth + 1)
            .map_err(|e| with_context(e, &source, parent.referenced.line()))?;
    }
    layers.push(Layer { source, dir, file });
    Ok(())
}

fn with_context(mut e: ProfileErrors, source: &str, line: u64) -> ProfileErrors {
    e.0.push(Diagnostic {
        source: source.to_string(),
        line: Some(line),
        message: "in the profile named by `extends` here".into(),
        ..Diagnostic::default()
    });
    e
}

fn parse_yaml(source: &str, text: &str) -> Result<ProfileFile, ProfileErrors> {
    serde_saphyr::from_str::<ProfileFile>(text).map_err(|e| {
        let rendered = e.to_string();
        let first = rendered.lines().next().unwrap_or("YAML error");
        let line = number_after(first, "line ");
        let column = number_after(first, "column ");
        // The location is shown apart, as for every other diagnostic.
        let message = match first.split_once(": ") {
            Some((head, rest)) if line.is_some() && head.contains("line ") => rest,
            _ => first,
        };
        let message = message.strip_prefix("error: ").unwrap_or(message);
        let message = match message.split_once(": ") {
            Some((head, rest)) if head.starts_with("line ") => rest,
            _ => message,
        };
        ProfileErrors(vec![Diagnostic {
            source: source.to_string(),
            line,
            column,
            message: message.to_string(),
            ..Diagnostic::default()
        }])
    })
}

/// serde-saphyr renders errors as "error: line L column C: ..."; pull the numbers
/// out so every diagnostic has the same shape.
fn number_after(rendered: &str, word: &str) -> Option<u64> {
    let idx = rendered.find(word)?;
    rendered[idx + word.len()..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect::<String>()
        .parse()
        .ok()
}

/// Normalises a crosswalk key the way values are normalised before lookup.
pub fn lookup_key(s: &str) -> &str {
    s.trim_matches(|c: char| c == ' ' || c == '\0')
        .trim_end_matches(['^', '='])
}

pub(super) fn load_lookup(spec: &LookupSpec, dir: Option<&Path>) -> Result<LookupTable, String> {
    let on_missing = match spec.on_missing.as_deref().unwrap_or("fail") {
        "fail" => OnMissing::Fail,
        "keep" => OnMissing::Keep,
        "remove" => OnMissing::Remove,
        "hash" => OnMissing::Hash,
        other => {
            return Err(format!(
                "lookup on-missing must be fail, keep, remove or hash, got `{other}`"
            ));
        }
    };
    let path = match dir {
        Some(d) if Path::new(&spec.file).is_relative() => d.join(&spec.file),
        _ => PathBuf::from(&spec.file),
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_path(&path)
        .map_err(|e| format!("lookup file {}: {e}", path.display()))?;
    let mut map = HashMap::new();
    for (i, rec) in reader.records().enumerate() {
        let rec = rec.map_err(|e| format!("lookup file {}: {e}", path.display()))?;
        let (Some(from), Some(to)) = (rec.get(0), rec.get(1)) else {
            return Err(format!(
                "lookup file {} row {}: needs two columns, original,replacement",
                path.display(),
                i + 1
            ));
        };
        if i == 0 && from.eq_ignore_ascii_case("original") {
            continue;
        }
        let line = rec.position().map_or(i as u64 + 1, |p| p.line());
        // Which of two replacements would win is not the site's choice to leave to
        // chance. The value itself is an original identifier: only the lines are named.
        if let Some((_, first)) =
            map.insert(lookup_key(from).to_string(), (to.trim().to_string(), line))
        {
            return Err(format!(
                "lookup file `{}`: lines {first} and {line} map the same original value; \
                 each original must appear once",
                spec.file
            ));
        }
    }
    let map = map.into_iter().map(|(k, (v, _))| (k, v)).collect();
    Ok(LookupTable {
        // Only the file name: the crosswalk's location is no secret, its content is.
        source: path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default(),
        map,
        on_missing,
    })
}
