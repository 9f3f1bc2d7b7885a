//! PS3.15 Table E.1-1 as shipped in profiles/standard/, read when a profile is
//! checked or compiled (coverage and markers), never per element.

use super::action::Code;
use super::tagspec::{Target, parse_target};
use std::sync::OnceLock;

pub const TABLE_CSV: &str = include_str!("../../profiles/standard/ps3.15-e1-1.csv");

/// The ten option columns, with the names profiles and the CLI use for them.
pub const OPTION_COLUMNS: [(&str, &str); 10] = [
    ("retain-safe-private", "retain_safe_private"),
    ("retain-uids", "retain_uids"),
    ("retain-device-identity", "retain_device_identity"),
    ("retain-institution-identity", "retain_institution_identity"),
    (
        "retain-patient-characteristics",
        "retain_patient_characteristics",
    ),
    ("retain-long-full-dates", "retain_long_full_dates"),
    ("retain-long-modified-dates", "retain_long_modified_dates"),
    ("clean-descriptors", "clean_descriptors"),
    ("clean-structured-content", "clean_structured_content"),
    ("clean-graphics", "clean_graphics"),
];

/// What a row of the table addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowTarget {
    Target(Target),
    /// The "(gggg,eeee) where gggg is odd" row.
    AllPrivate,
}

#[derive(Debug, Clone)]
pub struct Row {
    pub tag_text: String,
    pub keyword: String,
    pub name: String,
    pub target: RowTarget,
    pub basic: Code,
    /// Option name -> code, for the non-empty option cells.
    pub options: Vec<(&'static str, Code)>,
}

/// The parsed table; a malformed embedded table is a build defect caught by tests.
pub fn rows() -> &'static [Row] {
    static ROWS: OnceLock<Vec<Row>> = OnceLock::new();
    ROWS.get_or_init(|| parse(TABLE_CSV).unwrap_or_default())
}

pub fn parse(csv_text: &str) -> Result<Vec<Row>, String> {
    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    let headers = reader.headers().map_err(|e| e.to_string())?.clone();
    let col = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| format!("column {name} missing"))
    };
    let (c_tag, c_kw, c_name, c_basic) = (
        col("tag")?,
        col("keyword")?,
        col("name")?,
        col("basic_profile")?,
    );
    let option_cols: Vec<(&'static str, usize)> = OPTION_COLUMNS
        .iter()
        .map(|(name, column)| col(column).map(|i| (*name, i)))
        .collect::<Result<_, _>>()?;
    let mut out = Vec::new();
    for (i, rec) in reader.records().enumerate() {
        let rec = rec.map_err(|e| e.to_string())?;
        let get = |c: usize| rec.get(c).unwrap_or("").to_string();
        let tag_text = get(c_tag);
        let target = if tag_text.starts_with("(gggg") {
            RowTarget::AllPrivate
        } else {
            RowTarget::Target(
                parse_target(&tag_text, None).map_err(|e| format!("row {}: {e}", i + 2))?,
            )
        };
        let basic = Code::parse(&get(c_basic))
            .ok_or_else(|| format!("row {}: bad action {}", i + 2, get(c_basic)))?;
        let mut options = Vec::new();
        for (name, c) in &option_cols {
            let cell = get(*c);
            if !cell.is_empty() {
                let code =
                    Code::parse(&cell).ok_or_else(|| format!("row {}: bad option cell", i + 2))?;
                options.push((*name, code));
            }
        }
        out.push(Row {
            tag_text,
            keyword: get(c_kw),
            name: get(c_name),
            target,
            basic,
            options,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_table_has_every_row_of_2026d() {
        let rows = parse(TABLE_CSV).expect("embedded table parses");
        assert_eq!(rows.len(), 657);
        let count = |c: Code| rows.iter().filter(|r| r.basic == c).count();
        assert_eq!(count(Code::X), 417);
        assert_eq!(count(Code::D), 93);
        assert_eq!(count(Code::U), 55);
        assert_eq!(count(Code::Z), 42);
        assert_eq!(count(Code::XD), 23);
        assert_eq!(count(Code::XZ), 11);
        assert_eq!(count(Code::XZD), 8);
        assert_eq!(count(Code::ZD), 6);
        assert_eq!(count(Code::XZU), 2);
        assert_eq!(
            rows.iter()
                .filter(|r| r.target == RowTarget::AllPrivate)
                .count(),
            1
        );
    }
}
