//! The `pixels:` section of a profile: rules that say which images carry text burned
//! into their pixels and where, compiled once into [`PixelPolicy`]. A rule is a
//! signature (conditions on header elements at any depth) plus the regions to blank.
//! Matching a file against the rules and blanking its frames is `crate::pixels`'s job;
//! this module only parses and validates.

use super::compiled::{Diagnostic, Origin};
use super::tagspec::{Target, parse_target};
use serde::Deserialize;
use serde_saphyr::Spanned;

/// Largest image side a rectangle may plausibly reach (PS3.3 Rows/Columns are US,
/// but no modality writes images wider than this; a bigger one is a typo).
const PLAUSIBLE_SIDE: u64 = 16_384;

/// The rules every profile starts from, evaluated after the profile's own rules.
const BUILTIN_RULES: &str = include_str!("../../profiles/pixels-builtin.yaml");

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PixelsSpec {
    /// What becomes of a file that may carry burned-in text and that no rule matches:
    /// `quarantine` (default), `blank` or `ocr`.
    pub unmatched: Option<Spanned<String>>,
    /// Whether the built-in rules (profiles/pixels-builtin.yaml) follow this
    /// profile's own (default true).
    pub builtin_rules: Option<bool>,
    #[serde(default)]
    pub rules: Vec<Spanned<PixelRuleSpec>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PixelRuleSpec {
    pub name: String,
    /// The signature: which files this rule is for.
    pub when: Spanned<CondSpec>,
    /// `all`, or a list of rectangles `[x, y, w, h]`.
    pub blank: Option<BlankSpec>,
    /// `ultrasound-regions`: blank everything outside (0018,6011).
    pub keep: Option<Spanned<String>>,
    /// 0-based frame numbers the rectangles apply to (default: every frame).
    pub frames: Option<Vec<u32>>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum BlankSpec {
    Word(Spanned<String>),
    Rects(Vec<Spanned<Vec<i64>>>),
}

/// A scalar in a condition: YAML may write `Rows: 480` as a number.
#[derive(Debug, Deserialize, Clone)]
#[serde(untagged)]
pub enum Scalar {
    /// `YES`/`NO` unquoted are booleans to a YAML 1.1 reader: read back as the
    /// code strings they mean here.
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
}

impl Scalar {
    fn text(&self) -> String {
        match self {
            Scalar::Bool(true) => "YES".into(),
            Scalar::Bool(false) => "NO".into(),
            Scalar::Int(i) => i.to_string(),
            Scalar::Float(f) => f.to_string(),
            Scalar::Text(s) => s.clone(),
        }
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CondSpec {
    pub all: Option<Vec<CondSpec>>,
    pub any: Option<Vec<CondSpec>>,
    pub tag: Option<String>,
    pub equals: Option<Scalar>,
    pub contains: Option<Scalar>,
    pub prefix: Option<Scalar>,
    pub present: Option<bool>,
    pub absent: Option<bool>,
}

/// A test on the values of one element (any depth, any value of a multi-valued
/// element). Text comparisons ignore case and padding.
#[derive(Debug, Clone, PartialEq)]
pub enum Test {
    Equals(String),
    Contains(String),
    Prefix(String),
    Present,
    Absent,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Cond {
    All(Vec<Cond>),
    Any(Vec<Cond>),
    Test { tag: u32, test: Test },
}

impl Cond {
    /// Appends every tag the condition tests.
    pub fn tags(&self, out: &mut Vec<u32>) {
        match self {
            Cond::All(list) | Cond::Any(list) => list.iter().for_each(|c| c.tags(out)),
            Cond::Test { tag, .. } => out.push(*tag),
        }
    }

    /// The condition as a reason may show it: tags and the profile's own words,
    /// never a file's value.
    pub fn describe(&self) -> String {
        match self {
            Cond::All(c) => format!(
                "all of [{}]",
                c.iter().map(Cond::describe).collect::<Vec<_>>().join(", ")
            ),
            Cond::Any(c) => format!(
                "any of [{}]",
                c.iter().map(Cond::describe).collect::<Vec<_>>().join(", ")
            ),
            Cond::Test { tag, test } => {
                let t = Target::Tag(*tag).describe();
                match test {
                    Test::Equals(v) => format!("{t} equals \"{v}\""),
                    Test::Contains(v) => format!("{t} contains \"{v}\""),
                    Test::Prefix(v) => format!("{t} starts with \"{v}\""),
                    Test::Present => format!("{t} present"),
                    Test::Absent => format!("{t} absent"),
                }
            }
        }
    }
}

/// A rectangle in pixel coordinates: columns x..x+w, rows y..y+h.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Regions {
    /// Every pixel of the frame.
    All,
    Rects(Vec<Rect>),
    /// Everything outside the Sequence of Ultrasound Regions (0018,6011).
    KeepUltrasoundRegions,
}

impl Regions {
    pub fn describe(&self) -> String {
        match self {
            Regions::All => "blank: all".into(),
            Regions::KeepUltrasoundRegions => "keep: ultrasound-regions".into(),
            Regions::Rects(r) => format!(
                "blank: {}",
                r.iter()
                    .map(|r| format!("[{}, {}, {}, {}]", r.x, r.y, r.w, r.h))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct PixelRule {
    pub name: String,
    pub when: Cond,
    pub regions: Regions,
    /// Frames the regions apply to; None: every frame.
    pub frames: Option<Vec<u32>>,
    pub origin: Origin,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unmatched {
    /// The file is refused: the gate never opens by default.
    Quarantine,
    /// Every frame is blanked.
    Blank,
    /// Text OCR finds is blanked.
    Ocr,
}

impl Unmatched {
    /// The keyword a profile writes.
    pub fn keyword(self) -> &'static str {
        match self {
            Unmatched::Quarantine => "quarantine",
            Unmatched::Blank => "blank",
            Unmatched::Ocr => "ocr",
        }
    }
}

/// The compiled `pixels:` section: rules in the order they are tried.
#[derive(Debug, Clone, PartialEq)]
pub struct PixelPolicy {
    pub rules: Vec<PixelRule>,
    pub unmatched: Unmatched,
    /// Every tag the rules' conditions name, sorted: a file's header is walked once
    /// for these (listing them per file was 1-2% of a run over small files).
    tags: Vec<u32>,
}

impl Default for PixelPolicy {
    fn default() -> Self {
        PixelPolicy::new(Vec::new(), Unmatched::Quarantine)
    }
}

impl PixelPolicy {
    pub fn new(rules: Vec<PixelRule>, unmatched: Unmatched) -> Self {
        let mut tags = Vec::new();
        for r in &rules {
            r.when.tags(&mut tags);
        }
        tags.sort_unstable();
        tags.dedup();
        PixelPolicy {
            rules,
            unmatched,
            tags,
        }
    }

    /// The tags any rule's condition names, sorted and distinct.
    pub fn tags(&self) -> &[u32] {
        &self.tags
    }
}

/// Pixel sections of the layers, merged base first.
#[derive(Default)]
pub(super) struct PixelMerge {
    /// (layer index, rule): later layers are tried first.
    rules: Vec<(usize, PixelRule)>,
    unmatched: Option<Unmatched>,
    builtin: bool,
    layers: usize,
}

impl PixelMerge {
    pub(super) fn new() -> Self {
        PixelMerge {
            builtin: true,
            ..PixelMerge::default()
        }
    }

    /// Reads one layer's section; problems go to `errors`.
    pub(super) fn read(
        &mut self,
        src: &str,
        spec: &Spanned<PixelsSpec>,
        errors: &mut Vec<Diagnostic>,
    ) {
        let layer = self.layers;
        self.layers += 1;
        let mut err = |line: u64, message: String| {
            errors.push(Diagnostic {
                source: src.to_string(),
                line: Some(line),
                message,
                ..Diagnostic::default()
            })
        };
        if let Some(u) = &spec.value.unmatched {
            match u.value.trim() {
                "quarantine" => self.unmatched = Some(Unmatched::Quarantine),
                "blank" => self.unmatched = Some(Unmatched::Blank),
                "ocr" => self.unmatched = Some(Unmatched::Ocr),
                other => err(
                    u.referenced.line(),
                    format!("pixels.unmatched must be quarantine, blank or ocr, got `{other}`"),
                ),
            }
        }
        if let Some(b) = spec.value.builtin_rules {
            self.builtin = b;
        }
        for r in &spec.value.rules {
            let line = r.referenced.line();
            match compile_rule(&r.value, src, line) {
                Ok(rule) => {
                    // A later layer's rule of the same name replaces the base's.
                    self.rules.retain(|(_, old)| old.name != rule.name);
                    self.rules.push((layer, rule));
                }
                Err(problems) => {
                    for (l, m) in problems {
                        err(l.unwrap_or(line), m);
                    }
                }
            }
        }
    }

    pub(super) fn finish(mut self, errors: &mut Vec<Diagnostic>) -> PixelPolicy {
        // Most specific layer first; within a layer, the written order.
        self.rules
            .sort_by_key(|(layer, _)| std::cmp::Reverse(*layer));
        let mut rules: Vec<PixelRule> = self.rules.into_iter().map(|(_, r)| r).collect();
        if self.builtin {
            let builtin = builtin_rules(errors);
            for r in builtin {
                if !rules.iter().any(|own| own.name == r.name) {
                    rules.push(r);
                }
            }
        }
        PixelPolicy::new(rules, self.unmatched.unwrap_or(Unmatched::Quarantine))
    }
}

/// The built-in rule set, parsed once per process (it ships inside the binary, so a
/// problem in it is a bug a unit test catches). A run parses it on a second
/// thread while the profile loads ([`preload_builtin`]): about 2 ms of startup,
/// which is serial time in every run.
fn builtin_rules(errors: &mut Vec<Diagnostic>) -> Vec<PixelRule> {
    let (rules, problems) = builtin();
    errors.extend(problems.iter().cloned());
    rules.clone()
}

fn builtin() -> &'static (Vec<PixelRule>, Vec<Diagnostic>) {
    static BUILTIN: std::sync::OnceLock<(Vec<PixelRule>, Vec<Diagnostic>)> =
        std::sync::OnceLock::new();
    BUILTIN.get_or_init(|| {
        let mut errors = Vec::new();
        let rules = parse_builtin_rules(&mut errors);
        (rules, errors)
    })
}

/// Parses the built-in pixel rules now, so that a compile later finds them ready.
pub fn preload_builtin() {
    builtin();
}

fn parse_builtin_rules(errors: &mut Vec<Diagnostic>) -> Vec<PixelRule> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        pixels: Spanned<PixelsSpec>,
    }
    let source = "builtin:pixels";
    match serde_saphyr::from_str::<File>(BUILTIN_RULES) {
        Ok(f) => {
            let mut m = PixelMerge::default();
            m.read(source, &f.pixels, errors);
            m.rules.into_iter().map(|(_, r)| r).collect()
        }
        Err(e) => {
            errors.push(Diagnostic {
                source: source.into(),
                line: None,
                message: e.to_string(),
                ..Diagnostic::default()
            });
            Vec::new()
        }
    }
}

type Problems = Vec<(Option<u64>, String)>;

fn compile_rule(spec: &PixelRuleSpec, src: &str, line: u64) -> Result<PixelRule, Problems> {
    let mut problems: Problems = Vec::new();
    let name = spec.name.trim().to_string();
    if name.is_empty() {
        problems.push((None, "a pixel rule needs a non-empty `name`".into()));
    }
    let when_line = spec.when.referenced.line();
    let when = match compile_cond(&spec.when.value) {
        Ok(c) => Some(c),
        Err(m) => {
            problems.push((Some(when_line), format!("pixel rule `{name}`: {m}")));
            None
        }
    };
    let regions = match (&spec.blank, &spec.keep) {
        (Some(_), Some(_)) | (None, None) => {
            problems.push((
                None,
                format!(
                    "pixel rule `{name}` needs exactly one of `blank` (all or [[x, y, w, h], ...]) \
                     and `keep` (ultrasound-regions)"
                ),
            ));
            None
        }
        (None, Some(k)) => {
            if k.value.trim() == "ultrasound-regions" {
                Some(Regions::KeepUltrasoundRegions)
            } else {
                problems.push((
                    Some(k.referenced.line()),
                    format!(
                        "pixel rule `{name}`: keep must be `ultrasound-regions`, got `{}`",
                        k.value
                    ),
                ));
                None
            }
        }
        (Some(BlankSpec::Word(w)), None) => {
            if w.value.trim() == "all" {
                Some(Regions::All)
            } else {
                problems.push((
                    Some(w.referenced.line()),
                    format!(
                        "pixel rule `{name}`: blank must be `all` or a list of [x, y, w, h], got `{}`",
                        w.value
                    ),
                ));
                None
            }
        }
        (Some(BlankSpec::Rects(list)), None) => {
            let mut rects = Vec::new();
            if list.is_empty() {
                problems.push((
                    None,
                    format!("pixel rule `{name}`: blank lists no rectangle"),
                ));
            }
            for r in list {
                match rect(&r.value) {
                    Ok(rc) => rects.push(rc),
                    // Inside an untagged enum the span is lost (line 0): the
                    // rule's line stands in.
                    Err(m) => problems.push((
                        Some(r.referenced.line()).filter(|l| *l > 0),
                        format!("pixel rule `{name}`: {m}"),
                    )),
                }
            }
            Some(Regions::Rects(rects))
        }
    };
    if spec.frames.as_ref().is_some_and(Vec::is_empty) {
        problems.push((None, format!("pixel rule `{name}`: frames lists no frame")));
    }
    match (when, regions) {
        (Some(when), Some(regions)) if problems.is_empty() => Ok(PixelRule {
            name,
            when,
            regions,
            frames: spec.frames.clone(),
            origin: Origin {
                source: src.to_string(),
                line,
            },
        }),
        _ => Err(problems),
    }
}

fn rect(v: &[i64]) -> Result<Rect, String> {
    let [x, y, w, h] = v else {
        return Err(format!(
            "a rectangle is [x, y, w, h], got {} number(s)",
            v.len()
        ));
    };
    if [x, y, w, h].iter().any(|n| **n < 0) {
        return Err(format!("rectangle {v:?} has a negative number"));
    }
    if *w == 0 || *h == 0 {
        return Err(format!("rectangle {v:?} is empty (width or height 0)"));
    }
    let plausible = PLAUSIBLE_SIDE as i64;
    if x + w > plausible || y + h > plausible {
        return Err(format!(
            "rectangle {v:?} reaches past {PLAUSIBLE_SIDE} pixels: outside any plausible image"
        ));
    }
    Ok(Rect {
        x: *x as u32,
        y: *y as u32,
        w: *w as u32,
        h: *h as u32,
    })
}

fn compile_cond(c: &CondSpec) -> Result<Cond, String> {
    let forms = [c.all.is_some(), c.any.is_some(), c.tag.is_some()]
        .iter()
        .filter(|b| **b)
        .count();
    if forms != 1 {
        return Err(
            "a condition is exactly one of `all: [...]`, `any: [...]` or `tag:` with one test"
                .into(),
        );
    }
    if let Some(list) = c.all.as_ref().or(c.any.as_ref()) {
        if c.equals.is_some()
            || c.contains.is_some()
            || c.prefix.is_some()
            || c.present.is_some()
            || c.absent.is_some()
        {
            return Err("`all`/`any` take a list of conditions, not a test".into());
        }
        if list.is_empty() {
            return Err("`all`/`any` lists no condition".into());
        }
        let inner = list
            .iter()
            .map(compile_cond)
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(if c.all.is_some() {
            Cond::All(inner)
        } else {
            Cond::Any(inner)
        });
    }
    let tag_text = c.tag.as_deref().unwrap_or_default();
    let tag = match parse_target(tag_text, None)? {
        Target::Tag(t) => t,
        _ => return Err(format!("condition tag `{tag_text}` must name one element")),
    };
    let mut tests = Vec::new();
    let text = |s: &Scalar| s.text().trim().to_ascii_uppercase();
    if let Some(v) = &c.equals {
        tests.push(Test::Equals(text(v)));
    }
    if let Some(v) = &c.contains {
        tests.push(Test::Contains(text(v)));
    }
    if let Some(v) = &c.prefix {
        tests.push(Test::Prefix(text(v)));
    }
    match c.present {
        Some(true) => tests.push(Test::Present),
        Some(false) => tests.push(Test::Absent),
        None => {}
    }
    match c.absent {
        Some(true) => tests.push(Test::Absent),
        Some(false) => tests.push(Test::Present),
        None => {}
    }
    match tests.len() {
        1 => Ok(Cond::Test {
            tag,
            test: tests.remove(0),
        }),
        0 => Err(format!(
            "condition on `{tag_text}` needs one test: equals, contains, prefix, present or absent"
        )),
        _ => Err(format!(
            "condition on `{tag_text}` has more than one test: use `all` to combine them"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(yaml: &str) -> Result<PixelPolicy, Vec<Diagnostic>> {
        #[derive(Deserialize)]
        struct File {
            pixels: Spanned<PixelsSpec>,
        }
        let f: File = serde_saphyr::from_str(yaml).map_err(|e| {
            vec![Diagnostic {
                source: "t".into(),
                line: None,
                message: e.to_string(),
                ..Diagnostic::default()
            }]
        })?;
        let mut errors = Vec::new();
        let mut m = PixelMerge::new();
        m.read("t.yaml", &f.pixels, &mut errors);
        let p = m.finish(&mut errors);
        if errors.is_empty() {
            Ok(p)
        } else {
            Err(errors)
        }
    }

    #[test]
    fn the_builtin_rules_compile() {
        let mut errors = Vec::new();
        let rules = builtin_rules(&mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        assert!(
            rules
                .iter()
                .any(|r| r.regions == Regions::KeepUltrasoundRegions)
        );
    }

    #[test]
    fn rules_compile_with_conditions_and_regions() {
        let p = policy(
            "pixels:\n  unmatched: blank\n  builtin-rules: false\n  rules:\n    - name: dose\n      when:\n        all:\n          - {tag: Modality, equals: ct}\n          - any: [{tag: Manufacturer, contains: GE}, {tag: Rows, equals: 512}]\n      blank: [[0, 0, 512, 40]]\n      frames: [0]\n",
        )
        .unwrap();
        assert_eq!(p.unmatched, Unmatched::Blank);
        assert_eq!(p.rules.len(), 1);
        let r = &p.rules[0];
        assert_eq!(r.frames, Some(vec![0]));
        assert_eq!(
            r.regions,
            Regions::Rects(vec![Rect {
                x: 0,
                y: 0,
                w: 512,
                h: 40
            }])
        );
        let Cond::All(c) = &r.when else { panic!() };
        assert_eq!(
            c[0],
            Cond::Test {
                tag: 0x0008_0060,
                test: Test::Equals("CT".into())
            }
        );
        let Cond::Any(a) = &c[1] else { panic!() };
        assert_eq!(
            a[1],
            Cond::Test {
                tag: 0x0028_0010,
                test: Test::Equals("512".into())
            }
        );
    }

    #[test]
    fn bad_rules_are_reported_with_lines() {
        let e = policy(
            "pixels:\n  rules:\n    - name: a\n      when: {tag: Modality, equals: US}\n      blank: [[0, 0, 0, 10]]\n    - name: b\n      when: {tag: Modality, equals: US}\n      blank: [[0, 0, 99999, 10]]\n    - name: c\n      when: {tag: NotAKeyword, present: true}\n      blank: all\n    - name: d\n      when: {tag: Modality, equals: US}\n      keep: everything\n",
        )
        .unwrap_err();
        let text: Vec<String> = e.iter().map(|d| d.to_string()).collect();
        assert!(
            text[0].contains("t.yaml:3") && text[0].contains("empty"),
            "{text:?}"
        );
        assert!(
            text[1].contains("t.yaml:6") && text[1].contains("plausible"),
            "{text:?}"
        );
        assert!(text[2].contains("t.yaml:10"), "{text:?}");
        assert!(
            text[3].contains("t.yaml:14") && text[3].contains("ultrasound-regions"),
            "{text:?}"
        );
        let e = policy("pixels:\n  rules:\n    - name: a\n      when: {tag: Modality, equal: US}\n      blank: all\n").unwrap_err();
        assert!(e[0].message.contains("equal"), "{e:?}");
    }

    #[test]
    fn unmatched_defaults_to_quarantine() {
        assert_eq!(
            policy("pixels: {}\n").unwrap().unmatched,
            Unmatched::Quarantine
        );
    }
}
