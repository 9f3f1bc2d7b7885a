//! Property tests: the profile compiler, tag notation parsing, date shifting, UID
//! remapping and the engine never panic on arbitrary input and keep their promises;
//! plus the full read -> de-identify -> write path over every input kept in
//! `fuzz/regressions/` (crashes the fuzzer found once).
//!
//! Case counts stay small so the suite runs in seconds; `PROPTEST_CASES=N` raises them
//! for a longer run by hand.

use dicom_core::value::{DataSetSequence, Value};
use dicom_core::{DataElement, Length, PrimitiveValue, Tag, VR};
use dicom_deid::deid::dates::{shift_da, shift_dt};
use dicom_deid::deid::{Engine, Key, Pseudonymizer};
use dicom_deid::io::read::{Classified, read};
use dicom_deid::io::source::open_file;
use dicom_deid::pipeline::{Plan, Processed, process};
use dicom_deid::profile::compile::{CompiledProfile, compile_str, load_with_options};
use dicom_deid::profile::tagspec::{Target, parse_target};
use dicom_deid::profile::{Action, Code, Decision};
use dicom_deid::store::Sink;
use dicom_deid::store::fs::FsSink;
use dicom_object::InMemDicomObject;
use proptest::prelude::*;
use proptest::test_runner::Config;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

fn config() -> Config {
    Config {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(256),
        // Shrunk failures are printed; nothing is written next to the sources.
        failure_persistence: None,
        ..Config::default()
    }
}

fn key() -> &'static Key {
    static KEY: OnceLock<Key> = OnceLock::new();
    KEY.get_or_init(|| Key::random().expect("random key"))
}

fn basic() -> &'static CompiledProfile {
    static P: OnceLock<CompiledProfile> = OnceLock::new();
    P.get_or_init(|| dicom_deid::profile::load("basic").expect("basic compiles"))
}

/// Options that switch on date shifting and text cleaning in the engine.
const OPTIONS: [&str; 4] = [
    "retain-long-modified-dates",
    "clean-descriptors",
    "clean-structured-content",
    "clean-graphics",
];

// ---------------------------------------------------------------------------
// (a) The profile compiler
// ---------------------------------------------------------------------------

const KEYWORDS: [&str; 16] = [
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientAge",
    "StudyDate",
    "StudyDescription",
    "SeriesDescription",
    "InstitutionName",
    "AccessionNumber",
    "StudyInstanceUID",
    "SOPInstanceUID",
    "ReferringPhysicianName",
    "OperatorsName",
    "StationName",
    "BodyPartExamined",
    "Manufacturer",
];

const ACTIONS: [&str; 18] = [
    "D",
    "Z",
    "X",
    "K",
    "C",
    "U",
    "Z/D",
    "X/Z",
    "X/D",
    "X/Z/D",
    "X/Z/U*",
    "keep",
    "remove",
    "empty",
    "dummy",
    "clean",
    "hash-uid",
    "date-shift",
];

/// Tag notations, valid and not: keywords, (gggg,eeee), bare hex, x patterns, private
/// (gggg,xxee), junk.
fn tag_text() -> impl Strategy<Value = String> {
    let hex4 = "[0-9A-Fa-fxX]{4}";
    prop_oneof![
        prop::sample::select(KEYWORDS.to_vec()).prop_map(str::to_string),
        (any::<u16>(), any::<u16>()).prop_map(|(g, e)| format!("({g:04X},{e:04X})")),
        (any::<u16>(), any::<u16>()).prop_map(|(g, e)| format!("{g:04x},{e:04x}")),
        any::<u32>().prop_map(|t| format!("{t:08X}")),
        (hex4, hex4).prop_map(|(g, e)| format!("({g},{e})")),
        (0u16..0x8000, any::<u8>()).prop_map(|(g, e)| format!("({:04X},xx{e:02X})", g * 2 + 1)),
        "[A-Za-z0-9(),x ]{0,14}",
        any::<String>(),
    ]
}

fn yaml_quote(s: &str) -> String {
    // A JSON string is a valid YAML double-quoted scalar.
    serde_json::to_string(s).expect("a string serialises")
}

#[derive(Debug, Clone)]
enum RuleBody {
    Action(String),
    Replace(String),
    Hash {
        domain: String,
        length: Option<i64>,
        prefix: Option<String>,
    },
    Lookup(String),
    /// Two of the exclusive fields at once: always an error.
    Both(String, String),
    Nothing,
}

#[derive(Debug, Clone)]
struct RuleSpec {
    tag: String,
    creator: Option<String>,
    body: RuleBody,
    options: Vec<(String, String)>,
}

fn rule_body() -> impl Strategy<Value = RuleBody> {
    let action = prop_oneof![
        4 => prop::sample::select(ACTIONS.to_vec()).prop_map(str::to_string),
        1 => "[A-Z/*a-z-]{0,8}",
    ];
    prop_oneof![
        6 => action.prop_map(RuleBody::Action),
        2 => any::<String>().prop_map(RuleBody::Replace),
        2 => (
            "[a-z-]{0,12}",
            prop::option::of(-2i64..100),
            prop::option::of("[A-Z]{0,20}")
        )
            .prop_map(|(domain, length, prefix)| RuleBody::Hash {
                domain,
                length,
                prefix
            }),
        1 => "[a-z]{1,8}".prop_map(|f| RuleBody::Lookup(format!("no-such-dir-proptest/{f}.csv"))),
        1 => ("[A-Z]{1,3}", "[A-Z]{0,8}").prop_map(|(a, r)| RuleBody::Both(a, r)),
        1 => Just(RuleBody::Nothing),
    ]
}

