//! YAML profile -> immutable `CompiledProfile`: `extends` resolved, keywords mapped to
//! tags, patterns turned into masks, conflicts reported with line numbers. Built once
//! before a run; the engine then asks it one question per element.

use super::action::{Action, Code, HashParams};
use super::action::{LookupTable, OnMissing};
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
use std::sync::Arc;

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

/// What a quarantine rule does when it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The file fails and is listed in the quarantine manifest.
    Fail,
    /// The file is processed; the report notes the finding.
    Warn,
    Off,
}

/// Quarantine rules; fail-closed unless a profile says otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuarantinePolicy {
    pub burned_in_annotation: Severity,
    pub burned_in_unknown: Severity,
    pub encapsulated_documents: Severity,
    pub allowed_sop_classes: Option<Vec<String>>,
}

impl Default for QuarantinePolicy {
    fn default() -> Self {
        QuarantinePolicy {
            burned_in_annotation: Severity::Fail,
            burned_in_unknown: Severity::Fail,
            encapsulated_documents: Severity::Fail,
            allowed_sop_classes: None,
        }
    }
}

fn parse_severity(s: &str) -> Option<Severity> {
    match s.trim() {
        "fail" => Some(Severity::Fail),
        "warn" => Some(Severity::Warn),
        "off" => Some(Severity::Off),
        _ => None,
    }
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
    /// PS3.15 E.3 options in effect, in table column order.
    pub options: Vec<&'static str>,
    /// Per-patient date shift: whole days into the past, inclusive range.
    pub date_shift_days: (u32, u32),
    /// DA/DT elements no rule names are shifted too (modified-dates option).
    pub shift_unlisted_dates: bool,
    /// Ages over 89 years are written as 090Y.
    pub hipaa_ages: bool,
    /// Cleaned times keep only their hour.
    pub coarsen_times: bool,
    pub quarantine: QuarantinePolicy,
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
            let option_keeps = row
                .options
                .iter()
                .any(|(o, c)| *c == Code::K && self.options.contains(o));
            let weakened =
                action.keeps_value() && !option_keeps && !matches!(row.basic, Code::K | Code::XZU);
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
        if !(cov.weakened.is_empty() && self.private_default == Fallback::Remove) {
            return Vec::new();
        }
        let mut codes = vec![("113100", "Basic Application Confidentiality Profile")];
        codes.extend(self.options.iter().filter_map(|o| table::option_code(o)));
        codes
    }

    /// Value of Longitudinal Temporal Information Modified (0028,0303).
    pub fn longitudinal_marker(&self) -> &'static str {
        if self.options.contains(&"retain-long-modified-dates") {
            return "MODIFIED";
        }
        if self.options.contains(&"retain-long-full-dates") {
            return "UNMODIFIED";
        }
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
    load_with_options(spec, &[])
}

/// Like [`load`], with PS3.15 options switched on from the command line.
pub fn load_with_options(spec: &str, options: &[String]) -> Result<CompiledProfile, ProfileErrors> {
    let mut layers = Vec::new();
    load_layers(spec, None, &mut layers, 0)?;
    compile(&layers, options)
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
        dir: base,
        file,
    });
    compile(&layers, &[])
}

