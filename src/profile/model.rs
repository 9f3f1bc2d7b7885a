//! Serde mirror of a YAML profile: pure data, every rule carrying its source line
//! so `profile check` can point at it.

use serde::Deserialize;
use serde_saphyr::Spanned;
use std::collections::BTreeMap;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
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
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    /// What happens to private elements no rule names: `remove` (default) or `keep`.
    pub private: Option<Spanned<String>>,
    /// What happens to public elements no rule names: `keep` (default) or `remove`
    /// (allow-list mode).
    pub public: Option<Spanned<String>>,
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
    /// X/Z/D, X/Z/U*). Exactly one of `action`, `replace`, `hash` is given.
    pub action: Option<Spanned<String>>,
    /// Write this fixed value.
    pub replace: Option<String>,
    /// Write a keyed pseudonym of the original value.
    pub hash: Option<HashSpec>,
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
}
