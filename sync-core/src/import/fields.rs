//! Field values shared by the CSV and JSON readers: people, tags,
//! coordinates, yes/no, attachment names; and the last check of a report
//! before it is returned (the model's own limits, see `document/validate.rs`).

use std::collections::{HashMap, HashSet};

use crate::document::{
    validate_description, validate_person, validate_place, validate_tag, validate_timeline_entry,
    validate_title,
};
use crate::model::{Person, Role};

use super::types::{ImportedReport, RefusedRow};

/// The report if it passes the checks an edit makes, else the reason.
/// An empty title is refused here too: the model allows it, an import
/// should not produce one silently.
pub(crate) fn check(report: ImportedReport) -> Result<ImportedReport, String> {
    if report.title.trim().is_empty() {
        return Err("missing title: every report needs one".into());
    }
    let fix =
        |e: crate::document::EditError| format!("{e}; fix it in the file and import it again");
    validate_title(&report.title).map_err(fix)?;
    validate_description(&report.description).map_err(fix)?;
    validate_place(&report.place).map_err(fix)?;
    for person in &report.people {
        validate_person(person).map_err(fix)?;
    }
    for tag in &report.tags {
        validate_tag(tag).map_err(fix)?;
    }
    for entry in &report.timeline {
        validate_timeline_entry(entry).map_err(fix)?;
    }
    Ok(report)
}

/// Refuses the second and later reports that share a source key: each
/// must map to its own report when the file is imported again.
pub(crate) fn refuse_repeated_keys(
    reports: Vec<ImportedReport>,
    refused: &mut Vec<RefusedRow>,
) -> Vec<ImportedReport> {
    let mut first_line: HashMap<String, usize> = HashMap::with_capacity(reports.len());
    let mut kept = Vec::with_capacity(reports.len());
    for report in reports {
        match first_line.get(&report.source_key) {
            Some(line) => refused.push(RefusedRow::new(
                report.line,
                format!(
                    "id {:?} is already the id of the report at line {line}; give each report its own id",
                    report.source_key
                ),
            )),
            None => {
                first_line.insert(report.source_key.clone(), report.line);
                kept.push(report);
            }
        }
    }
    refused.sort_by_key(|r| r.line);
    kept
}

/// An id as a source key: trimmed, a leading `uuid:` (ODK, Kobo) dropped so
/// that `meta/instanceID` and `_uuid` name a submission alike.
pub(crate) fn source_key(id: &str) -> String {
    let id = id.trim();
    id.strip_prefix("uuid:").unwrap_or(id).to_owned()
}