fn rule_spec() -> impl Strategy<Value = RuleSpec> {
    (
        tag_text(),
        prop::option::of(prop_oneof!["[A-Z ]{0,20}", any::<String>()]),
        rule_body(),
        prop::collection::vec(
            (
                prop_oneof![
                    Just("clean-descriptors".to_string()),
                    Just("retain-uids".to_string()),
                    "[a-z-]{1,12}",
                ],
                prop_oneof![Just("K".to_string()), Just("C".to_string()), "[A-Z]{1,2}"],
            ),
            0..3,
        ),
    )
        .prop_map(|(tag, creator, body, options)| RuleSpec {
            tag,
            creator,
            body,
            options,
        })
}

fn render_rule(r: &RuleSpec) -> String {
    let mut fields = vec![format!("tag: {}", yaml_quote(&r.tag))];
    if let Some(c) = &r.creator {
        fields.push(format!("creator: {}", yaml_quote(c)));
    }
    match &r.body {
        RuleBody::Action(a) => fields.push(format!("action: {}", yaml_quote(a))),
        RuleBody::Replace(v) => fields.push(format!("replace: {}", yaml_quote(v))),
        RuleBody::Hash {
            domain,
            length,
            prefix,
        } => {
            let mut h = vec![format!("domain: {}", yaml_quote(domain))];
            if let Some(l) = length {
                h.push(format!("length: {l}"));
            }
            if let Some(p) = prefix {
                h.push(format!("prefix: {}", yaml_quote(p)));
            }
            fields.push(format!("hash: {{{}}}", h.join(", ")));
        }
        RuleBody::Lookup(f) => fields.push(format!("lookup: {{file: {}}}", yaml_quote(f))),
        RuleBody::Both(a, v) => {
            fields.push(format!("action: {}", yaml_quote(a)));
            fields.push(format!("replace: {}", yaml_quote(v)));
        }
        RuleBody::Nothing => {}
    }
    if !r.options.is_empty() {
        let o: Vec<String> = r
            .options
            .iter()
            .map(|(k, v)| format!("{}: {}", yaml_quote(k), yaml_quote(v)))
            .collect();
        fields.push(format!("options: {{{}}}", o.join(", ")));
    }
    format!("  - {{{}}}\n", fields.join(", "))
}

#[derive(Debug, Clone)]
struct ProfileSpec {
    extends_basic: bool,
    name: Option<String>,
    private: Option<String>,
    public: Option<String>,
    options: Vec<String>,
    date_shift: Option<(i64, i64)>,
    hipaa: Option<bool>,
    rules: Vec<RuleSpec>,
}

fn profile_spec() -> impl Strategy<Value = ProfileSpec> {
    let fallback = prop::option::of(prop_oneof![
        Just("keep".to_string()),
        Just("remove".to_string()),
        Just("K".to_string()),
        "[a-z]{0,6}",
    ]);
    let option = prop_oneof![
        4 => prop::sample::select(vec![
            "retain-safe-private",
            "retain-uids",
            "retain-device-identity",
            "retain-institution-identity",
            "retain-patient-characteristics",
            "retain-long-full-dates",
            "retain-long-modified-dates",
            "clean-descriptors",
            "clean-structured-content",
            "clean-graphics",
        ])
        .prop_map(str::to_string),
        1 => "[a-z-]{0,16}",
    ];
    (
        any::<bool>(),
        prop::option::of("[ -~]{0,20}"),
        fallback.clone(),
        fallback,
        prop::collection::vec(option, 0..3),
        prop::option::of((-1i64..40_000, -1i64..40_000)),
        prop::option::of(any::<bool>()),
        prop::collection::vec(rule_spec(), 0..12),
    )
        .prop_map(
            |(extends_basic, name, private, public, options, date_shift, hipaa, rules)| {
                ProfileSpec {
                    extends_basic,
                    name,
                    private,
                    public,
                    options,
                    date_shift,
                    hipaa,
                    rules,
                }
            },
        )
}

fn render_profile(p: &ProfileSpec) -> String {
    let mut y = String::new();
    if p.extends_basic {
        y.push_str("extends: basic\n");
    }
    if let Some(n) = &p.name {
        y.push_str(&format!("name: {}\n", yaml_quote(n)));
    }
    if p.private.is_some() || p.public.is_some() {
        y.push_str("defaults:\n");
        if let Some(v) = &p.private {
            y.push_str(&format!("  private: {}\n", yaml_quote(v)));
        }
        if let Some(v) = &p.public {
            y.push_str(&format!("  public: {}\n", yaml_quote(v)));
        }
    }
    if !p.options.is_empty() {
        let o: Vec<String> = p.options.iter().map(|s| yaml_quote(s)).collect();
        y.push_str(&format!("options: [{}]\n", o.join(", ")));
    }
    if let Some((lo, hi)) = p.date_shift {
        y.push_str(&format!("date-shift: {{min-days: {lo}, max-days: {hi}}}\n"));
    }
    if let Some(h) = p.hipaa {
        y.push_str(&format!("hipaa-ages: {h}\n"));
    }
    if !p.rules.is_empty() {
        y.push_str("rules:\n");
        for r in &p.rules {
            y.push_str(&render_rule(r));
        }
    }
    y
}