struct Layer {
    source: String,
    /// Directory relative paths in the layer resolve against (none for built-ins).
    dir: Option<PathBuf>,
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
    layers.push(Layer { source, dir, file });
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

const DEFAULT_DATE_SHIFT: (u32, u32) = (1, 3650);
const FULL_DATES: &str = "retain-long-full-dates";
const MODIFIED_DATES: &str = "retain-long-modified-dates";

/// A compiled rule before options are applied: the option cells still attached.
struct Pending {
    rule: Rule,
    cells: Vec<(&'static str, Code)>,
}

fn compile(layers: &[Layer], cli_options: &[String]) -> Result<CompiledProfile, ProfileErrors> {
    let mut errors = Vec::new();
    let mut merged: BTreeMap<Target, Pending> = BTreeMap::new();
    let mut private_default = Fallback::Remove;
    let mut public_default = Fallback::Keep;
    let mut name = None;
    let mut description = None;
    let mut options: Vec<&'static str> = Vec::new();
    let mut date_shift_days = DEFAULT_DATE_SHIFT;
    let mut hipaa_ages = false;
    let mut coarsen_times = false;
    let mut quarantine = QuarantinePolicy::default();

    let mut add_option =
        |errors: &mut Vec<Diagnostic>, source: &str, line: Option<u64>, opt: &str| {
            match OPTION_COLUMNS.iter().find(|(n, _)| *n == opt) {
                Some((n, _)) => {
                    if !options.contains(n) {
                        options.push(n);
                    }
                }
                None => errors.push(Diagnostic {
                    source: source.to_string(),
                    line,
                    message: format!(
                        "unknown option `{opt}` (known: {})",
                        OPTION_COLUMNS.map(|(n, _)| n).join(", ")
                    ),
                }),
            }
        };

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
            add_option(&mut errors, src, Some(opt.referenced.line()), &opt.value);
        }
        if let Some(ds) = &layer.file.date_shift {
            let (lo, hi) = (ds.value.min_days, ds.value.max_days);
            if lo == 0 || lo > hi || hi > 36_500 {
                err(
                    &mut errors,
                    ds.referenced.line(),
                    format!("date-shift needs 1 <= min-days <= max-days <= 36500, got {lo}..{hi}"),
                );
            } else {
                date_shift_days = (lo, hi);
            }
        }
        if let Some(h) = layer.file.hipaa_ages {
            hipaa_ages = h;
        }
        if let Some(c) = layer.file.coarsen_times {
            coarsen_times = c;
        }
        if let Some(q) = &layer.file.quarantine {
            let line = q.referenced.line();
            for (field, value, slot) in [
                (
                    "burned-in-annotation",
                    &q.value.burned_in_annotation,
                    &mut quarantine.burned_in_annotation,
                ),
                (
                    "burned-in-unknown",
                    &q.value.burned_in_unknown,
                    &mut quarantine.burned_in_unknown,
                ),
                (
                    "encapsulated-documents",
                    &q.value.encapsulated_documents,
                    &mut quarantine.encapsulated_documents,
                ),
            ] {
                if let Some(v) = value {
                    match parse_severity(v) {
                        Some(sev) => *slot = sev,
                        None => err(
                            &mut errors,
                            line,
                            format!("quarantine.{field} must be fail, warn or off, got `{v}`"),
                        ),
                    }
                }
            }
            if let Some(list) = &q.value.allowed_sop_classes {
                quarantine.allowed_sop_classes =
                    Some(list.iter().map(|u| u.trim().to_string()).collect());
            }
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
            match compile_rule(&spanned.value, src, layer.dir.as_deref(), line) {
                Ok(pending) => {
                    let target = pending.rule.target.clone();
                    if let Some(first) = seen.insert(target.clone(), line) {
                        err(
                            &mut errors,
                            line,
                            format!(
                                "conflicting rules: {} is already set at line {first}",
                                target.describe()
                            ),
                        );
                    }
                    merged.insert(target, pending);
                }
                Err(messages) => {
                    for m in messages {
                        err(&mut errors, line, m);
                    }
                }
            }
        }
    }
    for opt in cli_options {
        add_option(&mut errors, "command line", None, opt);
    }
    if options.contains(&FULL_DATES) && options.contains(&MODIFIED_DATES) {
        errors.push(Diagnostic {
            source: "options".into(),
            line: None,
            message: format!("`{FULL_DATES}` and `{MODIFIED_DATES}` exclude each other"),
        });
    }
    if !errors.is_empty() {
        return Err(ProfileErrors(errors));
    }
    // Table column order, so markers and reports list options the same way every run.
    options.sort_by_key(|o| OPTION_COLUMNS.iter().position(|(n, _)| n == o));

