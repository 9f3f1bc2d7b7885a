//! Serde mirror of a YAML profile: pure data, every rule carrying its source line
//! so `profile check` can point at it.

use serde::Deserialize;
use serde_saphyr::Spanned;
use std::collections::BTreeMap;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ProfileFile {
    /// Short name shown in reports and in De-identification Method (0012,0063).
    pub name: Option<String>,
    pub description: Option<String>,
    /// A built-in profile name, or a path relative to this file.
    pub extends: Option<Spanned<String>>,
    /// PS3.15 E.3 options to activate (see `profile::compile::OPTION_NAMES`).
    #[serde(default)]
    pub options: Vec<Spanned<String>>,
    #[serde(default)]
    pub defaults: Option<Defaults>,
    #[serde(default)]
    pub rules: Vec<Spanned<RuleSpec>>,
    /// Range of the per-patient date shift used by `date-shift` and the
    /// retain-long-modified-dates option.
    pub date_shift: Option<Spanned<DateShiftSpec>>,
    /// Ages over 89 years are written as `090Y` (HIPAA Safe Harbor) when kept.
    pub hipaa_ages: Option<bool>,
    /// Times that are cleaned (retain-long-modified-dates) keep only their hour.
    pub coarsen_times: Option<bool>,
    /// Files de-identification cannot make safe: each rule `fail` (default), `warn`
    /// or `off`.
    pub quarantine: Option<Spanned<QuarantineSpec>>,
    /// Burned-in text: rules naming the regions to blank (see `profile::pixels`).
    pub pixels: Option<Spanned<super::pixels::PixelsSpec>>,
}

#[derive(Debug, Deserialize, Clone, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct QuarantineSpec {
    /// Burned In Annotation (0028,0301) is YES.
    pub burned_in_annotation: Option<String>,
    /// Secondary capture, photographs, ultrasound without Burned In Annotation NO.
    pub burned_in_unknown: Option<String>,
    /// Encapsulated PDF, CDA and 3D documents.
    pub encapsulated_documents: Option<String>,
    /// Only these SOP Class UIDs are processed; others fail.
    pub allowed_sop_classes: Option<Vec<String>>,
}

#[derive(Debug, Deserialize, Clone, Copy)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DateShiftSpec {
    /// Fewest days into the past (at least 1: a shift is never zero).
    pub min_days: u32,
    /// Most days into the past.
    pub max_days: u32,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct LookupSpec {
    /// CSV file with `original,replacement` rows (a header row is allowed), relative
    /// to the profile.
    pub file: String,
    /// What to do with a value the file does not list: `fail` (the file fails),
    /// `keep`, `remove` or `hash` (keyed pseudonym, domain `lookup`).
    pub on_missing: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    /// What happens to private elements no rule names: `remove` (default) or `keep`.
    pub private: Option<Spanned<String>>,
    /// What happens to public elements no rule names: `keep` (default) or `remove`
    /// (allow-list mode).
    pub public: Option<Spanned<String>>,
    /// Public elements no dictionary knows (and no rule names): `remove` (default)
    /// or `keep`. Table E.1-1 cannot vouch for an attribute nobody can name.
    #[serde(rename = "unknown-public")]
    pub unknown_public: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// `(gggg,eeee)`, a keyword, or a pattern with `x` nibbles (`(50xx,xxxx)`); for a
    /// private creator rule `(gggg,xxee)`.
    pub tag: Spanned<String>,
    /// Private creator that reserved the block (private rules only).
    pub creator: Option<String>,
    /// Human-readable attribute name (documentation only).
    pub name: Option<String>,
    /// The action code as Table E.1-1 writes it (D, Z, X, K, C, U, Z/D, X/Z, X/D,
    /// X/Z/D, X/Z/U*), or a function name: keep, remove, empty, dummy, clean,
    /// hash-uid, date-shift. Exactly one of `action`, `replace`, `hash`, `lookup`.
    pub action: Option<Spanned<String>>,
    /// Write this fixed value.
    pub replace: Option<String>,
    /// Write a keyed pseudonym of the original value.
    pub hash: Option<HashSpec>,
    /// Replace through a site-supplied crosswalk (pre-assigned trial IDs).
    pub lookup: Option<LookupSpec>,
    /// The code Table E.1-1 gives this row, recorded when the rule deviates from it.
    pub table: Option<String>,
    /// Per-option action codes from Table E.1-1 (option name -> K or C).
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct HashSpec {
    /// Domain separating this pseudonym from others (e.g. `patient-id`); values equal
    /// in one domain get equal pseudonyms in every file and run with the same key.
    pub domain: Option<String>,
    /// Length of the pseudonym in characters (prefix included).
    pub length: Option<usize>,
    pub prefix: Option<String>,
    /// `alnum` (default: digits and upper-case letters), `digits` or `hex`.
    pub alphabet: Option<String>,
}
