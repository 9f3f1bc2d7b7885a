//! Loaded layers -> immutable `CompiledProfile`: settings merged base first, keywords
//! mapped to tags, patterns turned into masks, option cells applied, conflicts
//! reported with line numbers. Runs once before a run; the engine then asks the
//! result one question per element.

use super::action::{ALNUM, Action, Code, HashParams, Replacement};
use super::load::{Layer, load_lookup};
use super::model::{DateShiftSpec, Defaults, HashSpec, QuarantineSpec, RuleSpec};
use super::replace;
use super::table::{self, OPTION_COLUMNS};
use super::tagspec::{Target, normalize_creator, parse_target};
use serde_saphyr::Spanned;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

// The compiled types and the loaders lived here before the split; callers still
// reach them through this path.
use super::compiled::TagMap;
pub use super::compiled::{
    CompiledProfile, Coverage, Decision, Diagnostic, Fallback, Origin, ProfileErrors,
    QuarantinePolicy, Rule, Severity,
};
pub use super::load::{compile_str, load, load_with_options, lookup_key};

const DEFAULT_DATE_SHIFT: (u32, u32) = (1, 3650);
const FULL_DATES: &str = "retain-long-full-dates";
const MODIFIED_DATES: &str = "retain-long-modified-dates";

/// A compiled rule before options are applied: the option cells still attached.
struct Pending {
    rule: Rule,
    cells: Vec<(&'static str, Code)>,
}

/// What the layers say, merged base first: a later layer overrides what it sets.
struct Merged {
    name: Option<String>,
    description: Option<String>,
    options: Vec<&'static str>,
    private_default: Fallback,
    public_default: Fallback,
    unknown_public: Fallback,
    date_shift_days: (u32, u32),
    hipaa_ages: bool,
    coarsen_times: bool,
    quarantine: QuarantinePolicy,
    pixels: super::pixels::PixelMerge,
    rules: BTreeMap<Target, Pending>,
    /// Every problem, in the order the layers state them.
    errors: Vec<Diagnostic>,
}

impl Default for Merged {
    fn default() -> Self {
        Merged {
            name: None,
            description: None,
            options: Vec::new(),
            private_default: Fallback::Remove,
            public_default: Fallback::Keep,
            unknown_public: Fallback::Remove,
            date_shift_days: DEFAULT_DATE_SHIFT,
            hipaa_ages: false,
            coarsen_times: false,
            quarantine: QuarantinePolicy::default(),
            pixels: super::pixels::PixelMerge::new(),
            rules: BTreeMap::new(),
            errors: Vec::new(),
        }
    }
}

pub(super) fn compile(
    layers: &[Layer],
    cli_options: &[String],
) -> Result<CompiledProfile, ProfileErrors> {
    let mut m = Merged::default();
    for layer in layers {
        m.read_layer(layer);
    }
    for opt in cli_options {
        m.add_option("command line", None, opt);
    }
    m.check_option_conflicts();
    let pixels = std::mem::take(&mut m.pixels).finish(&mut m.errors);
    if let Some(base) = layers.first() {
        m.check_foundation(base);
    }
    if !m.errors.is_empty() {
        return Err(ProfileErrors(m.errors));
    }
    // Table column order, so markers and reports list options the same way every run.
    m.options
        .sort_by_key(|o| OPTION_COLUMNS.iter().position(|(n, _)| n == o));
    let rules = finish_rules(std::mem::take(&mut m.rules), &m.options);
    let index = Index::build(&rules);
    let digest = digest(&m, &rules, &pixels);
    Ok(CompiledProfile {
        name: m.name.unwrap_or_else(|| "custom".into()),
        description: m.description.unwrap_or_default(),
        sources: layers.iter().map(|l| l.source.clone()).collect(),
        rules,
        exact: index.exact,
        patterns: index.patterns,
        private: index.private,
        private_default: m.private_default,
        public_default: m.public_default,
        unknown_public: m.unknown_public,
        shift_unlisted_dates: m.options.contains(&MODIFIED_DATES),
        options: m.options,
        date_shift_days: m.date_shift_days,
        hipaa_ages: m.hipaa_ages,
        coarsen_times: m.coarsen_times,
        quarantine: m.quarantine,
        pixels,
        digest,
    })
}

impl Merged {
    fn error(&mut self, source: &str, line: u64, message: String) {
        self.errors.push(Diagnostic {
            source: source.to_string(),
            line: Some(line),
            message,
            ..Diagnostic::default()
        });
    }

