//! PS3.15 Table E.1-1 as shipped in profiles/standard/, read when a profile is
//! checked or compiled (coverage and markers), never per element.

use super::action::Code;
use super::tagspec::{Target, parse_target};
use dicom_core::VR;
use std::str::FromStr;
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

const CID7050_CSV: &str = include_str!("../../profiles/standard/cid7050.csv");
const SAFE_PRIVATE_CSV: &str = include_str!("../../profiles/standard/safe-private.csv");

/// CID 7050 code (value, meaning) of an option, read from PS3.16's table.
pub fn option_code(option: &str) -> Option<(&'static str, &'static str)> {
    static CODES: OnceLock<Vec<(String, &'static str, &'static str)>> = OnceLock::new();
    let codes = CODES.get_or_init(|| {
        let mut out = Vec::new();
        let mut reader = csv::Reader::from_reader(CID7050_CSV.as_bytes());
        for rec in reader.records().flatten() {
            let (Some(value), Some(meaning), Some(column)) = (rec.get(1), rec.get(2), rec.get(4))
            else {
                continue;
            };
            // Leaked once per process: three short strings for each of 13 codes.
            let value: &'static str = Box::leak(value.to_string().into_boxed_str());
            let meaning: &'static str = Box::leak(meaning.to_string().into_boxed_str());
            out.push((column.to_string(), value, meaning));
        }
        out
    });
    let column = OPTION_COLUMNS.iter().find(|(n, _)| *n == option)?.1;
    codes
        .iter()
        .find(|(c, _, _)| c == column)
        .map(|(_, v, m)| (*v, *m))
}

/// PS3.15 Table E.3.10-1: (odd group, element byte, private creator) of each safe
/// private attribute.
pub fn safe_private() -> &'static [(u16, u8, String)] {
    static ROWS: OnceLock<Vec<(u16, u8, String)>> = OnceLock::new();
    ROWS.get_or_init(|| {
        safe_private_vrs()
            .iter()
            .map(|(g, e, c, _)| (*g, *e, c.clone()))
            .collect()
    })
}

/// (odd group, element byte, private creator, VRs) of one safe private attribute.
pub type SafePrivate = (u16, u8, String, Vec<VR>);

/// Table E.3.10-1 with the VR(s) the table gives each attribute (`OW/OB` gives
/// two; an empty cell none, meaning any).
pub fn safe_private_vrs() -> &'static [SafePrivate] {
    static ROWS: OnceLock<Vec<SafePrivate>> = OnceLock::new();
    ROWS.get_or_init(|| {
        let mut out = Vec::new();
        let mut reader = csv::Reader::from_reader(SAFE_PRIVATE_CSV.as_bytes());
        for rec in reader.records().flatten() {
            let (Some(tag), Some(creator)) = (rec.get(0), rec.get(1)) else {
                continue;
            };
            let vrs: Vec<VR> = rec
                .get(2)
                .unwrap_or("")
                .split('/')
                .filter_map(|v| VR::from_str(v.trim()).ok())
                .collect();
            if let Ok(Target::Private {
                group,
                elem,
                creator,
            }) = parse_target(tag, Some(creator))
            {
                out.push((group, elem, creator, vrs));
            }
        }
        out
    })
}

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

    #[test]
    fn safe_private_list_and_option_codes_load() {
        assert_eq!(
            safe_private().len(),
            479,
            "every row of Table E.3.10-1 parses"
        );
        assert_eq!(
            option_code("retain-uids"),
            Some(("113110", "Retain UIDs Option"))
        );
        assert_eq!(option_code("clean-graphics").map(|c| c.0), Some("113103"));
        assert_eq!(option_code("nope"), None);
    }
}