/// The renderer writes real profiles: a plain one compiles and means what it says.
#[test]
fn rendered_profiles_compile() {
    let spec = ProfileSpec {
        extends_basic: true,
        name: Some("site \"x\": y".into()),
        private: Some("keep".into()),
        public: None,
        options: vec!["clean-descriptors".into()],
        date_shift: Some((1, 30)),
        hipaa: Some(true),
        rules: vec![
            RuleSpec {
                tag: "PatientName".into(),
                creator: None,
                body: RuleBody::Action("K".into()),
                options: vec![],
            },
            RuleSpec {
                tag: "(0029,xx10)".into(),
                creator: Some("ACME 1".into()),
                body: RuleBody::Action("X".into()),
                options: vec![],
            },
            RuleSpec {
                tag: "AccessionNumber".into(),
                creator: None,
                body: RuleBody::Hash {
                    domain: "acc".into(),
                    length: Some(12),
                    prefix: Some("A".into()),
                },
                options: vec![],
            },
            RuleSpec {
                tag: "InstitutionName".into(),
                creator: None,
                body: RuleBody::Replace("SITE é".into()),
                options: vec![],
            },
        ],
    };
    let text = render_profile(&spec);
    let p = compile_str("x.yaml", &text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert!(matches!(p.decide(0x0010_0010, None), Decision::Rule(r) if r.action == Action::Keep));
    assert!(
        matches!(p.decide(0x0029_1010, Some("ACME 1")), Decision::Rule(r) if r.action == Action::Remove)
    );
    assert!(
        matches!(p.decide(0x0008_0080, None), Decision::Rule(r) if r.action == Action::Replace("SITE é".into()))
    );
}

/// Pieces of profile-like YAML, glued in random order: mostly broken documents.
fn yamlish() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("extends: basic\n".to_string()),
        Just("name: x\n".to_string()),
        Just("defaults:\n".to_string()),
        Just("  private: keep\n".to_string()),
        Just("  public: remove\n".to_string()),
        Just("rules:\n".to_string()),
        Just("  - {tag: PatientName, action: K}\n".to_string()),
        Just("  - tag: \"(0010,0020)\"\n    action: Z/D\n".to_string()),
        Just("  - {tag: \"(60xx,3000)\", action: X}\n".to_string()),
        Just("  - {tag: \"(0029,xx10)\", creator: ACME, action: K}\n".to_string()),
        Just("  - {tag: AccessionNumber, hash: {domain: a, length: 16, prefix: A}}\n".to_string()),
        Just("options: [clean-descriptors]\n".to_string()),
        Just("date-shift: {min-days: 1, max-days: 30}\n".to_string()),
        Just("hipaa-ages: true\n".to_string()),
        Just("---\n".to_string()),
        Just("&a [*a]\n".to_string()),
        Just("!!binary AAAA\n".to_string()),
        "[ -~\n\t]{0,24}",
        "[-:{}\\[\\],'\"&*!|> \n#]{0,8}",
    ];
    prop::collection::vec(piece, 0..16).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn compiler_survives_arbitrary_text(text in any::<String>()) {
        let _ = compile_str("x.yaml", &text);
    }

    #[test]
    fn compiler_survives_yamlish_text(text in yamlish()) {
        let _ = compile_str("x.yaml", &text);
    }

    #[test]
    fn compiler_survives_random_profiles(p in profile_spec()) {
        let text = render_profile(&p);
        let _ = compile_str("x.yaml", &text);
    }

    /// Distinct keywords with valid codes always compile, and each tag is then decided
    /// by its own rule with the code it was given.
    #[test]
    fn well_formed_rules_compile_and_decide(
        rules in prop::sample::subsequence(KEYWORDS.to_vec(), 0..KEYWORDS.len())
            .prop_flat_map(|kws| {
                let n = kws.len();
                (Just(kws), prop::collection::vec(prop::sample::select(Code::ALL.to_vec()), n))
            }),
        extends_basic in any::<bool>(),
    ) {
        let (kws, codes) = rules;
        // A profile from nothing must state its defaults (issue 11, A.1).
        let mut text = String::from(if extends_basic {
            "extends: basic\nname: t\n"
        } else {
            "name: t\ndefaults: {public: keep}\n"
        });
        text.push_str(if kws.is_empty() { "rules: []\n" } else { "rules:\n" });
        for (kw, code) in kws.iter().zip(&codes) {
            text.push_str(&format!("  - {{tag: {kw}, action: {}}}\n", yaml_quote(code.as_str())));
        }
        let profile = match compile_str("x.yaml", &text) {
            Ok(p) => p,
            Err(e) => return Err(TestCaseError::fail(format!("{e}\n{text}"))),
        };
        for (kw, code) in kws.iter().zip(&codes) {
            let Ok(Target::Tag(tag)) = parse_target(kw, None) else {
                return Err(TestCaseError::fail(format!("{kw} does not parse")));
            };
            match profile.decide(tag, None) {
                Decision::Rule(r) => prop_assert_eq!(r.code, Some(*code), "{}", kw),
                other => return Err(TestCaseError::fail(format!("{kw}: decided by {other:?}"))),
            }
        }
    }
}