    fn read_layer(&mut self, layer: &Layer) {
        let file = &layer.file;
        let src = layer.source.as_str();
        if file.name.is_some() {
            self.name.clone_from(&file.name);
        }
        if file.description.is_some() {
            self.description.clone_from(&file.description);
        }
        for opt in &file.options {
            self.add_option(src, Some(opt.referenced.line()), &opt.value);
        }
        if let Some(ds) = &file.date_shift {
            self.read_date_shift(src, ds);
        }
        if let Some(h) = file.hipaa_ages {
            self.hipaa_ages = h;
        }
        if let Some(c) = file.coarsen_times {
            self.coarsen_times = c;
        }
        if let Some(q) = &file.quarantine {
            self.read_quarantine(src, q);
        }
        if let Some(p) = &file.pixels {
            self.pixels.read(src, p, &mut self.errors);
        }
        if let Some(d) = &file.defaults {
            self.read_defaults(src, d);
        }
        self.read_rules(layer);
    }

    fn add_option(&mut self, source: &str, line: Option<u64>, opt: &str) {
        match OPTION_COLUMNS.iter().find(|(n, _)| *n == opt) {
            Some((n, _)) => {
                if !self.options.contains(n) {
                    self.options.push(n);
                }
            }
            None => self.errors.push(Diagnostic {
                source: source.to_string(),
                line,
                message: format!(
                    "unknown option `{opt}` (known: {})",
                    OPTION_COLUMNS.map(|(n, _)| n).join(", ")
                ),
                ..Diagnostic::default()
            }),
        }
    }

    fn check_option_conflicts(&mut self) {
        if self.options.contains(&FULL_DATES) && self.options.contains(&MODIFIED_DATES) {
            self.errors.push(Diagnostic {
                source: "options".into(),
                line: None,
                message: format!("`{FULL_DATES}` and `{MODIFIED_DATES}` exclude each other"),
                ..Diagnostic::default()
            });
        }
    }

    /// The base layer (the one that extends nothing) must say what happens to the
    /// attributes no rule names. Without `extends` and `defaults`, an empty or
    /// short profile would silently keep every other attribute of every file.
    fn check_foundation(&mut self, base: &Layer) {
        let states_defaults = base.file.defaults.as_ref().is_some_and(|d| {
            d.private.is_some() || d.public.is_some() || d.unknown_public.is_some()
        });
        if base.file.extends.is_none() && !states_defaults {
            self.errors.push(Diagnostic {
                source: base.source.clone(),
                line: None,
                message: "names neither `extends` nor `defaults`: every attribute no rule \
                          names would be kept unchanged. Add `extends: basic` (or another \
                          profile), or state `defaults: {public: keep|remove}` to build a \
                          profile from nothing"
                    .into(),
                ..Diagnostic::default()
            });
        }
    }

    fn read_date_shift(&mut self, src: &str, ds: &Spanned<DateShiftSpec>) {
        let (lo, hi) = (ds.value.min_days, ds.value.max_days);
        if lo == 0 || lo > hi || hi > 36_500 {
            self.error(
                src,
                ds.referenced.line(),
                format!("date-shift needs 1 <= min-days <= max-days <= 36500, got {lo}..{hi}"),
            );
        } else {
            self.date_shift_days = (lo, hi);
        }
    }

