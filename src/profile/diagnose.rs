//! Profile errors shown as cargo and rustc show theirs: `file:line:column`, the
//! source line, a caret under the word at fault, and a `help:` line ("did you mean",
//! "quote the tag"). Runs only once a profile has failed to compile.

use super::compiled::{Diagnostic, ProfileErrors};
use super::table::{self, OPTION_COLUMNS};
use dicom_core::Tag;
use dicom_core::dictionary::DataDictionary;
use dicom_dictionary_std::StandardDataDictionary;
use std::fmt::Write as _;

/// Adds the source line, the column and a help line to every diagnostic whose
/// source text `text_of` can give.
pub fn annotate(
    mut errors: ProfileErrors,
    text_of: &dyn Fn(&str) -> Option<String>,
) -> ProfileErrors {
    for d in &mut errors.0 {
        let text = d.line.and_then(|_| text_of(&d.source));
        if let (Some(text), Some(l)) = (&text, d.line) {
            d.line = Some(line_of_word(text, l, &d.message));
        }
        let line_text = d.line.and_then(|l| {
            text.as_deref()?
                .lines()
                .nth(l.checked_sub(1)? as usize)
                .map(str::to_string)
        });
        if let Some(text) = &line_text {
            // The word the message quotes, where the line has it: the caret goes under it.
            let quoted = backticked(&d.message)
                .into_iter()
                .find_map(|w| text.find(w).map(|i| (i, w.chars().count())));
            match (quoted, d.column) {
                (Some((i, len)), _) => {
                    d.column = Some(text[..i].chars().count() as u64 + 1);
                    d.width = len.max(1);
                }
                (None, Some(_)) => d.width = 1,
                (None, None) => {
                    // The whole entry: past the indentation and a list dash.
                    let body = text.trim_start_matches([' ', '-']);
                    let start = text.len() - body.len();
                    d.column = Some(text[..start].chars().count() as u64 + 1);
                    d.width = body.trim_end().chars().count().max(1);
                }
            }
            d.snippet = Some(text.clone());
        }
        if d.help.is_none() {
            d.help = help_for(&d.message, line_text.as_deref());
        }
    }
    errors
}

/// A rule's errors carry the line of its first key; the word at fault (`action:
/// KEEP`) may be on a later line of the same entry: that line, if so.
fn line_of_word(text: &str, line: u64, message: &str) -> u64 {
    let words = backticked(message);
    let lines: Vec<&str> = text.lines().collect();
    let Some(first) = lines.get(line.saturating_sub(1) as usize) else {
        return line;
    };
    if words.iter().any(|w| first.contains(w)) {
        return line;
    }
    let indent = first.len() - first.trim_start().len();
    for (i, l) in lines.iter().enumerate().skip(line as usize) {
        if l.len() - l.trim_start().len() <= indent || l.trim_start().starts_with("- ") {
            break;
        }
        if words.iter().any(|w| l.contains(w)) {
            return i as u64 + 1;
        }
    }
    line
}

/// The words a message quotes in backticks, in order.
fn backticked(message: &str) -> Vec<&str> {
    message
        .split('`')
        .enumerate()
        .filter(|(i, w)| i % 2 == 1 && !w.is_empty())
        .map(|(_, w)| w)
        .collect()
}

/// The help line for a message, if one helps.
pub fn help_for(message: &str, line: Option<&str>) -> Option<String> {
    let word = backticked(message).into_iter().next();
    // `{tag: (0010,0010), action: X}`: the comma ends the flow value, and the rest
    // becomes a field named `0010)`.
    if let Some(line) = line
        && line.contains('{')
        && unquoted_tag(line)
    {
        return Some(
            "a tag written (gggg,eeee) inside `{ }` must be quoted, as in \
             `{tag: \"(0010,0010)\", action: X}`: unquoted, its comma ends the value"
                .into(),
        );
    }
    let word = word?;
    let mean = |candidates: Vec<String>| {
        did_you_mean(word, candidates.iter().map(String::as_str))
            .map(|m| format!("did you mean `{m}`?"))
    };
    if message.starts_with("unknown keyword") {
        return mean(keywords());
    }
    if message.starts_with("unknown action") {
        let mut c: Vec<String> = super::action::Code::ALL
            .iter()
            .map(|c| c.as_str().to_string())
            .collect();
        c.extend(
            [
                "keep",
                "remove",
                "empty",
                "dummy",
                "clean",
                "hash-uid",
                "date-shift",
            ]
            .map(String::from),
        );
        return mean(c);
    }
    if message.starts_with("unknown option") {
        return mean(OPTION_COLUMNS.iter().map(|(n, _)| n.to_string()).collect());
    }
    if let Some(rest) = message.split_once("expected one of ").map(|(_, r)| r) {
        // serde's "unknown field `x`, expected one of a, b, c".
        return mean(
            rest.split(", ")
                .map(|w| w.trim_matches('`').to_string())
                .collect(),
        );
    }
    if let Some((head, _)) = message.split_once(", got `") {
        // "… must be fail, warn or off, got `x`".
        let choices = head.rsplit_once("must be ")?.1;
        let c: Vec<&str> = choices
            .split([',', ' '])
            .filter(|w| !w.is_empty() && *w != "or")
            .map(|w| w.trim_matches('`'))
            .collect();
        let got = message.rsplit_once(", got `")?.1.trim_end_matches('`');
        return did_you_mean(got, c).map(|m| format!("did you mean `{m}`?"));
    }
    None
}