// ---------------------------------------------------------------------------
// (b) Tag notations
// ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    #[test]
    fn parse_target_survives_arbitrary_text(
        text in prop_oneof![any::<String>(), tag_text()],
        creator in prop::option::of(prop_oneof![any::<String>(), "[A-Z ]{0,10}"]),
    ) {
        let _ = parse_target(&text, creator.as_deref());
    }

    /// What parses as a tag or pattern describes itself in a notation that parses back
    /// to the same target.
    #[test]
    fn parsed_targets_round_trip(text in tag_text()) {
        if let Ok(t @ (Target::Tag(_) | Target::Pattern { .. })) = parse_target(&text, None) {
            prop_assert_eq!(parse_target(&t.describe(), None), Ok(t));
        }
    }

    #[test]
    fn every_tag_parses_as_itself(tag in any::<u32>()) {
        let text = format!("({:04X},{:04X})", tag >> 16, tag & 0xFFFF);
        prop_assert_eq!(parse_target(&text, None), Ok(Target::Tag(tag)));
    }
}

// ---------------------------------------------------------------------------
// (c) Date shifting
// ---------------------------------------------------------------------------

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn month_days(y: i64, m: u32) -> u32 {
    const DAYS: [u32; 12] = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    if m == 2 && is_leap(y) {
        29
    } else {
        DAYS[m as usize - 1]
    }
}

/// The date `n` days before `(y, m, d)`, stepping back one day at a time: slow and
/// obviously right, and independent of the calendar arithmetic under test.
fn days_before((mut y, mut m, mut d): (i64, u32, u32), n: u32) -> (i64, u32, u32) {
    for _ in 0..n {
        if d > 1 {
            d -= 1;
        } else if m > 1 {
            m -= 1;
            d = month_days(y, m);
        } else {
            y -= 1;
            m = 12;
            d = 31;
        }
    }
    (y, m, d)
}

fn valid_date() -> impl Strategy<Value = (i64, u32, u32)> {
    (0i64..=9999, 1u32..=12).prop_flat_map(|(y, m)| (Just(y), Just(m), 1..=month_days(y, m)))
}

/// Strings near dates: digits, separators, signs and a few multi-byte characters.
fn date_like() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            6 => prop::char::range('0', '9'),
            1 => Just('-'),
            1 => Just('.'),
            1 => Just('+'),
            1 => Just(' '),
            1 => Just('\0'),
            1 => prop::sample::select(vec!['é', '¹', '٣', '०', '€', '𝟘']),
        ],
        0..24,
    )
    .prop_map(|cs| cs.into_iter().collect())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn shift_da_survives_ascii_text(
        s in prop_oneof!["[ -~\\x00]{0,24}", "[0-9+\\-. ]{0,24}"],
        days in any::<u32>(),
    ) {
        let _ = shift_da(&s, days);
    }

    #[test]
    fn shift_dt_survives_ascii_text(
        s in prop_oneof!["[ -~\\x00]{0,24}", "[0-9+\\-. ]{0,24}"],
        days in any::<u32>(),
    ) {
        let _ = shift_dt(&s, days);
    }

    /// Multi-byte characters where digits are expected (fuzz/regressions/README.md:
    /// dates-*-nonascii.bin).
    #[test]
    fn shift_da_survives_arbitrary_text(
        s in prop_oneof![any::<String>(), date_like()],
        days in any::<u32>(),
    ) {
        let _ = shift_da(&s, days);
    }

    #[test]
    fn shift_dt_survives_arbitrary_text(
        s in prop_oneof![any::<String>(), date_like()],
        days in any::<u32>(),
    ) {
        let _ = shift_dt(&s, days);
    }

    #[test]
    fn shift_da_moves_valid_dates_back_exactly(date in valid_date(), days in 1u32..=3650) {
        let (y, m, d) = date;
        let input = format!("{y:04}{m:02}{d:02}");
        let (ey, em, ed) = days_before(date, days);
        let expected = (ey >= 0).then(|| format!("{ey:04}{em:02}{ed:02}"));
        prop_assert_eq!(shift_da(&input, days), expected.clone(), "{} - {} days", input, days);
        // The dotted form and trailing padding shift the same way.
        let dotted = format!("{y:04}.{m:02}.{d:02} ");
        prop_assert_eq!(shift_da(&dotted, days), expected, "{} - {} days", dotted, days);
    }

    #[test]
    fn shift_dt_keeps_time_and_moves_the_date(
        date in valid_date(),
        days in 1u32..=3650,
        time in "([01][0-9]|2[0-3])([0-5][0-9]([0-5][0-9](\\.[0-9]{1,6})?)?)?",
        offset in prop::option::of("[+-](0[0-9]|1[0-4])[0-5][0-9]"),
    ) {
        let (y, m, d) = date;
        let suffix = format!("{time}{}", offset.unwrap_or_default());
        let input = format!("{y:04}{m:02}{d:02}{suffix}");
        let (ey, em, ed) = days_before(date, days);
        let expected = (ey >= 0).then(|| format!("{ey:04}{em:02}{ed:02}{suffix}"));
        prop_assert_eq!(shift_dt(&input, days), expected, "{} - {} days", input, days);
    }

    #[test]
    fn shift_da_ranges_shift_both_ends(a in valid_date(), b in valid_date(), days in 1u32..=3650) {
        let fmt = |(y, m, d): (i64, u32, u32)| format!("{y:04}{m:02}{d:02}");
        let (ea, eb) = (days_before(a, days), days_before(b, days));
        let out = shift_da(&format!("{}-{}", fmt(a), fmt(b)), days);
        if ea.0 >= 0 && eb.0 >= 0 {
            prop_assert_eq!(out, Some(format!("{}-{}", fmt(ea), fmt(eb))));
        } else {
            prop_assert_eq!(out, None);
        }
    }
}

