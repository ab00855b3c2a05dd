//! JSON: the project's own export, or a plain list of reports (both forms
//! are documented in the module doc of [`super`]).

use serde_json::{Map, Value};

use super::dates::{self, parse_datetime};
use super::fields;
use super::types::{ImportError, ImportOptions, ImportedReport, RefusedRow, Zone};
use crate::model::{Person, Place, Role, TimelineEntry};

/// The `format` of the project's export.
pub const EXPORT_FORMAT: &str = "fieldsync-export";
/// The export `version` this build reads.
pub const EXPORT_VERSION: u64 = 1;

/// Report keys read, after aliases.
const CONTENT_KEYS: [&str; 12] = [
    "id",
    "title",
    "occurred_at",
    "approximate",
    "place",
    "lat",
    "lon",
    "description",
    "tags",
    "people",
    "timeline",
    "attachments",
];

/// Keys of an exported report that an import leaves out: they belong to
/// the report it came from (its case, author, review, history), not to
/// the new one.
const BOOKKEEPING_KEYS: [&str; 7] = [
    "case",
    "created_by",
    "created_at",
    "schema_version",
    "review",
    "history",
    "unknown_fields",
];

fn canonical(key: &str) -> Option<&'static str> {
    let key = match key {
        "latitude" => "lat",
        "longitude" | "lng" => "lon",
        "attachment_names" => "attachments",
        other => other,
    };
    CONTENT_KEYS
        .iter()
        .chain(BOOKKEEPING_KEYS.iter())
        .find(|k| **k == key)
        .copied()
}

fn known_keys() -> String {
    let mut keys: Vec<&str> = CONTENT_KEYS.to_vec();
    keys.extend(["latitude", "longitude", "ignore"]);
    keys.join(", ")
}

pub(super) fn parse(
    text: &str,
    options: &ImportOptions,
    file: &str,
) -> Result<(Vec<ImportedReport>, Vec<RefusedRow>), ImportError> {
    let value: Value = serde_json::from_str(text).map_err(|e| {
        let message = e.to_string();
        let message = match message.rfind(" at line ") {
            Some(cut) => message[..cut].to_owned(),
            None => message,
        };
        ImportError::Json {
            file: file.into(),
            line: e.line(),
            column: e.column(),
            message,
        }
    })?;
    let shape = |message: &str| ImportError::JsonShape {
        file: file.into(),
        message: message.into(),
    };
    let (items, export, lines) = match value {
        Value::Array(items) => {
            let lines = element_lines(text, None);
            (items, false, lines)
        }
        Value::Object(mut map) => {
            if map.get("format").and_then(Value::as_str) != Some(EXPORT_FORMAT) {
                return Err(shape(
                    "a JSON object must be a fieldsync export ({\"format\": \"fieldsync-export\", \"version\": 1, \"reports\": [...]}); \
                     other reports go in a top-level array of report objects",
                ));
            }
            match map.get("version") {
                Some(v)
                    if v.as_u64() == Some(EXPORT_VERSION)
                        || v.as_str() == Some(&EXPORT_VERSION.to_string()) => {}
                Some(v) => {
                    return Err(ImportError::ExportVersion {
                        file: file.into(),
                        version: v.to_string(),
                    })
                }
                None => {
                    return Err(shape(
                        "the export has no \"version\"; this build reads version 1",
                    ))
                }
            }
            let Some(Value::Array(items)) = map.remove("reports") else {
                return Err(shape("the export has no \"reports\" array"));
            };
            (items, true, element_lines(text, Some("reports")))
        }
        _ => {
            return Err(shape(
                "expected a top-level array of report objects or a fieldsync export object",
            ))
        }
    };
    let renames = renames(options)?;
    let zone = options.timezone.as_ref();
    let mut reports = Vec::new();
    let mut refused = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let line = lines.get(index).copied().unwrap_or(1);
        let Value::Object(object) = item else {
            refused.push(RefusedRow::new(
                line,
                format!("item {index} is {}, not a report object", kind(item)),
            ));
            continue;
        };
        let fields = known_fields(object, &renames, export, line, file)?;
        let result = report(&fields, index, line, zone, options).and_then(fields::check);
        match result {
            Ok(report) => reports.push(report),
            Err(reason) => refused.push(RefusedRow::new(line, reason)),
        }
    }
    let reports = fields::refuse_repeated_keys(reports, &mut refused);
    Ok((reports, refused))
}