/// Whether `line` holds a `(gggg,eeee)` outside quotes.
fn unquoted_tag(line: &str) -> bool {
    let mut quote = None;
    let b = line.as_bytes();
    for (i, &c) in b.iter().enumerate() {
        match (quote, c) {
            (None, b'"' | b'\'') => quote = Some(c),
            (Some(q), _) if c == q => quote = None,
            (None, b'(') => {
                let t = &b[i..];
                if t.len() >= 11
                    && t[1..5].iter().all(|x| x.is_ascii_hexdigit() || *x == b'x')
                    && t[5] == b','
                    && t[6..10].iter().all(|x| x.is_ascii_hexdigit() || *x == b'x')
                    && t[10] == b')'
                {
                    return true;
                }
            }
            _ => {}
        }
    }
    false
}

/// The candidate nearest `word`: the same word in another case first, then the
/// closest by edit distance when it is close enough to be a typo.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let lower = word.to_lowercase();
    let mut best: Option<(f64, &str)> = None;
    for c in candidates {
        if c == word {
            continue;
        }
        if c.to_lowercase() == lower {
            return Some(c);
        }
        let score = strsim::jaro_winkler(&lower, &c.to_lowercase());
        if best.is_none_or(|(s, _)| score > s) {
            best = Some((score, c));
        }
    }
    best.filter(|(s, _)| *s >= 0.88).map(|(_, c)| c)
}

/// Keywords a profile is likely to name: those of Table E.1-1 and of the groups
/// that hold most of what a profile touches.
fn keywords() -> Vec<String> {
    let mut out: Vec<String> = table::rows()
        .iter()
        .map(|r| r.keyword.clone())
        .filter(|k| !k.is_empty())
        .collect();
    for group in [
        0x0008u16, 0x0010, 0x0018, 0x0020, 0x0028, 0x0032, 0x0038, 0x0040,
    ] {
        for elem in 0..=0xFFFFu16 {
            if let Some(e) = StandardDataDictionary.by_tag(Tag(group, elem)) {
                out.push(e.alias.to_string());
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// A diagnostic as cargo shows one.
pub fn render(d: &Diagnostic) -> String {
    let mut out = format!("error: {}\n", d.message);
    let at = match (d.line, d.column) {
        (Some(l), Some(c)) => format!("{}:{l}:{c}", d.source),
        (Some(l), None) => format!("{}:{l}", d.source),
        _ => d.source.clone(),
    };
    let gutter = d.line.map_or(1, |l| l.to_string().len());
    let pad = " ".repeat(gutter);
    let _ = write!(out, "{pad}--> {at}");
    if let (Some(l), Some(text)) = (d.line, &d.snippet) {
        let _ = write!(out, "\n{pad} |\n{l} | {text}");
        if let Some(c) = d.column {
            let lead: String = text
                .chars()
                .take(c.saturating_sub(1) as usize)
                .map(|ch| if ch == '\t' { '\t' } else { ' ' })
                .collect();
            let _ = write!(out, "\n{pad} | {lead}{}", "^".repeat(d.width.max(1)));
        }
    }
    if let Some(h) = &d.help {
        let _ = write!(out, "\n{pad} = help: {h}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diag(line: u64, message: &str) -> Diagnostic {
        Diagnostic {
            source: "site.yaml".into(),
            line: Some(line),
            message: message.into(),
            ..Diagnostic::default()
        }
    }

    #[test]
    fn typos_find_their_word() {
        assert_eq!(
            did_you_mean("KEEP", ["keep", "remove"]),
            Some("keep"),
            "case"
        );
        assert_eq!(
            did_you_mean("retain-uid", OPTION_COLUMNS.iter().map(|(n, _)| *n)),
            Some("retain-uids")
        );
        assert_eq!(did_you_mean("zzzz", ["keep", "remove"]), None);
        let kw = keywords();
        assert_eq!(
            did_you_mean("StudyDescripton", kw.iter().map(String::as_str)),
            Some("StudyDescription")
        );
    }

    #[test]
    fn a_caret_under_the_quoted_word_and_a_help_line() {
        let text = "extends: basic\nrules:\n  - {tag: StudyDescripton, action: X}\n";
        let e = annotate(
            ProfileErrors(vec![diag(3, "unknown keyword `StudyDescripton`")]),
            &|_| Some(text.to_string()),
        );
        assert_eq!(
            render(&e.0[0]),
            "\
error: unknown keyword `StudyDescripton`
 --> site.yaml:3:11
  |
3 |   - {tag: StudyDescripton, action: X}
  |           ^^^^^^^^^^^^^^^
  = help: did you mean `StudyDescription`?"
        );
    }

    #[test]
    fn choices_in_the_message_are_candidates() {
        assert_eq!(
            help_for(
                "quarantine.burned-in-unknown must be fail, warn or off, got `warning`",
                None
            )
            .as_deref(),
            Some("did you mean `warn`?")
        );
        assert_eq!(
            help_for(
                "unknown field `rule`, expected one of name, description, extends, rules",
                None
            )
            .as_deref(),
            Some("did you mean `rules`?")
        );
        assert!(
            help_for(
                "unknown field `0010)`, expected one of tag",
                Some("  - {tag: (0010,0010), action: X}")
            )
            .unwrap()
            .contains("must be quoted")
        );
        assert!(!unquoted_tag("  - {tag: \"(0010,0010)\", action: X}"));
    }
}