// ---------------------------------------------------------------------------
// (d) UID remapping
// ---------------------------------------------------------------------------

fn is_valid_uid(u: &str) -> bool {
    !u.is_empty()
        && u.len() <= 64
        && u.split('.').all(|c| {
            !c.is_empty()
                && c.bytes().all(|b| b.is_ascii_digit())
                && (c == "0" || !c.starts_with('0'))
        })
}

const DICOM_ROOT: &str = "1.2.840.10008.";

proptest! {
    #![proptest_config(config())]

    #[test]
    fn remapped_uids_are_valid(
        s in prop_oneof![
            any::<String>(),
            "[0-9.]{1,70}",
            "[0-9.]{1,64}[ \\x00]{0,3}",
            "1\\.2\\.840\\.10008\\.[0-9.]{0,20}",
        ],
    ) {
        let k = key();
        let p = Pseudonymizer::new(k);
        let u = p.uid(&s);
        let trimmed = s.trim_end_matches([' ', '\0']).trim_start();
        if trimmed.is_empty() || trimmed.starts_with(DICOM_ROOT) {
            // Empty values and standard UIDs (SOP classes, transfer syntaxes) stay.
            prop_assert_eq!(&u, trimmed);
        } else {
            prop_assert!(is_valid_uid(&u), "{:?} -> {:?}", s, u);
            prop_assert!(u.starts_with("2.25."), "{:?} -> {:?}", s, u);
            prop_assert!(u.len() <= 44, "{:?} -> {:?}", s, u);
            // Padding does not change the mapping.
            prop_assert_eq!(&u, &p.uid(&format!("{trimmed} ")));
            prop_assert_eq!(&u, &p.uid(&format!("{trimmed}\0")));
        }
    }
}

// ---------------------------------------------------------------------------
// (e) The engine on random datasets
// ---------------------------------------------------------------------------

/// A dataset to build: elements with text values, and sequences of items.
#[derive(Debug, Clone)]
enum Node {
    Leaf {
        tag: Tag,
        vr: VR,
        value: Vec<String>,
    },
    Seq {
        tag: Tag,
        items: Vec<Vec<Node>>,
    },
    /// A private creator (gggg,00bb) and one element (gggg,bbee) of its block.
    Block {
        group: u16,
        block: u16,
        creator: String,
        elem: Box<Node>,
    },
}

/// Standard attributes the basic profile names (removed, emptied, dummied, remapped,
/// kept) and some it does not.
const STANDARD: [(u16, u16, VR); 20] = [
    (0x0008, 0x0016, VR::UI), // SOP Class UID
    (0x0008, 0x0018, VR::UI), // SOP Instance UID
    (0x0008, 0x0020, VR::DA), // Study Date
    (0x0008, 0x0050, VR::SH), // Accession Number
    (0x0008, 0x0080, VR::LO), // Institution Name
    (0x0008, 0x0090, VR::PN), // Referring Physician's Name
    (0x0008, 0x1030, VR::LO), // Study Description
    (0x0008, 0x103E, VR::LO), // Series Description
    (0x0008, 0x1155, VR::UI), // Referenced SOP Instance UID
    (0x0010, 0x0010, VR::PN), // Patient's Name
    (0x0010, 0x0020, VR::LO), // Patient ID
    (0x0010, 0x0030, VR::DA), // Patient's Birth Date
    (0x0010, 0x1010, VR::AS), // Patient's Age
    (0x0010, 0x4000, VR::LT), // Patient Comments
    (0x0018, 0x0015, VR::CS), // Body Part Examined
    (0x0020, 0x000D, VR::UI), // Study Instance UID
    (0x0020, 0x000E, VR::UI), // Series Instance UID
    (0x0020, 0x0052, VR::UI), // Frame of Reference UID
    (0x0040, 0xA124, VR::UI), // UID
    (0x0040, 0xA160, VR::UT), // Text Value
];

