//! YAML profile -> immutable `CompiledProfile`: `extends` resolved, keywords mapped to
//! tags, patterns turned into masks, conflicts reported with line numbers. Built once
//! before a run; the engine then asks it one question per element.

use super::action::{Action, Code, HashParams};
use super::builtin;
use super::model::{ProfileFile, RuleSpec};
use super::table::{self, OPTION_COLUMNS, RowTarget};
use super::tagspec::{Target, normalize_creator, parse_target};
use serde_saphyr::Spanned;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::path::{Path, PathBuf};

/// One problem in a profile, located where the user can find it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub source: String,
    pub line: Option<u64>,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{}: {}", self.source, l, self.message),
            None => write!(f, "{}: {}", self.source, self.message),
        }
    }
}

/// Every problem found in a profile (compilation reports all of them, not the first).
#[derive(Debug, thiserror::Error)]
#[error("invalid profile:\n{}", .0.iter().map(|d| format!("  {d}")).collect::<Vec<_>>().join("\n"))]
pub struct ProfileErrors(pub Vec<Diagnostic>);

/// Where a rule came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub source: String,
    pub line: u64,
}

#[derive(Debug, Clone)]
pub struct Rule {
    pub target: Target,
    pub action: Action,
    /// The code the rule was written with, when it was written as a code.
    pub code: Option<Code>,
    pub name: Option<String>,
    pub origin: Origin,
}

/// What applies to elements no rule names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fallback {
    Keep,
    Remove,
}

impl Fallback {
    pub fn action(self) -> &'static Action {
        match self {
            Fallback::Keep => &Action::Keep,
            Fallback::Remove => &Action::Remove,
        }
    }
}