    fn read_quarantine(&mut self, src: &str, q: &Spanned<QuarantineSpec>) {
        let line = q.referenced.line();
        let mut policy = self.quarantine.clone();
        for (field, value, slot) in [
            (
                "burned-in-annotation",
                &q.value.burned_in_annotation,
                &mut policy.burned_in_annotation,
            ),
            (
                "burned-in-unknown",
                &q.value.burned_in_unknown,
                &mut policy.burned_in_unknown,
            ),
            (
                "encapsulated-documents",
                &q.value.encapsulated_documents,
                &mut policy.encapsulated_documents,
            ),
        ] {
            if let Some(v) = value {
                match parse_severity(v) {
                    Some(sev) => *slot = sev,
                    None => self.error(
                        src,
                        line,
                        format!("quarantine.{field} must be fail, warn or off, got `{v}`"),
                    ),
                }
            }
        }
        if let Some(list) = &q.value.allowed_sop_classes {
            policy.allowed_sop_classes = Some(list.iter().map(|u| u.trim().to_string()).collect());
        }
        self.quarantine = policy;
    }

    fn read_defaults(&mut self, src: &str, d: &Defaults) {
        if let Some(p) = &d.private {
            match parse_fallback(&p.value) {
                Some(f) => self.private_default = f,
                None => self.error(
                    src,
                    p.referenced.line(),
                    format!(
                        "defaults.private must be `remove` or `keep`, got `{}`",
                        p.value
                    ),
                ),
            }
        }
        if let Some(p) = &d.unknown_public {
            match parse_fallback(&p.value) {
                Some(f) => self.unknown_public = f,
                None => self.error(
                    src,
                    p.referenced.line(),
                    format!(
                        "defaults.unknown-public must be `remove` or `keep`, got `{}`",
                        p.value
                    ),
                ),
            }
        }
        if let Some(p) = &d.public {
            match parse_fallback(&p.value) {
                Some(f) => self.public_default = f,
                None => self.error(
                    src,
                    p.referenced.line(),
                    format!(
                        "defaults.public must be `keep` or `remove`, got `{}`",
                        p.value
                    ),
                ),
            }
        }
    }