const SEQUENCES: [(u16, u16); 6] = [
    (0x0008, 0x1115), // Referenced Series Sequence
    (0x0008, 0x1140), // Referenced Image Sequence
    (0x0040, 0x0275), // Request Attributes Sequence
    (0x0040, 0xA730), // Content Sequence
    (0x0008, 0x9215), // Derivation Code Sequence
    (0x0012, 0x0064), // De-identification Method Code Sequence
];

fn text_value() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Z0-9^ .]{0,20}",
        "[0-9]{8}",
        "[0-9.]{1,40}",
        "1\\.2\\.840\\.10008\\.[0-9.]{1,10}",
        any::<String>(),
    ]
}

fn values() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(text_value(), 0..3)
}

fn any_vr() -> impl Strategy<Value = VR> {
    prop::sample::select(vec![VR::PN, VR::LO, VR::DA, VR::UI])
}

/// Private (odd) group, creator element (gggg,0010-00FF) or data element (gggg,bbee).
fn private_tag() -> impl Strategy<Value = Tag> {
    (0u16..0x8000, 0x10u16..=0xFF, any::<u8>(), any::<bool>()).prop_map(
        |(g, block, elem, creator)| {
            let group = g * 2 + 1;
            if creator {
                Tag(group, block)
            } else {
                Tag(group, (block << 8) | u16::from(elem))
            }
        },
    )
}

fn leaf() -> impl Strategy<Value = Node> {
    prop_oneof![
        3 => (prop::sample::select(STANDARD.to_vec()), values())
            .prop_map(|((g, e, vr), value)| Node::Leaf { tag: Tag(g, e), vr, value }),
        3 => (private_tag(), any_vr(), values())
            .prop_map(|(tag, vr, value)| Node::Leaf { tag, vr, value }),
        // A private block with its creator.
        2 => (0u16..0x8000, 0x10u16..=0xFF, any::<u8>(), any_vr(), "[A-Z ]{1,12}", values())
            .prop_map(|(g, block, elem, vr, creator, value)| {
                let group = g * 2 + 1;
                let tag = Tag(group, (block << 8) | u16::from(elem));
                Node::Block { group, block, creator, elem: Box::new(Node::Leaf { tag, vr, value }) }
            }),
        2 => (any::<u16>(), any::<u16>(), any_vr(), values())
            .prop_map(|(g, e, vr, value)| Node::Leaf { tag: Tag(g, e), vr, value }),
    ]
}

fn node() -> impl Strategy<Value = Node> {
    // Depth 4 of sequences: a root item holding sequences 4 levels deep.
    leaf().prop_recursive(4, 64, 4, |inner| {
        let items = prop::collection::vec(prop::collection::vec(inner, 0..5), 0..3);
        prop_oneof![
            (prop::sample::select(SEQUENCES.to_vec()), items.clone()).prop_map(
                |((g, e), items)| Node::Seq {
                    tag: Tag(g, e),
                    items
                }
            ),
            (private_tag(), items).prop_map(|(tag, items)| Node::Seq { tag, items }),
        ]
    })
}

fn build(nodes: &[Node]) -> InMemDicomObject {
    let mut obj = InMemDicomObject::new_empty();
    for n in nodes {
        match n {
            Node::Leaf { tag, vr, value } => {
                let v = if value.len() == 1 {
                    PrimitiveValue::from(value[0].clone())
                } else if value.is_empty() {
                    PrimitiveValue::Empty
                } else {
                    PrimitiveValue::Strs(value.iter().cloned().collect())
                };
                obj.put(DataElement::new(*tag, *vr, v));
            }
            Node::Block {
                group,
                block,
                creator,
                elem,
            } => {
                obj.put(DataElement::new(
                    Tag(*group, *block),
                    VR::LO,
                    PrimitiveValue::from(creator.clone()),
                ));
                for e in build(std::slice::from_ref(elem)).into_iter() {
                    obj.put(e);
                }
            }
            Node::Seq { tag, items } => {
                let items: Vec<InMemDicomObject> = items.iter().map(|i| build(i)).collect();
                obj.put(DataElement::new(
                    *tag,
                    VR::SQ,
                    Value::from(DataSetSequence::new(items, Length::UNDEFINED)),
                ));
            }
        }
    }
    obj
}

/// Every private element (odd group) left anywhere, with its path.
fn private_left(obj: &InMemDicomObject, path: &str, out: &mut Vec<String>) {
    for e in obj.iter() {
        let tag = e.header().tag;
        if tag.0 % 2 == 1 {
            out.push(format!("{path}/{tag}"));
        }
        if let Value::Sequence(seq) = e.value() {
            for (i, item) in seq.items().iter().enumerate() {
                private_left(item, &format!("{path}/{tag}[{i}]"), out);
            }
        }
    }
}