/// Splits a list written in one cell: on `;`, or on `,` too when
/// `commas`, dropping blanks.
pub(crate) fn split_list(value: &str, commas: bool) -> impl Iterator<Item = &str> {
    value
        .split(move |c: char| c == ';' || c == '\n' || (commas && c == ','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// Tags from `a, b; c` (and from `a b c` when `spaces`, as ODK writes a
/// select-multiple). The caller drops repeats once, with [`dedupe`].
pub(crate) fn push_tags(tags: &mut Vec<String>, value: &str, spaces: bool) {
    for tag in split_list(value, true) {
        if spaces {
            tags.extend(tag.split_whitespace().map(str::to_owned));
        } else {
            tags.push(tag.to_owned());
        }
    }
}

/// Drops repeats, keeping the first of each, in one pass.
pub(crate) fn dedupe(items: &mut Vec<String>) {
    let mut seen = HashSet::with_capacity(items.len());
    items.retain(|item| seen.insert(item.clone()));
}

/// One person written as `Name`, `Name (role)` or `Name: role`. A
/// parenthesis or suffix that is not a role becomes the note.
pub(crate) fn person(text: &str) -> Person {
    let text = text.trim();
    let (name, extra) = if let Some(open) = text.strip_suffix(')').and_then(|t| t.rfind('(')) {
        (&text[..open], &text[open + 1..text.len() - 1])
    } else if let Some((name, extra)) = text.split_once(':') {
        (name, extra)
    } else {
        (text, "")
    };
    let (name, extra) = (name.trim(), extra.trim());
    match extra.parse::<Role>() {
        Ok(role) => Person {
            name: name.to_owned(),
            role,
            note: String::new(),
        },
        Err(_) => Person {
            name: name.to_owned(),
            role: Role::Other,
            note: extra.to_owned(),
        },
    }
}

/// A coordinate written as a number, with a decimal comma allowed (as
/// spreadsheets in many locales write them).
pub(crate) fn number(value: &str) -> Option<f64> {
    let value = value.trim();
    let parsed = value.parse::<f64>().ok().or_else(|| {
        (!value.contains('.'))
            .then(|| value.replacen(',', ".", 1).parse::<f64>().ok())
            .flatten()
    })?;
    parsed.is_finite().then_some(parsed)
}

/// Reads a coordinate, or says which and why not.
pub(crate) fn coordinate(what: &str, value: &str) -> Result<f64, String> {
    number(value).ok_or_else(|| {
        format!(
            "{what} {:?} is not a number; write it like 43.2567",
            value.trim()
        )
    })
}

/// A geopoint as ODK and Kobo write it in one cell, `lat lon [alt [acc]]`,
/// or as Kobo's `_geolocation`, `[lat, lon]`. `None` if it is not one.
pub(crate) fn geopoint(value: &str) -> Option<(f64, f64)> {
    let inner = value
        .trim()
        .strip_prefix('[')
        .and_then(|v| v.strip_suffix(']'))
        .map(|v| v.replace(',', " "))
        .unwrap_or_else(|| value.to_owned());
    let parts: Vec<&str> = inner.split_whitespace().collect();
    if !(2..=4).contains(&parts.len()) {
        return None;
    }
    let numbers: Option<Vec<f64>> = parts.iter().map(|p| p.parse::<f64>().ok()).collect();
    let numbers = numbers?;
    numbers
        .iter()
        .all(|n| n.is_finite())
        .then(|| (numbers[0], numbers[1]))
}

/// Yes or no, as spreadsheets and forms write it.
pub(crate) fn yes_no(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "" | "false" | "no" | "n" | "0" | "f" => Some(false),
        "true" | "yes" | "y" | "1" | "t" | "x" => Some(true),
        _ => None,
    }
}

/// The file name at the end of a path or URL.
pub(crate) fn base_name(path: &str) -> &str {
    let path = path.trim();
    let path = path.split(['?', '#']).next().unwrap_or(path);
    path.rsplit(['/', '\\']).next().unwrap_or(path).trim()
}

/// Attachment names from one cell (the caller drops repeats once): Kobo's `_attachments` (a JSON array of
/// objects with `filename`, or `media_file_basename`), or names separated
/// by `;`, `,` or new lines (ODK media columns hold one name).
pub(crate) fn push_attachment_names(names: &mut Vec<String>, value: &str) {
    let value = value.trim();
    if value.starts_with('[') {
        if let Ok(serde_json::Value::Array(items)) = serde_json::from_str(value) {
            for item in items {
                if let Some(name) = json_attachment_name(&item) {
                    push_name(names, &name);
                }
            }
            return;
        }
    }
    for name in split_list(value, true) {
        push_name(names, name);
    }
}

/// The file name of one attachment entry in JSON: a string, or an object
/// with `media_file_basename`, `filename`, `file_name` or `name`.
pub(crate) fn json_attachment_name(item: &serde_json::Value) -> Option<String> {
    match item {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Object(map) => ["media_file_basename", "filename", "file_name", "name"]
            .iter()
            .find_map(|k| map.get(*k).and_then(|v| v.as_str()))
            .map(str::to_owned),
        _ => None,
    }
}

fn push_name(names: &mut Vec<String>, path: &str) {
    let name = base_name(path);
    if !name.is_empty() {
        names.push(name.to_owned());
    }
}

/// Cuts `text` to at most `max` bytes at a character boundary, marking the
/// cut with an ellipsis.
pub(crate) fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", text[..end].trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn people_are_read_with_roles_or_notes() {
        let p = person("Aleksey Nigay (detainee)");
        assert_eq!(
            (p.name.as_str(), p.role, p.note.as_str()),
            ("Aleksey Nigay", Role::Detainee, "")
        );
        let p = person(" Tulegen Shakirov:officer ");
        assert_eq!(
            (p.name.as_str(), p.role),
            ("Tulegen Shakirov", Role::Officer)
        );
        let p = person("Timur Kibirov (journalist)");
        assert_eq!(
            (p.name.as_str(), p.role, p.note.as_str()),
            ("Timur Kibirov", Role::Other, "journalist")
        );
        let p = person("Baurjan Lesbayev");
        assert_eq!(
            (p.name.as_str(), p.role, p.note.as_str()),
            ("Baurjan Lesbayev", Role::Other, "")
        );
    }

    #[test]
    fn lists_tags_numbers_and_attachments_read_as_spreadsheets_write_them() {
        let mut tags = vec![];
        push_tags(&mut tags, "arrest; rally, arrest ,,", false);
        push_tags(&mut tags, "police violence", true);
        dedupe(&mut tags);
        assert_eq!(tags, ["arrest", "rally", "police", "violence"]);
        assert_eq!(number("43,25"), Some(43.25));
        assert_eq!(number("1,234.5"), None);
        assert_eq!(number("NaN"), None);
        assert_eq!(geopoint("43.25 76.95 800 5"), Some((43.25, 76.95)));
        assert_eq!(geopoint("[43.25, 76.95]"), Some((43.25, 76.95)));
        assert_eq!(geopoint("Almaty"), None);
        assert_eq!(geopoint("43.25"), None);
        let mut names = vec![];
        push_attachment_names(
            &mut names,
            r#"[{"download_url":"https://kf/x","filename":"user/attachments/abc/photo_1.jpg","mimetype":"image/jpeg"},{"media_file_basename":"clip.mp4"}]"#,
        );
        push_attachment_names(
            &mut names,
            "C:\\phone\\1621.jpg; media/1622.jpg; media/clip.mp4",
        );
        dedupe(&mut names);
        assert_eq!(names, ["photo_1.jpg", "clip.mp4", "1621.jpg", "1622.jpg"]);
        assert_eq!(yes_no("Yes"), Some(true));
        assert_eq!(yes_no("perhaps"), None);
        assert_eq!(truncate("ab€cd", 6), "ab…");
    }
}