/// Which rule decided an element, for counts and `--explain`.
#[derive(Debug, Clone, Copy)]
pub enum Decision<'a> {
    Rule(&'a Rule),
    PrivateDefault(&'a Action),
    PublicDefault(&'a Action),
}

impl<'a> Decision<'a> {
    pub fn action(&self) -> &'a Action {
        match self {
            Decision::Rule(r) => &r.action,
            Decision::PrivateDefault(a) | Decision::PublicDefault(a) => a,
        }
    }
}

/// Tags are already well-distributed integers: a multiply spreads them without the
/// cost of SipHash on the per-element path.
#[derive(Default)]
pub struct TagHasher(u64);

impl Hasher for TagHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    fn write_u32(&mut self, v: u32) {
        self.0 = u64::from(v).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type TagMap<V> = HashMap<u32, V, BuildHasherDefault<TagHasher>>;

#[derive(Debug)]
pub struct CompiledProfile {
    pub name: String,
    pub description: String,
    /// Sources the profile was built from, base first.
    pub sources: Vec<String>,
    pub rules: Vec<Rule>,
    exact: TagMap<usize>,
    /// Most specific first.
    patterns: Vec<(u32, u32, usize)>,
    /// Private rules by group.
    private: TagMap<Vec<(String, u8, usize)>>,
    pub private_default: Fallback,
    pub public_default: Fallback,
    /// Hex SHA-256 of the compiled rules: equal digests mean equal behaviour.
    pub digest: String,
}

impl CompiledProfile {
    /// The rule deciding `tag`. `creator` is the private creator of the block a
    /// private element sits in, if the dataset declares one.
    #[inline]
    pub fn decide(&self, tag: u32, creator: Option<&str>) -> Decision<'_> {
        let group = (tag >> 16) as u16;
        if group % 2 == 1 {
            if let (Some(creator), Some(list)) = (creator, self.private.get(&u32::from(group))) {
                let elem = (tag & 0xFF) as u8;
                if let Some((_, _, i)) = list.iter().find(|(c, e, _)| *e == elem && c == creator) {
                    return Decision::Rule(&self.rules[*i]);
                }
            }
            if let Some(i) = self.exact.get(&tag) {
                return Decision::Rule(&self.rules[*i]);
            }
            return Decision::PrivateDefault(self.private_default.action());
        }
        if let Some(i) = self.exact.get(&tag) {
            return Decision::Rule(&self.rules[*i]);
        }
        for (mask, value, i) in &self.patterns {
            if tag & mask == *value {
                return Decision::Rule(&self.rules[*i]);
            }
        }
        Decision::PublicDefault(self.public_default.action())
    }

    /// How the profile treats each row of Table E.1-1.
    pub fn coverage(&self) -> Coverage {
        let mut cov = Coverage::default();
        for row in table::rows() {
            let (named, action) = match &row.target {
                RowTarget::AllPrivate => (true, self.private_default.action().clone()),
                RowTarget::Target(Target::Tag(t)) => match self.exact.get(t) {
                    Some(i) => (true, self.rules[*i].action.clone()),
                    None => (false, self.decide(*t, None).action().clone()),
                },
                RowTarget::Target(target) => {
                    match self.rules.iter().find(|r| &r.target == target) {
                        Some(r) => (true, r.action.clone()),
                        None => (false, self.public_default.action().clone()),
                    }
                }
            };
            cov.rows += 1;
            if named {
                cov.named += 1;
            }
            // X/Z/U* without IOD knowledge keeps the sequence (its UIDs are remapped by the
            // U rules inside), so keeping it is not a weakening.
            let weakened = action.keeps_value() && !matches!(row.basic, Code::K | Code::XZU);
            if weakened {
                cov.weakened.push(row.tag_text.clone());
            } else if !named {
                cov.by_default += 1;
            }
        }
        cov
    }

    /// CID 7050 codes (value, meaning) of what this profile does. The Basic Profile
    /// code is claimed only when no row of Table E.1-1 keeps its original value and
    /// private attributes are removed.
    pub fn method_codes(&self) -> Vec<(&'static str, &'static str)> {
        let cov = self.coverage();
        if cov.weakened.is_empty() && self.private_default == Fallback::Remove {
            vec![("113100", "Basic Application Confidentiality Profile")]
        } else {
            Vec::new()
        }
    }

    /// Value of Longitudinal Temporal Information Modified (0028,0303).
    pub fn longitudinal_marker(&self) -> &'static str {
        let date_rows: Vec<_> = table::rows()
            .iter()
            .filter(|r| {
                r.options
                    .iter()
                    .any(|(o, _)| *o == "retain-long-full-dates")
            })
            .collect();
        let all_kept = date_rows.iter().all(|r| match &r.target {
            RowTarget::Target(Target::Tag(t)) => self.decide(*t, None).action().keeps_value(),
            _ => false,
        });
        if all_kept { "UNMODIFIED" } else { "REMOVED" }
    }
}

#[derive(Debug, Default)]
pub struct Coverage {
    pub rows: usize,
    /// Rows a rule (or, for the private row, `defaults.private`) names.
    pub named: usize,
    /// Rows no rule names but whose tag the defaults still remove.
    pub by_default: usize,
    /// Rows whose original value the profile keeps although the table does not.
    pub weakened: Vec<String>,
}

/// Loads and compiles a profile given by built-in name or by path.
pub fn load(spec: &str) -> Result<CompiledProfile, ProfileErrors> {
    let mut layers = Vec::new();
    load_layers(spec, None, &mut layers, 0)?;
    compile(&layers)
}

/// Compiles a profile from YAML text (`source` names it in diagnostics).
pub fn compile_str(source: &str, text: &str) -> Result<CompiledProfile, ProfileErrors> {
    let mut layers = Vec::new();
    let file = parse_yaml(source, text)?;
    let base = Path::new(source).parent().map(Path::to_path_buf);
    if let Some(parent) = &file.extends {
        load_layers(&parent.value, base.as_deref(), &mut layers, 1)
            .map_err(|e| with_context(e, source, parent.referenced.line()))?;
    }
    layers.push(Layer {
        source: source.to_string(),
        file,
    });
    compile(&layers)
}

struct Layer {
    source: String,
    file: ProfileFile,
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
    layers.push(Layer { source, file });
    Ok(())
}

fn with_context(mut e: ProfileErrors, source: &str, line: u64) -> ProfileErrors {
    e.0.push(Diagnostic {
        source: source.to_string(),
        line: Some(line),
        message: "in the profile named by `extends` here".into(),
    });
    e
}