proptest! {
    #![proptest_config(config())]

    /// The basic profile on a random dataset: no panic, no private element left at any
    /// depth (creators included), group lengths and meta elements gone, markers written.
    #[test]
    fn basic_profile_removes_every_private_element(nodes in prop::collection::vec(node(), 0..12)) {
        let mut obj = build(&nodes);
        let engine = Engine::new(basic(), Pseudonymizer::new(key()));
        prop_assert!(engine.apply(&mut obj).is_ok());
        let mut left = Vec::new();
        private_left(&obj, "", &mut left);
        prop_assert!(left.is_empty(), "private elements left: {:?}", left);
        for e in obj.iter() {
            let tag = e.header().tag;
            prop_assert!(tag.1 != 0 && tag.0 != 0x0002, "{} left", tag);
        }
        let removed = obj
            .get(Tag(0x0012, 0x0062))
            .and_then(|e| e.to_str().ok())
            .map(|s| s.to_string());
        prop_assert_eq!(removed.as_deref(), Some("YES"));
        // Trailing elements (after Pixel Data) go through the same rules.
        let mut trailing = build(&nodes);
        prop_assert!(engine.apply_trailing(&mut trailing).is_ok());
        let mut left = Vec::new();
        private_left(&trailing, "", &mut left);
        prop_assert!(left.is_empty(), "private elements left after Pixel Data: {:?}", left);
    }
}

/// Profiles with options and HIPAA ages switched on reach date shifting, text
/// cleaning and age capping.
fn extra_profiles() -> &'static [CompiledProfile] {
    static P: OnceLock<Vec<CompiledProfile>> = OnceLock::new();
    P.get_or_init(|| {
        let hipaa = "extends: basic\nname: hipaa\nhipaa-ages: true\noptions: [retain-patient-characteristics, retain-safe-private]\n";
        vec![
            with_options(),
            compile_str("hipaa.yaml", hipaa).expect("hipaa profile compiles"),
        ]
    })
}

fn with_options() -> CompiledProfile {
    let options: Vec<String> = OPTIONS.iter().map(|s| s.to_string()).collect();
    load_with_options("basic", &options).expect("basic with options compiles")
}

proptest! {
    #![proptest_config(config())]

    /// Date shifting, cleaning and age capping on a random dataset, with values that
    /// once broke them (non-ASCII dates and ages, names equal to the cleaning token):
    /// no panic, and done in bounded time.
    #[test]
    fn optioned_profiles_never_panic(nodes in prop::collection::vec(nasty_node(), 0..12)) {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let outcome = std::panic::catch_unwind(|| {
                for profile in extra_profiles() {
                    let mut obj = build(&nodes);
                    let engine = Engine::new(profile, Pseudonymizer::new(key()));
                    let _ = engine.apply(&mut obj);
                }
            });
            let _ = tx.send(outcome.is_ok());
        });
        match rx.recv_timeout(std::time::Duration::from_secs(20)) {
            Ok(no_panic) => prop_assert!(no_panic, "the engine panicked"),
            Err(_) => return Err(TestCaseError::fail("the engine did not finish in 20 s")),
        }
    }
}

/// Values that broke the engine's value handling once (fuzz/regressions/README.md).
fn nasty_value() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => text_value(),
        1 => prop::sample::select(vec![
            "XXXX", "XXX", "xxx", "XXXXX", "123é567", "x-123é-", "12é", "١٢٣٤٠١٠١",
            "20200101-2020é", "--0०", "090Y", "120Y", "1200M",
        ])
        .prop_map(str::to_string),
        1 => date_like(),
    ]
}

/// Like [`node`], with leaves drawn from [`nasty_value`] for the attributes cleaning,
/// date shifting and age capping read.
fn nasty_node() -> impl Strategy<Value = Node> {
    let targets = vec![
        (Tag(0x0010, 0x0010), VR::PN), // Patient's Name: a cleaning term
        (Tag(0x0010, 0x0020), VR::LO), // Patient ID: a cleaning term
        (Tag(0x0010, 0x0030), VR::DA), // Patient's Birth Date
        (Tag(0x0010, 0x1010), VR::AS), // Patient's Age
        (Tag(0x0008, 0x0020), VR::DA), // Study Date
        (Tag(0x0008, 0x002A), VR::DT), // Acquisition DateTime
        (Tag(0x0008, 0x1030), VR::LO), // Study Description: cleaned
        (Tag(0x0010, 0x4000), VR::LT), // Patient Comments: cleaned
    ];
    prop_oneof![
        2 => node(),
        3 => (prop::sample::select(targets), prop::collection::vec(nasty_value(), 0..3))
            .prop_map(|((tag, vr), value)| Node::Leaf { tag, vr, value }),
    ]
}

// ---------------------------------------------------------------------------
// (f) Inputs the fuzzer once crashed on
// ---------------------------------------------------------------------------

fn regressions_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions")
}

/// Regression inputs whose bug in src/ is not fixed yet, one file name a line in
/// `fuzz/regressions/OPEN` (fuzz/run.sh does not seed them either). Delete a line once
/// its fix lands: the file then joins the always-run test.
fn open_names() -> Vec<String> {
    std::fs::read_to_string(regressions_dir().join("OPEN"))
        .unwrap_or_default()
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

fn regression_files(open: bool) -> Vec<PathBuf> {
    let Ok(dir) = std::fs::read_dir(regressions_dir()) else {
        return Vec::new();
    };
    let names = open_names();
    let mut files: Vec<PathBuf> = dir
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "bin"))
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            names.iter().any(|n| n == name) == open
        })
        .collect();
    files.sort();
    files
}

