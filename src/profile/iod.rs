//! Attribute Types (1, 1C, 2, 2C, 3) per IOD, for resolving the compound actions
//! of PS3.15 Table E.1-1 (Z/D, X/Z, X/D, X/Z/D, X/Z/U*) per file.
//!
//! The data is generated into the repository, so neither the tests nor the binary
//! read the PS3.3 tables at run time:
//!
//! - `profiles/standard/iod-compound-types.csv` (`iod_id,path,type`): for every IOD
//!   that a SOP Class maps to, every sequence path (tags as 8 hex digits joined by
//!   `>`, e.g. `00400555>00081199>00081150`) whose last tag has a compound basic
//!   action in Table E.1-1, with its Type. When one path occurs in several modules
//!   of the IOD, the strictest Type wins (1, then 1C, 2, 2C, 3).
//! - `profiles/standard/iod-sop-classes.csv` (`sop_class_uid,iod_id`): the IOD of
//!   each SOP Class (PS3.4 Table B.5-1 plus Media Storage Directory).
//!
//! Both come from `cargo run --release --example gen-iod-types`, which calls
//! [`generate`] on the PS3.3 / PS3.4 (2026b) tables in `../shared/standard/iod/`
//! (see that folder's README.md for their provenance and caveats) and on
//! `profiles/standard/ps3.15-e1-1.csv`. A test checks the committed files against
//! the generator whenever that folder exists.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::OnceLock;

/// Default output path of the path/Type table, relative to the crate root.
pub const IOD_TYPES_PATH: &str = "profiles/standard/iod-compound-types.csv";
/// Default output path of the SOP Class -> IOD table, relative to the crate root.
pub const SOP_CLASSES_PATH: &str = "profiles/standard/iod-sop-classes.csv";

const IOD_TYPES_CSV: &str = include_str!("../../profiles/standard/iod-compound-types.csv");
const SOP_CLASSES_CSV: &str = include_str!("../../profiles/standard/iod-sop-classes.csv");

const IOD_TYPES_HEADER: [&str; 3] = ["iod_id", "path", "type"];
const SOP_CLASSES_HEADER: [&str; 2] = ["sop_class_uid", "iod_id"];

/// The basic-profile codes that depend on the attribute's Type in the IOD.
const COMPOUND_CODES: [&str; 5] = ["Z/D", "X/Z", "X/D", "X/Z/D", "X/Z/U*"];

/// An attribute's Type within an IOD (PS3.5 7.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttrType {
    One,
    OneC,
    Two,
    TwoC,
    Three,
}

impl AttrType {
    /// Parses the PS3.3 spelling: `1`, `1C`, `2`, `2C` or `3`.
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "1" => AttrType::One,
            "1C" => AttrType::OneC,
            "2" => AttrType::Two,
            "2C" => AttrType::TwoC,
            "3" => AttrType::Three,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AttrType::One => "1",
            AttrType::OneC => "1C",
            AttrType::Two => "2",
            AttrType::TwoC => "2C",
            AttrType::Three => "3",
        }
    }

    /// 0 for the strictest (Type 1) up to 4 for Type 3. 1C ranks above 2: a dummy
    /// value satisfies both, an empty one can break a 1C.
    fn rank(self) -> u8 {
        match self {
            AttrType::One => 0,
            AttrType::OneC => 1,
            AttrType::Two => 2,
            AttrType::TwoC => 3,
            AttrType::Three => 4,
        }
    }

    /// The stricter of two Types.
    pub fn strictest(self, other: AttrType) -> AttrType {
        if other.rank() < self.rank() {
            other
        } else {
            self
        }
    }
}

/// Per-file handle: resolved once per file from its SOP Class UID (None when the
/// SOP class is unknown).
#[derive(Debug)]
pub struct IodTypes {
    id: String,
    /// Looked up for every element with a compound action: no SipHash.
    types: HashMap<Box<[u32]>, AttrType, crate::fast_hash::FastHash>,
}

impl IodTypes {
    /// The Type of the attribute at `path` (tags from the top-level dataset down,
    /// `group << 16 | element`), or None when this IOD has no such attribute at that
    /// path. Only attributes with a compound basic action in Table E.1-1 are held.
    pub fn type_at(&self, path: &[u32]) -> Option<AttrType> {
        self.types.get(path).copied()
    }