/// `--map key=field` as key → canonical key, or `None` to ignore.
fn renames(options: &ImportOptions) -> Result<Vec<(String, Option<&'static str>)>, ImportError> {
    options
        .map
        .iter()
        .map(|(key, target)| {
            let target = target.trim();
            if target.eq_ignore_ascii_case("ignore") {
                return Ok((key.trim().to_owned(), None));
            }
            match canonical(&target.to_ascii_lowercase()).filter(|k| CONTENT_KEYS.contains(k)) {
                Some(k) => Ok((key.trim().to_owned(), Some(k))),
                None => Err(ImportError::BadMap {
                    entry: format!("{key}={target}"),
                    reason: format!("unknown key {target:?}; known keys: {}", known_keys()),
                }),
            }
        })
        .collect()
}

/// The item's values by canonical key. A key nobody knows refuses the
/// file in the list form (it would be dropped silently otherwise); an
/// export from a newer build may carry keys this one ignores.
fn known_fields<'v>(
    object: &'v Map<String, Value>,
    renames: &[(String, Option<&'static str>)],
    export: bool,
    line: usize,
    file: &str,
) -> Result<Vec<(&'static str, &'v Value)>, ImportError> {
    let mut fields = Vec::with_capacity(object.len());
    for (key, value) in object {
        let target = match renames.iter().find(|(k, _)| k == key) {
            Some((_, target)) => *target,
            None => match canonical(key) {
                Some(k) => Some(k),
                None if export => None,
                None => {
                    return Err(ImportError::UnknownKey {
                        file: file.into(),
                        line,
                        key: key.clone(),
                        known: known_keys(),
                    })
                }
            },
        };
        if let Some(k) = target.filter(|k| CONTENT_KEYS.contains(k)) {
            fields.push((k, value));
        }
    }
    Ok(fields)
}

fn report(
    fields: &[(&'static str, &Value)],
    index: usize,
    line: usize,
    zone: Option<&Zone>,
    options: &ImportOptions,
) -> Result<ImportedReport, String> {
    let get = |key: &str| {
        fields
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| *v)
            .filter(|v| !v.is_null())
    };
    let source_key = match get("id") {
        Some(Value::String(s)) if !s.trim().is_empty() => fields::source_key(s),
        Some(Value::Number(n)) => n.to_string(),
        Some(other) if !matches!(other, Value::String(_)) => {
            return Err(format!("\"id\" should be a string, found {}", kind(other)))
        }
        _ => format!("item:{index}"),
    };
    let title = string(get("title"), "title")?.trim().to_owned();
    if title.is_empty() {
        return Err("missing title: give the report a \"title\"".into());
    }
    let (occurred_at, mut approximate) = match get("occurred_at") {
        Some(v) => instant(v, "occurred_at", zone)?,
        None => match options.default_date {
            Some(date) => {
                let written = dates::Written {
                    date,
                    time: None,
                    offset: None,
                };
                (dates::resolve(&written, zone)?, true)
            }
            None => return Err("missing occurred_at: say when the events happened, e.g. \"2016-05-21T10:40:00+06:00\"".into()),
        },
    };
    if let Some(v) = get("approximate") {
        approximate |= yes_no(v, "approximate")?;
    }
    let place = place(get("place"), get("lat"), get("lon"))?;
    let description = string(get("description"), "description")?;
    let mut tags = Vec::new();
    match get("tags") {
        None => {}
        Some(Value::String(s)) => fields::push_tags(&mut tags, s, false),
        Some(Value::Array(items)) => {
            for item in items {
                let Value::String(s) = item else {
                    return Err(format!(
                        "\"tags\" should hold strings, found {}",
                        kind(item)
                    ));
                };
                fields::push_tags(&mut tags, s, false);
            }
        }
        Some(other) => {
            return Err(format!(
                "\"tags\" should be an array of strings or a comma-separated string, found {}",
                kind(other)
            ))
        }
    }
    fields::dedupe(&mut tags);
    let people = match get("people") {
        None => Vec::new(),
        Some(Value::Array(items)) => items.iter().map(person).collect::<Result<_, _>>()?,
        Some(other) => {
            return Err(format!(
                "\"people\" should be an array, found {}",
                kind(other)
            ))
        }
    };
    let timeline = match get("timeline") {
        None => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| timeline_entry(i, item, zone))
            .collect::<Result<_, _>>()?,
        Some(other) => {
            return Err(format!(
                "\"timeline\" should be an array, found {}",
                kind(other)
            ))
        }
    };
    let mut attachment_names = Vec::new();
    match get("attachments") {
        None => {}
        Some(Value::String(s)) => fields::push_attachment_names(&mut attachment_names, s),
        Some(Value::Array(items)) => {
            for name in items.iter().filter_map(fields::json_attachment_name) {
                fields::push_attachment_names(&mut attachment_names, &name);
            }
        }
        Some(other) => {
            return Err(format!(
                "\"attachments\" should be an array of file names, found {}",
                kind(other)
            ))
        }
    }
    fields::dedupe(&mut attachment_names);
    Ok(ImportedReport {
        source_key,
        line,
        title,
        occurred_at,
        approximate,
        place,
        description,
        people,
        tags,
        timeline,
        attachment_names,
    })
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Refuses an object with a key the reader would otherwise drop.
fn only_keys(map: &Map<String, Value>, known: &[&str], what: &str) -> Result<(), String> {
    match map.keys().find(|k| !known.contains(&k.as_str())) {
        None => Ok(()),
        Some(key) => Err(format!(
            "{what} has an unknown key {key:?}; known keys: {}",
            known.join(", ")
        )),
    }
}

fn string(value: Option<&Value>, key: &str) -> Result<String, String> {
    match value {
        None => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(format!(
            "\"{key}\" should be a string, found {}",
            kind(other)
        )),
    }
}

fn yes_no(value: &Value, key: &str) -> Result<bool, String> {
    match value {
        Value::Bool(b) => Ok(*b),
        Value::String(s) => fields::yes_no(s)
            .ok_or_else(|| format!("\"{key}\" should be true or false, found {s:?}")),
        other => Err(format!(
            "\"{key}\" should be true or false, found {}",
            kind(other)
        )),
    }
}

fn instant(
    value: &Value,
    key: &str,
    zone: Option<&Zone>,
) -> Result<(chrono::DateTime<chrono::FixedOffset>, bool), String> {
    let Value::String(s) = value else {
        return Err(format!(
            "\"{key}\" should be a date string such as \"2016-05-21T10:40:00+06:00\", found {}",
            kind(value)
        ));
    };
    let written = parse_datetime(s).map_err(|r| format!("\"{key}\": {r}"))?;
    let at = dates::resolve(&written, zone).map_err(|r| format!("\"{key}\": {r}"))?;
    Ok((at, written.time.is_none()))
}

fn coordinate(value: Option<&Value>, what: &str) -> Result<Option<f64>, String> {
    match value {
        None => Ok(None),
        Some(Value::Number(n)) => n
            .as_f64()
            .map(Some)
            .ok_or_else(|| format!("{what} {n} is not a number")),
        Some(Value::String(s)) => fields::coordinate(what, s).map(Some),
        Some(other) => Err(format!("{what} should be a number, found {}", kind(other))),
    }
}

fn place(place: Option<&Value>, lat: Option<&Value>, lon: Option<&Value>) -> Result<Place, String> {
    let mut out = match place {
        None => Place::default(),
        Some(Value::String(name)) => Place {
            name: name.trim().to_owned(),
            ..Place::default()
        },
        Some(Value::Object(map)) => {
            only_keys(
                map,
                &["name", "lat", "lon", "latitude", "longitude"],
                "\"place\"",
            )?;
            let get = |k: &str| map.get(k).filter(|v| !v.is_null());
            Place {
                name: string(get("name"), "place.name")?.trim().to_owned(),
                lat: coordinate(get("lat").or_else(|| get("latitude")), "latitude")?,
                lon: coordinate(get("lon").or_else(|| get("longitude")), "longitude")?,
            }
        }
        Some(other) => {
            return Err(format!(
                "\"place\" should be a string or {{name, lat, lon}}, found {}",
                kind(other)
            ))
        }
    };
    let (lat, lon) = (coordinate(lat, "latitude")?, coordinate(lon, "longitude")?);
    for (given, top, what) in [
        (&mut out.lat, lat, "latitude"),
        (&mut out.lon, lon, "longitude"),
    ] {
        match (*given, top) {
            (Some(a), Some(b)) if a != b => {
                return Err(format!(
                    "the place's {what} {a} and the report's {what} {b} differ; keep one"
                ))
            }
            (None, Some(b)) => *given = Some(b),
            _ => {}
        }
    }
    Ok(out)
}

fn person(value: &Value) -> Result<Person, String> {
    match value {
        Value::String(s) => Ok(fields::person(s)),
        Value::Object(map) => {
            only_keys(map, &["name", "role", "note"], "a person")?;
            let get = |k: &str| map.get(k).filter(|v| !v.is_null());
            let role = match get("role") {
                None => Role::Other,
                Some(Value::String(r)) if r.trim().is_empty() => Role::Other,
                Some(Value::String(r)) => r.trim().parse::<Role>()?,
                Some(other) => {
                    return Err(format!(
                        "a person's \"role\" should be a string, found {}",
                        kind(other)
                    ))
                }
            };
            Ok(Person {
                name: string(get("name"), "name")?.trim().to_owned(),
                role,
                note: string(get("note"), "note")?,
            })
        }
        other => Err(format!(
            "\"people\" should hold names or {{name, role, note}} objects, found {}",
            kind(other)
        )),
    }
}

fn timeline_entry(
    index: usize,
    value: &Value,
    zone: Option<&Zone>,
) -> Result<TimelineEntry, String> {
    let Value::Object(map) = value else {
        return Err(format!(
            "timeline entry {index} should be an {{at, text, approximate}} object, found {}",
            kind(value)
        ));
    };
    only_keys(
        map,
        &["at", "text", "approximate"],
        &format!("timeline entry {index}"),
    )?;
    let get = |k: &str| map.get(k).filter(|v| !v.is_null());
    let Some(at) = get("at") else {
        return Err(format!("timeline entry {index} has no \"at\" time"));
    };
    let (at, mut approximate) =
        instant(at, "at", zone).map_err(|r| format!("timeline entry {index}: {r}"))?;
    if let Some(v) = get("approximate") {
        approximate |=
            yes_no(v, "approximate").map_err(|r| format!("timeline entry {index}: {r}"))?;
    }
    Ok(TimelineEntry {
        at,
        text: string(get("text"), "text").map_err(|r| format!("timeline entry {index}: {r}"))?,
        approximate,
    })
}

/// The 1-based line where each element of the report array starts: the
/// top-level array (`key` `None`) or the array under `key` in the
/// top-level object. One pass over text serde_json has already accepted.
fn element_lines(text: &str, key: Option<&str>) -> Vec<usize> {
    let mut lines = Vec::new();
    let (mut line, mut depth) = (1usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    let mut target: Option<usize> = None;
    let mut done = false;
    let mut expect_element = false;
    let mut string_start = 0;
    let mut last_string: Option<&str> = None;
    let mut last_key: Option<&str> = None;
    for (i, &b) in text.as_bytes().iter().enumerate() {
        if b == b'\n' {
            line += 1;
        }
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
                last_string = Some(&text[string_start..i]);
            }
            continue;
        }
        if b.is_ascii_whitespace() {
            continue;
        }
        if expect_element && target == Some(depth) && b != b']' {
            lines.push(line);
            expect_element = false;
        }
        match b {
            b'"' => {
                in_string = true;
                string_start = i + 1;
            }
            b'[' | b'{' => {
                depth += 1;
                let wanted = match key {
                    None => depth == 1,
                    Some(k) => depth == 2 && last_key == Some(k),
                };
                if b == b'[' && !done && target.is_none() && wanted {
                    target = Some(depth);
                    expect_element = true;
                }
            }
            b']' | b'}' => {
                if target == Some(depth) {
                    target = None;
                    done = true;
                }
                depth = depth.saturating_sub(1);
            }
            b',' if target == Some(depth) => expect_element = true,
            b':' if depth == 1 => last_key = last_string.take(),
            _ => {}
        }
    }
    lines
}

#[cfg(test)]
mod tests;