/// The fuzz target's path (fuzz/fuzz_targets/read_deid_write.rs): read, de-identify
/// (copies with options and HIPAA ages too), write, read back. Errors are fine,
/// panics are not, and what we wrote must read back as DICOM.
fn full_path(input: &Path, out_dir: &Path) -> Result<(), String> {
    for profile in extra_profiles() {
        let plan = Plan::new(profile, Engine::new(profile, Pseudonymizer::new(key())));
        if let Ok((handle, stamp)) = open_file(input) {
            let _ = process(handle, stamp, &plan);
        }
    }
    // What `dicom-deid run` does with each input: one open, the pipeline, a folder sink.
    let plan = Plan::new(basic(), Engine::new(basic(), Pseudonymizer::new(key())));
    let Ok((handle, stamp)) = open_file(input) else {
        return Ok(());
    };
    let Ok(Processed::Deidentified(d)) = process(handle, stamp, &plan) else {
        return Ok(());
    };
    let name = Path::new("out.dcm");
    if FsSink::new(out_dir.to_path_buf(), "proptest")
        .put(name, d.object)
        .is_err()
    {
        return Ok(());
    }
    match read(&out_dir.join(name)) {
        Ok(Classified::Dicom(_)) => Ok(()),
        Ok(Classified::Dicomdir) => Err("output reads back as a DICOMDIR".into()),
        Ok(Classified::NotDicom) => Err("output reads back as not DICOM".into()),
        Err(e) => Err(format!("output does not read back: {e}")),
    }
}

/// One input may take this long; past it, it counts as a hang (its thread is left
/// behind, the test fails).
const PER_FILE: std::time::Duration = std::time::Duration::from_secs(20);

/// A regression input is a few KiB: one allocation above this means a length read
/// from the file was trusted.
const LARGEST_ALLOWED: usize = 64 << 20;
/// Above this a tracked allocation is refused (null), so a hostile length fails
/// the test instead of taking gigabytes from the machine.
const REFUSED_OVER: usize = 256 << 20;

/// The system allocator, which on threads that ask for it records the largest single
/// request and refuses the absurd ones.
struct Tracking;

thread_local! {
    static TRACK: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    static LARGEST: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

impl Tracking {
    fn admit(size: usize) -> bool {
        if !TRACK.try_with(|t| t.get()).unwrap_or(false) {
            return true;
        }
        let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
        size <= REFUSED_OVER
    }
}

// SAFETY: every call is forwarded unchanged to `System`, or refused with a null
// pointer, which the `GlobalAlloc` contract allows.
unsafe impl std::alloc::GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        if !Self::admit(layout.size()) {
            return std::ptr::null_mut();
        }
        // SAFETY: same layout, same contract.
        unsafe { std::alloc::System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        if !Self::admit(layout.size()) {
            return std::ptr::null_mut();
        }
        // SAFETY: same layout, same contract.
        unsafe { std::alloc::System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        if !Self::admit(new_size) {
            return std::ptr::null_mut();
        }
        // SAFETY: `ptr` and `layout` come from this allocator, which is `System`.
        unsafe { std::alloc::System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        // SAFETY: `ptr` and `layout` come from this allocator, which is `System`.
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Tracking = Tracking;

fn run_regressions(files: &[PathBuf]) {
    let tmp = tempfile::tempdir().expect("temporary directory");
    let mut failures = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let (tx, rx) = std::sync::mpsc::channel();
        let (input, out) = (f.clone(), tmp.path().join(i.to_string()));
        std::thread::spawn(move || {
            TRACK.with(|t| t.set(true));
            let outcome = std::panic::catch_unwind(|| {
                std::fs::create_dir_all(&out).map_err(|e| e.to_string())?;
                full_path(&input, &out)
            });
            TRACK.with(|t| t.set(false));
            let largest = LARGEST.with(|l| l.get());
            let outcome = outcome.map_err(|p| {
                p.downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| p.downcast_ref::<String>().cloned())
                    .unwrap_or_default()
            });
            let _ = tx.send((outcome, largest));
        });
        match rx.recv_timeout(PER_FILE) {
            Ok((_, largest)) if largest > LARGEST_ALLOWED => failures.push(format!(
                "{}: asked for {largest} bytes at once (limit {LARGEST_ALLOWED})",
                f.display()
            )),
            Ok((Ok(Ok(())), _)) => {}
            Ok((Ok(Err(e)), _)) => failures.push(format!("{}: {e}", f.display())),
            Ok((Err(msg), _)) => failures.push(format!("{}: panicked: {msg}", f.display())),
            Err(_) => failures.push(format!(
                "{}: no result after {PER_FILE:?} (hang)",
                f.display()
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn fuzz_regressions_never_panic() {
    run_regressions(&regression_files(false));
}

#[test]
#[ignore = "open src bugs: see fuzz/regressions/README.md; run with --ignored"]
fn open_fuzz_regressions() {
    run_regressions(&regression_files(true));
}