    /// The IOD's id in the PS3.3 tables, e.g. `ct-image`.
    pub fn iod_id(&self) -> &str {
        &self.id
    }

    /// Every (path, Type) held for this IOD, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u32], AttrType)> {
        self.types.iter().map(|(p, t)| (&**p, *t))
    }
}

struct Tables {
    iods: Vec<IodTypes>,
    by_sop_class: HashMap<String, usize>,
}

fn tables() -> &'static Tables {
    static TABLES: OnceLock<Tables> = OnceLock::new();
    // The embedded files are checked by the tests; a malformed one is a build defect.
    TABLES.get_or_init(|| {
        parse_tables(IOD_TYPES_CSV, SOP_CLASSES_CSV)
            .unwrap_or_else(|e| panic!("embedded IOD type tables: {e}"))
    })
}

/// Parses the embedded tables now (about 36 M instructions), so that the walk does
/// not pay for it inside the first file.
pub fn preload() {
    tables();
}

/// The Types of the IOD of `sop_class_uid` (trailing NUL and space padding ignored),
/// or None when the SOP Class is not in the tables (retired, private, ...).
pub fn for_sop_class(sop_class_uid: &str) -> Option<&'static IodTypes> {
    let uid = sop_class_uid.trim_end_matches(['\0', ' ']);
    let t = tables();
    t.by_sop_class.get(uid).map(|&i| &t.iods[i])
}

/// Every SOP Class UID in the tables with its IOD's Types, in no particular order.
pub fn sop_classes() -> impl Iterator<Item = (&'static str, &'static IodTypes)> {
    let t = tables();
    t.by_sop_class
        .iter()
        .map(move |(uid, &i)| (uid.as_str(), &t.iods[i]))
}

fn parse_tables(iod_types_csv: &str, sop_classes_csv: &str) -> Result<Tables, String> {
    let mut iods: Vec<IodTypes> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut slot = |iods: &mut Vec<IodTypes>, id: &str| -> usize {
        *index.entry(id.to_string()).or_insert_with(|| {
            iods.push(IodTypes {
                id: id.to_string(),
                types: HashMap::default(),
            });
            iods.len() - 1
        })
    };

    let mut reader = csv::Reader::from_reader(iod_types_csv.as_bytes());
    check_header(&mut reader, &IOD_TYPES_HEADER)?;
    for (n, record) in reader.records().enumerate() {
        let record = record.map_err(|e| e.to_string())?;
        let at = || format!("iod types row {}", n + 2);
        let path = parse_hex_path(&record[1]).ok_or_else(|| format!("{}: bad path", at()))?;
        let ty = AttrType::parse(&record[2]).ok_or_else(|| format!("{}: bad type", at()))?;
        let i = slot(&mut iods, &record[0]);
        if iods[i].types.insert(path.into(), ty).is_some() {
            return Err(format!("{}: duplicate path", at()));
        }
    }

    let mut by_sop_class = HashMap::new();
    let mut reader = csv::Reader::from_reader(sop_classes_csv.as_bytes());
    check_header(&mut reader, &SOP_CLASSES_HEADER)?;
    for record in reader.records() {
        let record = record.map_err(|e| e.to_string())?;
        let i = slot(&mut iods, &record[1]);
        if by_sop_class.insert(record[0].to_string(), i).is_some() {
            return Err(format!("duplicate SOP Class {}", &record[0]));
        }
    }
    Ok(Tables { iods, by_sop_class })
}

fn check_header(reader: &mut csv::Reader<&[u8]>, expected: &[&str]) -> Result<(), String> {
    let headers = reader.headers().map_err(|e| e.to_string())?;
    if headers.iter().eq(expected.iter().copied()) {
        Ok(())
    } else {
        Err(format!("header {headers:?}, expected {expected:?}"))
    }
}

/// `00400555>00081199` -> `[0x00400555, 0x00081199]`.
fn parse_hex_path(text: &str) -> Option<Vec<u32>> {
    text.split('>')
        .map(|t| {
            (t.len() == 8 && t.bytes().all(|b| b.is_ascii_hexdigit()))
                .then(|| u32::from_str_radix(t, 16).ok())
                .flatten()
        })
        .collect()
}