fn parse_yaml(source: &str, text: &str) -> Result<ProfileFile, ProfileErrors> {
    serde_saphyr::from_str::<ProfileFile>(text).map_err(|e| {
        let rendered = e.to_string();
        let line = first_line_number(&rendered);
        ProfileErrors(vec![Diagnostic {
            source: source.to_string(),
            line,
            message: rendered.lines().next().unwrap_or("YAML error").to_string(),
        }])
    })
}

/// serde-saphyr renders errors as "... at line L, column C"; pull L out so every
/// diagnostic has the same shape.
fn first_line_number(rendered: &str) -> Option<u64> {
    let idx = rendered.find("line ")?;
    rendered[idx + 5..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect::<String>()
        .parse()
        .ok()
}

fn compile(layers: &[Layer]) -> Result<CompiledProfile, ProfileErrors> {
    let mut errors = Vec::new();
    let mut merged: BTreeMap<Target, Rule> = BTreeMap::new();
    let mut private_default = Fallback::Remove;
    let mut public_default = Fallback::Keep;
    let mut name = None;
    let mut description = None;

    for layer in layers {
        let src = &layer.source;
        let err = |errors: &mut Vec<Diagnostic>, line: u64, message: String| {
            errors.push(Diagnostic {
                source: src.clone(),
                line: Some(line),
                message,
            })
        };
        if layer.file.name.is_some() {
            name.clone_from(&layer.file.name);
        }
        if layer.file.description.is_some() {
            description.clone_from(&layer.file.description);
        }
        for opt in &layer.file.options {
            let known = OPTION_COLUMNS.iter().any(|(n, _)| *n == opt.value);
            let msg = if known {
                format!(
                    "option `{}` is recognised but not implemented yet; remove it from `options`",
                    opt.value
                )
            } else {
                format!(
                    "unknown option `{}` (known: {})",
                    opt.value,
                    OPTION_COLUMNS.map(|(n, _)| n).join(", ")
                )
            };
            err(&mut errors, opt.referenced.line(), msg);
        }
        if let Some(d) = &layer.file.defaults {
            if let Some(p) = &d.private {
                match parse_fallback(&p.value) {
                    Some(f) => private_default = f,
                    None => err(
                        &mut errors,
                        p.referenced.line(),
                        format!(
                            "defaults.private must be `remove` or `keep`, got `{}`",
                            p.value
                        ),
                    ),
                }
            }
            if let Some(p) = &d.public {
                match parse_fallback(&p.value) {
                    Some(f) => public_default = f,
                    None => err(
                        &mut errors,
                        p.referenced.line(),
                        format!(
                            "defaults.public must be `keep` or `remove`, got `{}`",
                            p.value
                        ),
                    ),
                }
            }
        }
        let mut seen: HashMap<Target, u64> = HashMap::new();
        for spanned in &layer.file.rules {
            let line = spanned.referenced.line();
            match compile_rule(&spanned.value, src, line) {
                Ok(rule) => {
                    if let Some(first) = seen.insert(rule.target.clone(), line) {
                        err(
                            &mut errors,
                            line,
                            format!(
                                "conflicting rules: {} is already set at line {first}",
                                rule.target.describe()
                            ),
                        );
                    }
                    merged.insert(rule.target.clone(), rule);
                }
                Err(messages) => {
                    for m in messages {
                        err(&mut errors, line, m);
                    }
                }
            }
        }
    }
    if !errors.is_empty() {
        return Err(ProfileErrors(errors));
    }

    let rules: Vec<Rule> = merged.into_values().collect();
    let mut exact = TagMap::default();
    let mut patterns = Vec::new();
    let mut private: TagMap<Vec<(String, u8, usize)>> = TagMap::default();
    let mut hasher = Sha256::new();
    hasher.update(format!(
        "private={private_default:?};public={public_default:?}\n"
    ));
    for (i, r) in rules.iter().enumerate() {
        hasher.update(format!("{}={}\n", r.target.describe(), r.action.describe()));
        match &r.target {
            Target::Tag(t) => {
                exact.insert(*t, i);
            }
            Target::Pattern { mask, value } => patterns.push((*mask, *value, i)),
            Target::Private {
                group,
                elem,
                creator,
            } => private
                .entry(u32::from(*group))
                .or_default()
                .push((creator.clone(), *elem, i)),
        }
    }
    patterns.sort_by_key(|(mask, _, _)| std::cmp::Reverse(mask.count_ones()));
    let digest = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok(CompiledProfile {
        name: name.unwrap_or_else(|| "custom".into()),
        description: description.unwrap_or_default(),
        sources: layers.iter().map(|l| l.source.clone()).collect(),
        rules,
        exact,
        patterns,
        private,
        private_default,
        public_default,
        digest,
    })
}

fn parse_fallback(s: &str) -> Option<Fallback> {
    match s.trim() {
        "keep" | "K" => Some(Fallback::Keep),
        "remove" | "X" => Some(Fallback::Remove),
        _ => None,
    }
}

const DEFAULT_HASH_LENGTH: usize = 16;
const MAX_HASH_LENGTH: usize = 64;

fn compile_rule(spec: &RuleSpec, source: &str, line: u64) -> Result<Rule, Vec<String>> {
    let mut problems = Vec::new();
    let target = parse_target(
        &spec.tag.value,
        spec.creator.as_deref().map(normalize_creator),
    )
    .map_err(|e| problems.push(e))
    .ok();
    let given = [
        spec.action.is_some(),
        spec.replace.is_some(),
        spec.hash.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if given != 1 {
        problems.push("a rule needs exactly one of `action`, `replace`, `hash`".into());
    }
    let mut code = None;
    let action = if let Some(a) = &spec.action {
        match Code::parse(&a.value) {
            Some(c) => {
                code = Some(c);
                Some(c.resolve())
            }
            None => {
                problems.push(unknown_action(a));
                None
            }
        }
    } else if let Some(v) = &spec.replace {
        Some(Action::Replace(v.clone()))
    } else if let Some(h) = &spec.hash {
        let length = h.length.unwrap_or(DEFAULT_HASH_LENGTH);
        let prefix = h.prefix.clone().unwrap_or_default();
        if length == 0 || length > MAX_HASH_LENGTH || prefix.len() >= length {
            problems.push(format!(
                "hash length must be 1..={MAX_HASH_LENGTH} and longer than the prefix"
            ));
        }
        if !prefix.is_ascii() {
            problems.push("hash prefix must be ASCII".into());
        }
        Some(Action::Hash(HashParams {
            domain: h.domain.clone().unwrap_or_else(|| "value".into()),
            length,
            prefix,
        }))
    } else {
        None
    };
    if let Some(t) = &spec.table
        && Code::parse(t).is_none()
    {
        problems.push(format!("`table: {t}` is not a Table E.1-1 action code"));
    }
    for (opt, cell) in &spec.options {
        if !OPTION_COLUMNS.iter().any(|(n, _)| n == opt) {
            problems.push(format!("unknown option `{opt}` in rule"));
        }
        if !matches!(Code::parse(cell), Some(Code::K | Code::C)) {
            problems.push(format!("option `{opt}`: expected K or C, got `{cell}`"));
        }
    }
    match (target, action, problems.is_empty()) {
        (Some(target), Some(action), true) => Ok(Rule {
            target,
            action,
            code,
            name: spec.name.clone(),
            origin: Origin {
                source: source.to_string(),
                line,
            },
        }),
        _ => Err(problems),
    }
}

fn unknown_action(a: &Spanned<String>) -> String {
    format!(
        "unknown action `{}` (expected one of {}; or use `replace:` / `hash:`)",
        a.value,
        Code::ALL.map(|c| c.as_str()).join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile_text(text: &str) -> Result<CompiledProfile, ProfileErrors> {
        compile_str("test.yaml", text)
    }

    #[test]
    fn builtin_basic_compiles_and_covers_the_table() {
        let p = load("basic").expect("basic compiles");
        let cov = p.coverage();
        assert_eq!(cov.rows, 657);
        assert_eq!(cov.named, 657, "every row is named by a rule");
        assert!(cov.weakened.is_empty(), "{:?}", cov.weakened);
        assert_eq!(p.method_codes()[0].0, "113100");
        assert_eq!(p.longitudinal_marker(), "REMOVED");
    }

    #[test]
    fn lookups_follow_precedence() {
        let p = compile_text(
            "rules:\n\
             - {tag: PatientName, action: Z}\n\
             - {tag: \"(60xx,3000)\", action: X}\n\
             - {tag: \"(60xx,xxxx)\", action: K}\n\
             - {tag: \"(0029,xx10)\", creator: SIEMENS CSA HEADER, action: K}\n",
        )
        .unwrap();
        assert_eq!(p.decide(0x0010_0010, None).action(), &Action::Empty);
        assert_eq!(p.decide(0x6002_3000, None).action(), &Action::Remove);
        assert_eq!(p.decide(0x6002_0010, None).action(), &Action::Keep);
        assert_eq!(p.decide(0x0008_0060, None).action(), &Action::Keep);
        assert_eq!(
            p.decide(0x0029_1110, Some("SIEMENS CSA HEADER")).action(),
            &Action::Keep
        );
        assert_eq!(
            p.decide(0x0029_1110, Some("OTHER")).action(),
            &Action::Remove
        );
        assert_eq!(p.decide(0x0029_1110, None).action(), &Action::Remove);
    }

    #[test]
    fn allow_list_mode_removes_unnamed_public_tags() {
        let p = compile_text("defaults: {public: remove}\nrules:\n- {tag: Modality, action: K}\n")
            .unwrap();
        assert_eq!(p.decide(0x0008_0060, None).action(), &Action::Keep);
        assert_eq!(p.decide(0x0008_0070, None).action(), &Action::Remove);
    }

    #[test]
    fn errors_carry_line_numbers() {
        let err = compile_text(
            "name: t\nrules:\n  - {tag: NoSuchThing, action: X}\n  - {tag: PatientName, action: X}\n  - {tag: \"(0010,0010)\", action: Z}\n  - {tag: \"(0010,00ZZ)\", action: X}\n  - {tag: PatientID, action: Q}\n",
        )
        .unwrap_err();
        let lines: Vec<_> = err.0.iter().map(|d| (d.line, d.message.clone())).collect();
        assert!(
            lines
                .iter()
                .any(|(l, m)| *l == Some(3) && m.contains("unknown keyword")),
            "{lines:?}"
        );
        assert!(
            lines
                .iter()
                .any(|(l, m)| *l == Some(7) && m.contains("unknown action")),
            "{lines:?}"
        );
        assert!(
            lines
                .iter()
                .any(|(l, m)| *l == Some(5) && m.contains("line 4")),
            "{lines:?}"
        );
        assert!(
            lines
                .iter()
                .any(|(l, m)| *l == Some(6) && m.contains("malformed")),
            "{lines:?}"
        );
    }

    #[test]
    fn unknown_fields_are_reported_with_a_line() {
        let err = compile_text("rules:\n  - {tag: PatientName, acton: X}\n").unwrap_err();
        assert_eq!(err.0[0].line, Some(2), "{err}");
    }

    #[test]
    fn extends_overrides_only_what_changes() {
        let p = compile_text(
            "extends: basic\nname: site\nrules:\n  - {tag: StudyDescription, action: K}\n",
        )
        .unwrap();
        assert_eq!(p.name, "site");
        assert_eq!(p.decide(0x0008_1030, None).action(), &Action::Keep);
        assert_eq!(p.decide(0x0010_0010, None).action(), &Action::Empty);
        assert!(
            p.method_codes().is_empty(),
            "keeping a described row drops 113100"
        );
    }

    #[test]
    fn digest_tracks_behaviour() {
        let a = compile_text("rules: [{tag: PatientName, action: Z}]").unwrap();
        let b = compile_text("# comment\nrules: [{tag: \"(0010,0010)\", action: Z}]").unwrap();
        let c = compile_text("rules: [{tag: PatientName, action: X}]").unwrap();
        assert_eq!(a.digest, b.digest);
        assert_ne!(a.digest, c.digest);
    }
}