    /// A layer's rules replace the base's rules for the same target; two rules for one
    /// target within a layer are a conflict.
    fn read_rules(&mut self, layer: &Layer) {
        let src = layer.source.as_str();
        let mut seen: HashMap<Target, u64> = HashMap::new();
        for spanned in &layer.file.rules {
            let line = spanned.referenced.line();
            match compile_rule(&spanned.value, src, layer.dir.as_deref(), line) {
                Ok(pending) => {
                    let target = pending.rule.target.clone();
                    if let Some(first) = seen.insert(target.clone(), line) {
                        self.error(
                            src,
                            line,
                            format!(
                                "conflicting rules: {} is already set at line {first}",
                                target.describe()
                            ),
                        );
                    }
                    self.rules.insert(target, pending);
                }
                Err(messages) => {
                    for m in messages {
                        self.error(src, line, m);
                    }
                }
            }
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

/// The final rule list, in target order: option cells applied, option rules added.
fn finish_rules(merged: BTreeMap<Target, Pending>, options: &[&'static str]) -> Vec<Rule> {
    let mut rules: BTreeMap<Target, Rule> = merged
        .into_values()
        .map(|p| {
            let mut rule = p.rule;
            apply_option_cells(&mut rule, &p.cells, options);
            (rule.target.clone(), rule)
        })
        .collect();
    add_option_rules(&mut rules, options);
    rules.into_values().collect()
}

/// The lookup structures `CompiledProfile::decide` walks, holding indexes into the
/// rule list.
struct Index {
    exact: TagMap<usize>,
    patterns: Vec<(u32, u32, usize)>,
    private: TagMap<Vec<(String, u8, usize)>>,
}

impl Index {
    fn build(rules: &[Rule]) -> Index {
        let mut index = Index {
            exact: TagMap::default(),
            patterns: Vec::new(),
            private: TagMap::default(),
        };
        for (i, r) in rules.iter().enumerate() {
            match &r.target {
                Target::Tag(t) => {
                    index.exact.insert(*t, i);
                }
                Target::Pattern { mask, value } => index.patterns.push((*mask, *value, i)),
                Target::Private {
                    group,
                    elem,
                    creator,
                } => index.private.entry(u32::from(*group)).or_default().push((
                    creator.clone(),
                    *elem,
                    i,
                )),
            }
        }
        // Most specific first: the first pattern that matches decides.
        index
            .patterns
            .sort_by_key(|(mask, _, _)| std::cmp::Reverse(mask.count_ones()));
        index
    }
}

/// Hex SHA-256 over everything that changes behaviour; the text is part of the
/// digest's meaning, so it must not change between versions without reason.
fn digest(m: &Merged, rules: &[Rule], pixels: &super::pixels::PixelPolicy) -> String {
    let mut hasher = Sha256::new();
    hasher.update(format!(
        "private={:?};public={:?};unknown-public={:?};options={:?};shift={:?};hipaa={};coarsen={};quarantine={:?}\n",
        m.private_default,
        m.public_default,
        m.unknown_public,
        m.options,
        m.date_shift_days,
        m.hipaa_ages,
        m.coarsen_times,
        m.quarantine
    ));
    // Origins are where a rule was written, not what it does: left out.
    hasher.update(format!("pixels.unmatched={:?}\n", pixels.unmatched));
    for r in &pixels.rules {
        hasher.update(format!(
            "pixels.{}: {} -> {}; frames={:?}\n",
            r.name,
            r.when.describe(),
            r.regions.describe(),
            r.frames
        ));
    }
    for r in rules {
        hasher.update(format!("{}={}", r.target.describe(), r.action.describe()));
        if !r.vrs.is_empty() {
            let vrs: Vec<&str> = r
                .vrs
                .iter()
                .map(|v| dicom_core::VR::to_string(*v))
                .collect();
            hasher.update(format!(" vr={}", vrs.join("/")));
        }
        hasher.update("\n");
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
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
        vrs: Vec::new(),
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
        for (line, (group, elem, creator, vrs)) in table::safe_private_vrs().iter().enumerate() {
            let t = Target::Private {
                group: *group,
                elem: *elem,
                creator: creator.clone(),
            };
            // A site's own rule for the same element wins over the standard's list.
            rules.entry(t.clone()).or_insert_with(|| {
                let mut rule = builtin_rule(
                    t,
                    Action::Keep,
                    "Safe Private Attribute (PS3.15 E.3.10)",
                    "builtin:safe-private.csv",
                    line as u64 + 2,
                );
                // The list vouches for the element with its VR: the same tag stored
                // as, say, a PN or LT is something else (a name where a number was).
                rule.vrs.clone_from(vrs);
                rule
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
        code = Code::parse(&a.value);
        action_code_or_function(a, &mut problems)
    } else if let Some(v) = &spec.replace {
        replace_action(v, &spec.tag.value, target.as_ref(), &mut problems)
    } else if let Some(h) = &spec.hash {
        Some(hash_action(h, &mut problems))
    } else if let Some(l) = &spec.lookup {
        load_lookup(l, dir)
            .map(|t| Action::Lookup(Arc::new(t)))
            .map_err(|e| problems.push(e))
            .ok()
    } else {
        None
    };
    if let Some(t) = &spec.table
        && Code::parse(t).is_none()
    {
        problems.push(format!("`table: {t}` is not a Table E.1-1 action code"));
    }
    let cells = option_cells(spec, &mut problems);
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
                vrs: Vec::new(),
            },
            cells,
        }),
        _ => Err(problems),
    }
}

/// `action:` is a Table E.1-1 code or a function name.
fn action_code_or_function(a: &Spanned<String>, problems: &mut Vec<String>) -> Option<Action> {
    match (Code::parse(&a.value), named_action(&a.value)) {
        (Some(c), _) => Some(c.resolve()),
        (None, Some(action)) => Some(action),
        (None, None) => {
            problems.push(unknown_action(a));
            None
        }
    }
}

/// Where the rule names one standard attribute, its dictionary VR is known now: a
/// value it cannot hold is an error here rather than a failure of every file.
fn replace_action(
    text: &str,
    tag_text: &str,
    target: Option<&Target>,
    problems: &mut Vec<String>,
) -> Option<Action> {
    let vr = match target {
        Some(Target::Tag(t)) => replace::dictionary_vr(*t),
        _ => None,
    };
    let Some(vr) = vr else {
        return Some(Action::Replace(Replacement::new(text)));
    };
    Replacement::for_vr(text, vr)
        .map(Action::Replace)
        .map_err(|e| {
            problems.push(format!(
                "{e} (`{}` has VR {})",
                tag_text.trim(),
                vr.to_string()
            ))
        })
        .ok()
}

fn hash_action(h: &HashSpec, problems: &mut Vec<String>) -> Action {
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
    let name = h.alphabet.as_deref().unwrap_or("alnum");
    let alphabet = HashParams::alphabet_named(name).unwrap_or_else(|| {
        problems.push(format!(
            "hash alphabet must be alnum, digits or hex, got `{name}`"
        ));
        ALNUM
    });
    Action::Hash(HashParams {
        domain: h.domain.clone().unwrap_or_else(|| "value".into()),
        length,
        prefix,
        alphabet,
    })
}

/// The rule's per-option cells (`options: {retain-uids: K}`).
fn option_cells(spec: &RuleSpec, problems: &mut Vec<String>) -> Vec<(&'static str, Code)> {
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
    cells
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

    /// These fixtures test rules, not foundations: one that names neither
    /// `extends` nor `defaults` gets `defaults: {public: keep}` appended (after
    /// the last line, so line numbers stay).
    fn compile_text(text: &str) -> Result<CompiledProfile, ProfileErrors> {
        if text.contains("extends:") || text.contains("defaults:") {
            return compile_str("test.yaml", text);
        }
        compile_str(
            "test.yaml",
            &format!("{text}\ndefaults: {{public: keep}}\n"),
        )
    }

    #[test]
    fn a_profile_from_nothing_must_state_its_defaults() {
        let err = compile_str("t.yaml", "rules: [{tag: PatientName, action: X}]").unwrap_err();
        assert!(
            err.0[0]
                .message
                .contains("neither `extends` nor `defaults`"),
            "{err}"
        );
        assert!(compile_str("t.yaml", "defaults: {private: remove}").is_ok());
        assert!(compile_str("t.yaml", "extends: basic").is_ok());
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

    #[test]
    fn replace_values_are_checked_when_the_vr_is_known() {
        let err = compile_text(
            "rules:\n  - {tag: Rows, replace: \"abc\"}\n  - {tag: Modality, replace: ct}\n  - {tag: ReferencedStudySequence, replace: x}\n  - {tag: StudyDate, replace: 2024-01-01}\n",
        )
        .unwrap_err();
        let lines: Vec<_> = err.0.iter().map(|d| d.line).collect();
        assert_eq!(lines, [Some(2), Some(3), Some(4), Some(5)], "{err}");
        assert!(err.0[0].message.contains("`Rows` has VR US"), "{err}");

        let p = compile_text(
            "rules:\n  - {tag: Rows, replace: \"512\"}\n  - {tag: \"(60xx,0022)\", replace: \"anything goes\"}\n",
        )
        .unwrap();
        let Action::Replace(r) = p.decide(0x0028_0010, None).action() else {
            panic!("a replace rule");
        };
        assert_eq!(
            r.value_for(dicom_core::VR::US),
            Ok(dicom_core::PrimitiveValue::from(512u16))
        );
        // Stored with another VR than the dictionary's: checked again per element.
        assert!(r.value_for(dicom_core::VR::UI).is_ok());
        assert!(r.value_for(dicom_core::VR::SQ).is_err());
        // A pattern's VR is known only per element.
        let Action::Replace(r) = p.decide(0x6002_0022, None).action() else {
            panic!("a replace rule");
        };
        assert!(r.value_for(dicom_core::VR::LO).is_ok());
        assert!(r.value_for(dicom_core::VR::US).is_err());
    }

    #[test]
    fn replace_keeps_its_digest_text() {
        let p = compile_text("rules: [{tag: InstitutionName, replace: SITE}]").unwrap();
        assert_eq!(p.rules[0].action.describe(), "replace \"SITE\"");
        assert_eq!(p.rules[0].action, Action::Replace("SITE".into()));
    }
}