/// `(0040,A032)` -> `0x0040A032`; None for repeating groups (`60xx`) or anything else.
fn parse_paren_tag(text: &str) -> Option<u32> {
    let inner = text.strip_prefix('(')?.strip_suffix(')')?;
    let (g, e) = inner.split_once(',')?;
    let hex = |s: &str| {
        (s.len() == 4 && s.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| u32::from_str_radix(s, 16).ok())
            .flatten()
    };
    Some(hex(g)? << 16 | hex(e)?)
}

fn format_hex_path(path: &[u32]) -> String {
    path.iter()
        .map(|t| format!("{t:08X}"))
        .collect::<Vec<_>>()
        .join(">")
}

/// The two generated tables, as CSV text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generated {
    /// `iod_id,path,type` (goes to [`IOD_TYPES_PATH`]).
    pub iod_types: String,
    /// `sop_class_uid,iod_id` (goes to [`SOP_CLASSES_PATH`]).
    pub sop_classes: String,
}

/// Reads a CSV file of `dir` and returns, per record, the named columns' values.
fn read_columns(dir: &Path, file: &str, columns: &[&str]) -> Result<Vec<Vec<String>>, String> {
    let path = dir.join(file);
    let mut reader =
        csv::Reader::from_path(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let headers = reader
        .headers()
        .map_err(|e| format!("{}: {e}", path.display()))?
        .clone();
    let idx: Vec<usize> = columns
        .iter()
        .map(|c| {
            headers
                .iter()
                .position(|h| h == *c)
                .ok_or_else(|| format!("{}: column {c} missing", path.display()))
        })
        .collect::<Result<_, _>>()?;
    reader
        .records()
        .map(|r| {
            let r = r.map_err(|e| format!("{}: {e}", path.display()))?;
            Ok(idx.iter().map(|&i| r[i].to_string()).collect())
        })
        .collect()
}

/// The tags whose basic-profile action in the Table E.1-1 CSV is compound.
fn compound_tags(table_csv: &str) -> Result<BTreeSet<u32>, String> {
    let mut reader = csv::Reader::from_reader(table_csv.as_bytes());
    let headers = reader.headers().map_err(|e| e.to_string())?.clone();
    let col = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| format!("table: column {name} missing"))
    };
    let (tag_col, basic_col) = (col("tag")?, col("basic_profile")?);
    let mut tags = BTreeSet::new();
    for record in reader.records() {
        let record = record.map_err(|e| e.to_string())?;
        if COMPOUND_CODES.contains(&record[basic_col].trim()) {
            let text = &record[tag_col];
            let tag = parse_paren_tag(text)
                .ok_or_else(|| format!("table: compound action on unsupported tag {text}"))?;
            tags.insert(tag);
        }
    }
    Ok(tags)
}

fn csv_text<const N: usize>(header: [&str; N], rows: &[[&str; N]]) -> Result<String, String> {
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    for row in std::iter::once(&header).chain(rows) {
        writer.write_record(row).map_err(|e| e.to_string())?;
    }
    let bytes = writer.into_inner().map_err(|e| e.to_string())?;
    String::from_utf8(bytes).map_err(|e| e.to_string())
}