    let mut rules: BTreeMap<Target, Rule> = merged
        .into_values()
        .map(|p| {
            let mut rule = p.rule;
            apply_option_cells(&mut rule, &p.cells, &options);
            (rule.target.clone(), rule)
        })
        .collect();
    add_option_rules(&mut rules, &options);
    let rules: Vec<Rule> = rules.into_values().collect();

    let mut exact = TagMap::default();
    let mut patterns = Vec::new();
    let mut private: TagMap<Vec<(String, u8, usize)>> = TagMap::default();
    let mut hasher = Sha256::new();
    hasher.update(format!(
        "private={private_default:?};public={public_default:?};options={options:?};shift={date_shift_days:?};hipaa={hipaa_ages};coarsen={coarsen_times};quarantine={quarantine:?}\n"
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
        shift_unlisted_dates: options.contains(&MODIFIED_DATES),
        options,
        date_shift_days,
        hipaa_ages,
        coarsen_times,
        quarantine,
        digest,
    })
}

/// An active option's cell replaces the rule's action. Where two active options
/// disagree (K against C: the device calibration dates under retain-device-identity
/// and retain-long-modified-dates), C wins: dates are modified, not kept.
fn apply_option_cells(rule: &mut Rule, cells: &[(&'static str, Code)], active: &[&'static str]) {
    let active_cells: Vec<Code> = cells
        .iter()
        .filter(|(o, _)| active.contains(o))
        .map(|(_, c)| *c)
        .collect();
    let code = if active_cells.contains(&Code::C) {
        Code::C
    } else if active_cells.contains(&Code::K) {
        Code::K
    } else {
        return;
    };
    rule.code = Some(code);
    rule.action = code.resolve();
}

/// Rules an option brings beyond the table's cells.
fn add_option_rules(rules: &mut BTreeMap<Target, Rule>, options: &[&'static str]) {
    let builtin_rule = |target: Target, action: Action, name: &str, source: &str, line: u64| Rule {
        target,
        action,
        code: None,
        name: Some(name.to_string()),
        origin: Origin {
            source: source.to_string(),
            line,
        },
    };
    if options.contains(&"clean-graphics") {
        // Overlays and graphic annotations stay; the text that labels them goes.
        let graphics = [
            (0xFF00_FFFF, 0x6000_0022, "Overlay Description"),
            (0xFF00_FFFF, 0x6000_1500, "Overlay Label"),
            (0xFF00_FFFF, 0x6000_4000, "Overlay Comments"),
        ];
        for (mask, value, name) in graphics {
            let t = Target::Pattern { mask, value };
            rules.insert(
                t.clone(),
                builtin_rule(t, Action::Remove, name, "option:clean-graphics", 0),
            );
        }
        let t = Target::Tag(0x0070_0008);
        rules.insert(
            t.clone(),
            builtin_rule(
                t,
                Action::Remove,
                "Text Object Sequence",
                "option:clean-graphics",
                0,
            ),
        );
    }
    if options.contains(&MODIFIED_DATES) {
        // The table empties the birth date under every option; shifted with the
        // patient's offset instead, it keeps ages at each study right and reveals no
        // more than the other shifted dates.
        let t = Target::Tag(0x0010_0030);
        rules.insert(
            t.clone(),
            builtin_rule(
                t,
                Action::DateShift,
                "Patient's Birth Date",
                "option:retain-long-modified-dates",
                0,
            ),
        );
    }
    if options.contains(&"retain-safe-private") {
        for (line, (group, elem, creator)) in table::safe_private().iter().enumerate() {
            let t = Target::Private {
                group: *group,
                elem: *elem,
                creator: creator.clone(),
            };
            // A site's own rule for the same element wins over the standard's list.
            rules.entry(t.clone()).or_insert_with(|| {
                builtin_rule(
                    t,
                    Action::Keep,
                    "Safe Private Attribute (PS3.15 E.3.10)",
                    "builtin:safe-private.csv",
                    line as u64 + 2,
                )
            });
        }
    }
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

/// Function names accepted by `action:` besides the table's codes.
fn named_action(s: &str) -> Option<Action> {
    Some(match s.trim() {
        "keep" => Action::Keep,
        "remove" => Action::Remove,
        "empty" => Action::Empty,
        "dummy" => Action::Dummy,
        "clean" => Action::Clean,
        "hash-uid" => Action::Uid,
        "date-shift" => Action::DateShift,
        _ => return None,
    })
}

fn compile_rule(
    spec: &RuleSpec,
    source: &str,
    dir: Option<&Path>,
    line: u64,
) -> Result<Pending, Vec<String>> {
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
        spec.lookup.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if given != 1 {
        problems.push("a rule needs exactly one of `action`, `replace`, `hash`, `lookup`".into());
    }
    let mut code = None;
    let action = if let Some(a) = &spec.action {
        match (Code::parse(&a.value), named_action(&a.value)) {
            (Some(c), _) => {
                code = Some(c);
                Some(c.resolve())
            }
            (None, Some(action)) => Some(action),
            (None, None) => {
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
        let alphabet = match h.alphabet.as_deref().unwrap_or("alnum") {
            "alnum" => crate::deid::pseudonym::ALNUM,
            "digits" => crate::deid::pseudonym::DIGITS,
            "hex" => crate::deid::pseudonym::HEX,
            other => {
                problems.push(format!(
                    "hash alphabet must be alnum, digits or hex, got `{other}`"
                ));
                crate::deid::pseudonym::ALNUM
            }
        };
        Some(Action::Hash(HashParams {
            domain: h.domain.clone().unwrap_or_else(|| "value".into()),
            length,
            prefix,
            alphabet,
        }))
    } else if let Some(l) = &spec.lookup {
        match load_lookup(l, dir) {
            Ok(t) => Some(Action::Lookup(Arc::new(t))),
            Err(e) => {
                problems.push(e);
                None
            }
        }
    } else {
        None
    };
    if let Some(t) = &spec.table
        && Code::parse(t).is_none()
    {
        problems.push(format!("`table: {t}` is not a Table E.1-1 action code"));
    }
    let mut cells = Vec::new();
    for (opt, cell) in &spec.options {
        match OPTION_COLUMNS.iter().find(|(n, _)| n == opt) {
            Some((n, _)) => match Code::parse(cell) {
                Some(c @ (Code::K | Code::C)) => cells.push((*n, c)),
                _ => problems.push(format!("option `{opt}`: expected K or C, got `{cell}`")),
            },
            None => problems.push(format!("unknown option `{opt}` in rule")),
        }
    }
    match (target, action, problems.is_empty()) {
        (Some(target), Some(action), true) => Ok(Pending {
            rule: Rule {
                target,
                action,
                code,
                name: spec.name.clone(),
                origin: Origin {
                    source: source.to_string(),
                    line,
                },
            },
            cells,
        }),
        _ => Err(problems),
    }
}

/// Normalises a crosswalk key the way values are normalised before lookup.
pub fn lookup_key(s: &str) -> &str {
    s.trim_matches(|c: char| c == ' ' || c == '\0')
        .trim_end_matches(['^', '='])
}

fn load_lookup(spec: &super::model::LookupSpec, dir: Option<&Path>) -> Result<LookupTable, String> {
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
        map.insert(lookup_key(from).to_string(), to.trim().to_string());
    }
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

fn unknown_action(a: &Spanned<String>) -> String {
    format!(
        "unknown action `{}` (expected one of {}, a function keep, remove, empty, dummy, clean, hash-uid, date-shift; or use `replace:` / `hash:` / `lookup:`)",
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