/// Builds the two tables from the PS3.3 tables in `iod_dir` (`sop-class-to-iod.csv`,
/// `iod-modules.csv`, `module-attributes.csv`) and the Table E.1-1 CSV text.
pub fn generate(iod_dir: &Path, table_csv: &str) -> Result<Generated, String> {
    let compound = compound_tags(table_csv)?;

    let mut sop_to_iod: BTreeMap<String, String> = BTreeMap::new();
    for r in read_columns(
        iod_dir,
        "sop-class-to-iod.csv",
        &["sop_class_uid", "iod_id"],
    )? {
        let [uid, iod] = <[String; 2]>::try_from(r).expect("two columns");
        if let Some(old) = sop_to_iod.insert(uid.clone(), iod.clone())
            && old != iod
        {
            return Err(format!("SOP Class {uid} maps to both {old} and {iod}"));
        }
    }
    let used_iods: BTreeSet<&str> = sop_to_iod.values().map(String::as_str).collect();

    // module -> the used IODs that list it
    let mut module_iods: HashMap<String, BTreeSet<String>> = HashMap::new();
    for r in read_columns(iod_dir, "iod-modules.csv", &["iod_id", "module_id"])? {
        let [iod, module] = <[String; 2]>::try_from(r).expect("two columns");
        if used_iods.contains(iod.as_str()) {
            module_iods.entry(module).or_default().insert(iod);
        }
    }

    let mut types: BTreeMap<(String, Vec<u32>), AttrType> = BTreeMap::new();
    let columns = ["module_id", "path", "type"];
    for r in read_columns(iod_dir, "module-attributes.csv", &columns)? {
        let [module, path_text, type_text] = <[String; 3]>::try_from(r).expect("three columns");
        let Some(iods) = module_iods.get(&module) else {
            continue;
        };
        let last = path_text.rsplit('>').next().unwrap_or_default();
        // Repeating-group tags (60xx,...) are never compound-coded.
        if !parse_paren_tag(last).is_some_and(|t| compound.contains(&t)) {
            continue;
        }
        let path: Vec<u32> = path_text
            .split('>')
            .map(parse_paren_tag)
            .collect::<Option<_>>()
            .ok_or_else(|| format!("module {module}: unsupported path {path_text}"))?;
        let ty = AttrType::parse(&type_text)
            .ok_or_else(|| format!("module {module}, {path_text}: bad type {type_text:?}"))?;
        for iod in iods {
            types
                .entry((iod.clone(), path.clone()))
                .and_modify(|t| *t = t.strictest(ty))
                .or_insert(ty);
        }
    }

    let type_rows: Vec<[String; 3]> = types
        .iter()
        .map(|((iod, path), ty)| [iod.clone(), format_hex_path(path), ty.as_str().to_string()])
        .collect();
    let type_refs: Vec<[&str; 3]> = type_rows
        .iter()
        .map(|[a, b, c]| [a.as_str(), b.as_str(), c.as_str()])
        .collect();
    let sop_refs: Vec<[&str; 2]> = sop_to_iod
        .iter()
        .map(|(u, i)| [u.as_str(), i.as_str()])
        .collect();
    Ok(Generated {
        iod_types: csv_text(IOD_TYPES_HEADER, &type_refs)?,
        sop_classes: csv_text(SOP_CLASSES_HEADER, &sop_refs)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CT: &str = "1.2.840.10008.5.1.4.1.1.2";
    const BASIC_TEXT_SR: &str = "1.2.840.10008.5.1.4.1.1.88.11";
    const COMPREHENSIVE_SR: &str = "1.2.840.10008.5.1.4.1.1.88.33";
    const ENHANCED_CT: &str = "1.2.840.10008.5.1.4.1.1.2.1";

    fn types(uid: &str) -> &'static IodTypes {
        for_sop_class(uid).unwrap_or_else(|| panic!("{uid} unknown"))
    }

    #[test]
    fn embedded_tables_parse() {
        parse_tables(IOD_TYPES_CSV, SOP_CLASSES_CSV).unwrap();
        assert!(sop_classes().count() >= 180);
    }

    #[test]
    fn ct_image_top_level() {
        let ct = types(CT);
        assert_eq!(ct.iod_id(), "ct-image");
        assert_eq!(ct.type_at(&[0x0010_0020]), Some(AttrType::Two)); // PatientID
        assert_eq!(ct.type_at(&[0x0008_0080]), Some(AttrType::Three)); // InstitutionName
        assert_eq!(ct.type_at(&[0x0008_0023]), Some(AttrType::TwoC)); // ContentDate
        assert_eq!(ct.type_at(&[0x0008_002A]), Some(AttrType::Three)); // AcquisitionDateTime
        assert_eq!(ct.type_at(&[0x0008_1140]), Some(AttrType::Three)); // ReferencedImageSequence
        // Not compound-coded, so not held.
        assert_eq!(ct.type_at(&[0x0010_0010]), None);
        assert_eq!(ct.type_at(&[]), None);
    }

    #[test]
    fn enhanced_ct_is_stricter() {
        let ect = types(ENHANCED_CT);
        assert_eq!(ect.iod_id(), "enhanced-ct-image");
        assert_eq!(ect.type_at(&[0x0008_0023]), Some(AttrType::One)); // ContentDate
        assert_eq!(ect.type_at(&[0x0008_002A]), Some(AttrType::OneC)); // AcquisitionDateTime
    }

    #[test]
    fn sr_nested_paths() {
        // sr-document-general: Author Observer Sequence > Institution Code Sequence, 2.
        let text = types(BASIC_TEXT_SR);
        assert_eq!(text.iod_id(), "basic-text-sr");
        assert_eq!(
            text.type_at(&[0x0040_A078, 0x0008_0082]),
            Some(AttrType::Two)
        );
        // sr-document-content: top-level Observation DateTime, 1C.
        assert_eq!(text.type_at(&[0x0040_A032]), Some(AttrType::OneC));
        // sop-common: Contributing Equipment > Operator Identification > Institution
        // Name, 1C, while Contributing Equipment > Institution Name is 3.
        assert_eq!(
            text.type_at(&[0x0018_A001, 0x0008_1072, 0x0008_0080]),
            Some(AttrType::OneC)
        );
        assert_eq!(
            text.type_at(&[0x0018_A001, 0x0008_0080]),
            Some(AttrType::Three)
        );
        // The same tag at a path the IOD does not have.
        assert_eq!(text.type_at(&[0x0040_A078, 0x0008_0080, 0x0008_0082]), None);

        // Referenced Request Sequence > Referenced Study Sequence, 2.
        let comp = types(COMPREHENSIVE_SR);
        assert_eq!(comp.iod_id(), "comprehensive-sr");
        assert_eq!(
            comp.type_at(&[0x0040_A370, 0x0008_1110]),
            Some(AttrType::Two)
        );
    }

    #[test]
    fn uid_padding_and_unknown_classes() {
        assert_eq!(types(&format!("{CT}\0")).iod_id(), "ct-image");
        assert_eq!(types(&format!("{CT} ")).iod_id(), "ct-image");
        assert!(for_sop_class("1.2.3.4").is_none());
        assert!(for_sop_class("").is_none());
        // Retired US Image Storage is not covered.
        assert!(for_sop_class("1.2.840.10008.5.1.4.1.1.6").is_none());
    }

    #[test]
    fn strictest_order() {
        use AttrType::*;
        assert_eq!(Three.strictest(Two), Two);
        assert_eq!(TwoC.strictest(Two), Two);
        assert_eq!(Two.strictest(OneC), OneC);
        assert_eq!(One.strictest(OneC), One);
        for t in [One, OneC, Two, TwoC, Three] {
            assert_eq!(AttrType::parse(t.as_str()), Some(t));
        }
    }

    /// Every compound-coded tag of Table E.1-1 that occurs in the IOD data resolves,
    /// through some SOP Class, at each path where it occurs.
    #[test]
    fn every_compound_tag_resolves() {
        let compound = compound_tags(super::super::table::TABLE_CSV).unwrap();
        assert!(compound.len() >= 50, "{} compound tags", compound.len());
        let mut reader = csv::Reader::from_reader(IOD_TYPES_CSV.as_bytes());
        let mut in_data = BTreeSet::new();
        for record in reader.records() {
            let record = record.unwrap();
            let path = parse_hex_path(&record[1]).unwrap();
            let ty = AttrType::parse(&record[2]).unwrap();
            let last = *path.last().unwrap();
            assert!(compound.contains(&last), "{:08X} is not compound", last);
            in_data.insert(last);
            let resolved = sop_classes()
                .any(|(_, t)| t.iod_id() == &record[0] && t.type_at(&path) == Some(ty));
            assert!(resolved, "{} {} unresolved", &record[0], &record[1]);
        }
        let missing: Vec<String> = compound
            .difference(&in_data)
            .map(|t| format!("{t:08X}"))
            .collect();
        // With the 2026b tables every compound-coded tag occurs in some IOD.
        assert!(missing.is_empty(), "never in any IOD: {missing:?}");
    }

    /// The committed tables are what the generator makes, when the PS3.3 tables are
    /// next to the repository (not in a fresh clone: then this checks nothing).
    #[test]
    fn committed_tables_match_generator() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/standard/iod");
        if !dir.join("module-attributes.csv").exists() {
            return;
        }
        let generated = generate(&dir, super::super::table::TABLE_CSV).unwrap();
        assert!(
            generated.iod_types == IOD_TYPES_CSV,
            "{IOD_TYPES_PATH} is stale: run `cargo run --release --example gen-iod-types`"
        );
        assert!(
            generated.sop_classes == SOP_CLASSES_CSV,
            "{SOP_CLASSES_PATH} is stale: run `cargo run --release --example gen-iod-types`"
        );
    }
}
