//! CSV: a header row names the columns, each later row is one report.
//!
//! The separator is `,`, `;` or tab, whichever the header line has most
//! of. Quoted fields may hold separators and new lines; a report's line is
//! the physical line where its row starts.
//!
//! Column names are matched case-insensitively, trimmed, spaces read as
//! `_`:
//!
//! | field | column names |
//! |---|---|
//! | title | `title`, `subject`, `headline` |
//! | occurred_at | `occurred_at`, `datetime`, `date`, `when`, `event_date`, `incident_date`, … (a date, perhaps with a time) |
//! | time | `time`, `event_time`, `incident_time` (joined to the date) |
//! | place | `place`, `location`, `address` (a `lat lon alt acc` geopoint there gives coordinates) |
//! | latitude, longitude | `latitude`/`lat`, `longitude`/`lon`/`lng`/`long`; Kobo `_<name>_latitude` |
//! | geopoint | `geopoint`, `gps`, `coordinates`, Kobo `_geolocation` (`[lat, lon]`) |
//! | description | `description`, `text`, `narrative`, `details`, `what_happened` (several are joined) |
//! | tags | `tags`, `tag`, `keywords`, Kobo `_tags` (split on `;` or `,`) |
//! | people | `people`, `persons`, `names`, `person` (split on `;`; `Name (role)` or `Name: role`) |
//! | attachments | `attachments`, `photo`, `image`, `video`, `audio`, `media`, `file`, Kobo `_attachments` (file names only) |
//! | approximate | `approximate`, `approx`, `estimated` (yes/no) |
//! | id | `id`, then `KEY`, `rootUuid`, then `instanceID`, then `_uuid`, then `_id`: the first non-empty is the source key |
//! | start, submitted_at | ODK/Kobo `start`; `SubmissionDate`, `_submission_time` |
//!
//! A name with a group prefix (`group-title`, `grp/title`, ODK's
//! `location-Latitude`, `meta-instanceID`) is read as the rest when the
//! rest is known. ODK Central's and KoboToolbox's own columns are known and
//! left out (`end`, `today`, `deviceid`, `SubmitterID`, `SubmitterName`,
//! `AttachmentsPresent`, `AttachmentsExpected`, `Status`, `ReviewState`,
//! `DeviceID`, `Edits`, `FormVersion`, `instanceName`, `*-Altitude`,
//! `*-Accuracy`, `_index`, `_status`, `__version__`, `_validation_status`,
//! `_notes`, `_submitted_by`, `_xform_id_string`, `formhub/uuid`, media
//! `*_URL`, ODK select-multiple `field/choice` columns, …). Any other
//! column refuses the file, naming it, unless `--map column=field` (or
//! `column=ignore`) says what it is; `--map` also overrides the names
//! above.
//!
//! When: the `occurred_at` column (with `time` if any); if a row has none,
//! ODK/Kobo `start`, else the submission time, then marked approximate
//! (they say when the form was filled or sent, not when the events
//! happened). Kobo's `_submission_time` carries no offset and is UTC.
//! In an ODK or Kobo export, tags are also split on spaces (a
//! select-multiple answer).

use std::collections::BTreeMap;

use ::csv::StringRecord;
use chrono::{DateTime, FixedOffset, NaiveTime, Offset, Utc};

use super::dates::{self, parse_datetime, parse_time};
use super::fields;
use super::types::{quoted_list, ImportError, ImportOptions, ImportedReport, RefusedRow, Zone};
use crate::model::Place;

/// What a column holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Field {
    /// An id; lower is preferred.
    Id(u8),
    Title,
    OccurredAt,
    Time,
    Start,
    SubmittedAt,
    Approximate,
    Place,
    Latitude,
    Longitude,
    Geopoint,
    Description,
    Tags,
    People,
    Attachments,
    Ignore,
    /// A header cell left empty: fine while its rows are empty too.
    Unnamed,
}

/// The fields `--map` may name.
const MAP_TARGETS: [(&str, Field); 17] = [
    ("title", Field::Title),
    ("occurred_at", Field::OccurredAt),
    ("date", Field::OccurredAt),
    ("time", Field::Time),
    ("place", Field::Place),
    ("latitude", Field::Latitude),
    ("longitude", Field::Longitude),
    ("geopoint", Field::Geopoint),
    ("description", Field::Description),
    ("tags", Field::Tags),
    ("people", Field::People),
    ("attachments", Field::Attachments),
    ("approximate", Field::Approximate),
    ("id", Field::Id(0)),
    ("start", Field::Start),
    ("submitted_at", Field::SubmittedAt),
    ("ignore", Field::Ignore),
];

fn known_fields() -> String {
    MAP_TARGETS
        .iter()
        .map(|(name, _)| *name)
        .collect::<Vec<_>>()
        .join(", ")
}

fn field_name(field: Field) -> &'static str {
    MAP_TARGETS
        .iter()
        .find(|(_, f)| *f == field)
        .map_or("id", |(name, _)| name)
}

/// A column name this module knows without a group prefix, lower case.
fn builtin(name: &str) -> Option<Field> {
    use Field::*;
    Some(match name {
        "id" | "report_id" => Id(0),
        "key" | "rootuuid" => Id(1),
        "instanceid" => Id(2),
        "_uuid" => Id(3),
        "_id" => Id(4),
        "title" | "subject" | "headline" => Title,
        "occurred_at" | "occurred" | "datetime" | "date_time" | "date" | "when" | "event_date"
        | "event_datetime" | "incident_date" | "date_of_event" | "date_of_incident" => OccurredAt,
        "time" | "event_time" | "incident_time" | "time_of_event" => Time,
        "start" => Start,
        "submissiondate" | "submission_date" | "_submission_time" | "submitted_at" => SubmittedAt,
        "approximate" | "approx" | "estimated" => Approximate,
        "place" | "location" | "address" | "place_name" => Place,
        "latitude" | "lat" => Latitude,
        "longitude" | "lon" | "lng" | "long" => Longitude,
        "geopoint" | "gps" | "coordinates" | "_geolocation" => Geopoint,
        "description" | "text" | "narrative" | "details" | "what_happened" => Description,
        "tags" | "tag" | "keywords" | "_tags" => Tags,
        "people" | "persons" | "names" | "person" => People,
        "attachments" | "attachment" | "_attachments" | "photo" | "photos" | "image" | "images"
        | "picture" | "pictures" | "media" | "audio" | "video" | "file" | "files" => Attachments,
        // ODK Central, ODK Briefcase, SurveyCTO, KoboToolbox bookkeeping.
        "end"
        | "today"
        | "deviceid"
        | "device_id"
        | "subscriberid"
        | "simserial"
        | "phonenumber"
        | "username"
        | "email"
        | "audit"
        | "instancename"
        | "deprecatedid"
        | "submitterid"
        | "submittername"
        | "attachmentspresent"
        | "attachmentsexpected"
        | "status"
        | "reviewstate"
        | "edits"
        | "formversion"
        | "isvalidated"
        | "formdef_version"
        | "review_status"
        | "review_comments"
        | "review_corrections"
        | "altitude"
        | "accuracy"
        | "precision"
        | "_index"
        | "_status"
        | "__version__"
        | "_version_"
        | "_version"
        | "_validation_status"
        | "_notes"
        | "_submitted_by"
        | "_xform_id_string"
        | "_bamboo_dataset_id"
        | "_parent_index"
        | "_parent_table_name"
        | "_submission__id"
        | "_duration"
        | "formhub/uuid"
        | "formhub-uuid"
        | "parent_key" => Ignore,
        _ => return None,
    })
}

/// What a header cell holds, by the rules in the module doc.
fn column_field(header: &str) -> Option<Field> {
    let name = header.trim().to_lowercase().replace(' ', "_");
    if name.is_empty() {
        return Some(Field::Unnamed);
    }
    if let Some(field) = builtin(&name).or_else(|| kobo_geopoint(&name)) {
        return Some(field);
    }
    // A group prefix: group-title, a/b/title, location-Latitude.
    for (i, c) in name.char_indices() {
        if c == '-' || c == '/' {
            let rest = &name[i + 1..];
            if let Some(field) = builtin(rest).or_else(|| kobo_geopoint(rest)) {
                return Some(field);
            }
        }
    }
    // ODK select-multiple choice columns (tags/arrest) and Kobo media
    // URLs (photo_url) sit beside a column that holds the value.
    let base = name
        .rsplit_once('/')
        .map(|(base, _)| base)
        .or_else(|| name.strip_suffix("_url"))?;
    column_field(base)
        .filter(|f| !matches!(f, Field::Unnamed))
        .map(|_| Field::Ignore)
}

/// Kobo writes a geopoint `location` also as `_location_latitude`,
/// `_location_longitude`, `_location_altitude`, `_location_precision`.
fn kobo_geopoint(name: &str) -> Option<Field> {
    let name = name.strip_prefix('_')?;
    if name.ends_with("_latitude") {
        Some(Field::Latitude)
    } else if name.ends_with("_longitude") {
        Some(Field::Longitude)
    } else if name.ends_with("_altitude") || name.ends_with("_precision") {
        Some(Field::Ignore)
    } else {
        None
    }
}

/// Whether a line reads as a header this module knows (for detection).
pub(super) fn looks_like_header(line: &str) -> bool {
    let delimiter = guess_delimiter(line);
    let cells: Vec<&str> = line
        .split(delimiter as char)
        .map(|c| c.trim().trim_matches('"'))
        .collect();
    let known = cells
        .iter()
        .filter(|c| !c.is_empty() && column_field(c).is_some())
        .count();
    cells.len() >= 2 && known >= 2 && known * 2 >= cells.len()
}

fn guess_delimiter(line: &str) -> u8 {
    let (mut quoted, mut counts) = (false, [0usize; 3]);
    for c in line.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => counts[0] += 1,
            ';' if !quoted => counts[1] += 1,
            '\t' if !quoted => counts[2] += 1,
            _ => {}
        }
    }
    let best = (0..3).max_by_key(|&i| (counts[i], 3 - i)).unwrap_or(0);
    [b',', b';', b'\t'][best]
}

/// Which column holds what.
#[derive(Default)]
struct Layout {
    names: Vec<String>,
    ids: Vec<(u8, usize)>,
    title: Option<usize>,
    occurred_at: Option<usize>,
    time: Option<usize>,
    start: Option<usize>,
    submitted_at: Option<usize>,
    approximate: Option<usize>,
    place: Option<usize>,
    latitude: Option<usize>,
    longitude: Option<usize>,
    geopoint: Option<usize>,
    description: Vec<usize>,
    tags: Vec<usize>,
    people: Vec<usize>,
    attachments: Vec<usize>,
    unnamed: Vec<usize>,
    /// An ODK or Kobo export: tags are split on spaces too.
    form_export: bool,
}

pub(super) fn parse(
    text: &str,
    options: &ImportOptions,
    file: &str,
) -> Result<(Vec<ImportedReport>, Vec<RefusedRow>), ImportError> {
    let first_line = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let mut reader = ::csv::ReaderBuilder::new()
        .delimiter(guess_delimiter(first_line))
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut records = reader.records();
    let header = loop {
        match records.next() {
            None => return Err(ImportError::Empty { file: file.into() }),
            Some(Err(e)) => return Err(csv_error(file, &e)),
            Some(Ok(r)) if r.iter().all(|c| c.trim().is_empty()) => continue,
            Some(Ok(r)) => break r,
        }
    };
    let names: Vec<String> = header.iter().map(|c| c.trim().to_owned()).collect();
    let layout = layout(names, options, file)?;
    let zone = options.timezone.as_ref();
    let mut reports = Vec::new();
    let mut refused = Vec::new();
    let mut row_number = 0;
    let mut lines = LineCounter::default();
    for record in records {
        let record = match record {
            Ok(r) => r,
            Err(e) => return Err(csv_error(file, &e)),
        };
        let line = lines.line_at(text, record.position().map_or(0, |p| p.byte() as usize));
        if record.iter().all(|c| c.trim().is_empty()) {
            continue;
        }
        row_number += 1;
        let result = if record.len() != layout.names.len() {
            Err(format!(
                "the row has {} fields but the header has {}; check this row's quotes and separators",
                record.len(),
                layout.names.len()
            ))
        } else {
            row(&layout, &record, row_number, line, zone, options).and_then(fields::check)
        };
        match result {
            Ok(report) => reports.push(report),
            Err(reason) => refused.push(RefusedRow::new(line, reason)),
        }
    }
    let reports = fields::refuse_repeated_keys(reports, &mut refused);
    Ok((reports, refused))
}

/// Physical line numbers of record starts, counted from byte offsets: the
/// csv crate's own count lags by one after a `\r\n` (it counts the `\n`
/// only when it reads on). Offsets only grow, so counting is linear.
#[derive(Default)]
struct LineCounter {
    byte: usize,
    line: usize,
}

impl LineCounter {
    fn line_at(&mut self, text: &str, byte: usize) -> usize {
        // A record starts after the line end the reader may still hold.
        let bytes = text.as_bytes();
        let mut start = byte.min(bytes.len());
        while start < bytes.len() && matches!(bytes[start], b'\r' | b'\n') {
            start += 1;
        }
        if start >= self.byte {
            self.line += bytes[self.byte..start]
                .iter()
                .filter(|&&b| b == b'\n')
                .count();
            self.byte = start;
        }
        self.line + 1
    }
}

fn csv_error(file: &str, e: &::csv::Error) -> ImportError {
    // With flexible records and text already checked to be UTF-8, the csv
    // crate has little left to complain about; say what it said.
    ImportError::Csv {
        file: file.into(),
        line: e.position().map_or(0, |p| p.line() as usize),
        message: e.to_string(),
    }
}

fn layout(names: Vec<String>, options: &ImportOptions, file: &str) -> Result<Layout, ImportError> {
    let mut fields: Vec<Option<Field>> = names.iter().map(|n| column_field(n)).collect();
    for (column, target) in &options.map {
        let entry = || format!("{column}={target}");
        let target_field = MAP_TARGETS
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(target.trim()))
            .map(|(_, f)| *f)
            .ok_or_else(|| ImportError::BadMap {
                entry: entry(),
                reason: format!("unknown field {target:?}; known fields: {}", known_fields()),
            })?;
        let index = names
            .iter()
            .position(|n| n.eq_ignore_ascii_case(column.trim()))
            .ok_or_else(|| ImportError::BadMap {
                entry: entry(),
                reason: format!(
                    "{file} has no column {column:?}; its columns are: {}",
                    quoted_list(&names)
                ),
            })?;
        fields[index] = Some(target_field);
    }
    let unknown: Vec<String> = names
        .iter()
        .zip(&fields)
        .filter(|(_, f)| f.is_none())
        .map(|(n, _)| n.clone())
        .collect();
    if !unknown.is_empty() {
        let nothing_known = fields
            .iter()
            .all(|f| matches!(f, None | Some(Field::Unnamed)));
        let looks_like_data =
            |n: &String| n.is_empty() || fields::number(n).is_some() || parse_datetime(n).is_ok();
        if nothing_known && names.iter().any(looks_like_data) {
            return Err(ImportError::NoHeader {
                file: file.into(),
                first: fields::truncate(&names.join(","), 120),
            });
        }
        return Err(ImportError::UnknownColumns {
            file: file.into(),
            columns: unknown,
            known: known_fields(),
        });
    }
    let mut layout = Layout::default();
    let mut singles: BTreeMap<&'static str, Vec<usize>> = BTreeMap::new();
    for (i, field) in fields.iter().enumerate() {
        let Some(field) = *field else { continue };
        let single = match field {
            Field::Id(priority) => {
                layout.ids.push((priority, i));
                None
            }
            Field::Title => Some(&mut layout.title),
            Field::OccurredAt => Some(&mut layout.occurred_at),
            Field::Time => Some(&mut layout.time),
            Field::Start => Some(&mut layout.start),
            Field::SubmittedAt => Some(&mut layout.submitted_at),
            Field::Approximate => Some(&mut layout.approximate),
            Field::Place => Some(&mut layout.place),
            Field::Latitude => Some(&mut layout.latitude),
            Field::Longitude => Some(&mut layout.longitude),
            Field::Geopoint => Some(&mut layout.geopoint),
            Field::Description => {
                layout.description.push(i);
                None
            }
            Field::Tags => {
                layout.tags.push(i);
                None
            }
            Field::People => {
                layout.people.push(i);
                None
            }
            Field::Attachments => {
                layout.attachments.push(i);
                None
            }
            Field::Unnamed => {
                layout.unnamed.push(i);
                None
            }
            Field::Ignore => None,
        };
        if let Some(slot) = single {
            slot.get_or_insert(i);
            singles.entry(field_name(field)).or_default().push(i);
        }
    }
    let conflict = singles
        .into_iter()
        .filter(|(_, c)| c.len() > 1)
        .min_by_key(|(_, c)| c[0]);
    if let Some((field, columns)) = conflict {
        return Err(ImportError::ColumnsConflict {
            file: file.into(),
            field: field.into(),
            columns: columns.iter().map(|&i| names[i].clone()).collect(),
        });
    }
    layout.ids.sort_by_key(|&(priority, i)| (priority, i));
    if layout.title.is_none() {
        return Err(ImportError::MissingColumn {
            file: file.into(),
            field: "title",
            hint: "title, subject or headline",
        });
    }
    let has_date =
        layout.occurred_at.is_some() || layout.start.is_some() || layout.submitted_at.is_some();
    if !has_date && options.default_date.is_none() {
        return Err(ImportError::MissingColumn {
            file: file.into(),
            field: "occurred_at",
            hint: "occurred_at, date, datetime or when; ODK/Kobo start or SubmissionDate",
        });
    }
    layout.form_export = names.iter().any(|n| {
        matches!(
            n.to_lowercase().as_str(),
            "submissiondate"
                | "key"
                | "_uuid"
                | "_submission_time"
                | "meta-instanceid"
                | "meta/instanceid"
        )
    });
    layout.names = names;
    Ok(layout)
}

/// The trimmed value of column `i`, if it has one.
fn value(record: &StringRecord, i: Option<usize>) -> Option<&str> {
    i.and_then(|i| record.get(i))
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

impl Layout {
    fn name(&self, i: Option<usize>) -> &str {
        i.map_or("", |i| self.names[i].as_str())
    }
}

fn row(
    layout: &Layout,
    record: &StringRecord,
    row_number: usize,
    line: usize,
    zone: Option<&Zone>,
    options: &ImportOptions,
) -> Result<ImportedReport, String> {
    let cell = |i: Option<usize>| value(record, i);
    let name = |i: Option<usize>| layout.name(i);
    if let Some(&i) = layout.unnamed.iter().find(|&&i| cell(Some(i)).is_some()) {
        return Err(format!(
            "column {} has no name in the header but this row has a value in it; name the column (and map it if need be)",
            i + 1
        ));
    }
    let source_key = layout
        .ids
        .iter()
        .find_map(|&(_, i)| cell(Some(i)))
        .map(fields::source_key)
        .unwrap_or_else(|| format!("row:{row_number}"));
    let title = cell(layout.title).unwrap_or_default().to_owned();
    if title.is_empty() {
        return Err(format!(
            "missing title: column {:?} is empty; fill it in",
            name(layout.title)
        ));
    }
    let (occurred_at, mut approximate) = when(layout, record, zone, options)?;
    if let Some(v) = cell(layout.approximate) {
        approximate |= fields::yes_no(v).ok_or_else(|| {
            format!(
                "column {:?}: {v:?} is not yes or no (true/false, 1/0)",
                name(layout.approximate)
            )
        })?;
    }
    let mut place = Place::default();
    if let Some(v) = cell(layout.place) {
        match fields::geopoint(v) {
            Some((lat, lon)) => (place.lat, place.lon) = (Some(lat), Some(lon)),
            None => place.name = v.to_owned(),
        }
    }
    if cell(layout.latitude).is_some() || cell(layout.longitude).is_some() {
        place.lat = cell(layout.latitude)
            .map(|v| {
                fields::coordinate(&format!("column {:?}: latitude", name(layout.latitude)), v)
            })
            .transpose()?;
        place.lon = cell(layout.longitude)
            .map(|v| {
                fields::coordinate(
                    &format!("column {:?}: longitude", name(layout.longitude)),
                    v,
                )
            })
            .transpose()?;
    } else if let Some(v) = cell(layout.geopoint) {
        let (lat, lon) = fields::geopoint(v).ok_or_else(|| {
            format!(
                "column {:?}: {v:?} is not a geopoint; write it as \"lat lon\" or [lat, lon]",
                name(layout.geopoint)
            )
        })?;
        (place.lat, place.lon) = (Some(lat), Some(lon));
    }
    let description = layout
        .description
        .iter()
        .filter_map(|&i| cell(Some(i)))
        .collect::<Vec<_>>()
        .join("\n\n");
    let people = layout
        .people
        .iter()
        .filter_map(|&i| cell(Some(i)))
        .flat_map(|v| fields::split_list(v, false))
        .map(fields::person)
        .collect();
    let mut tags = Vec::new();
    for v in layout.tags.iter().filter_map(|&i| cell(Some(i))) {
        fields::push_tags(&mut tags, v, layout.form_export);
    }
    fields::dedupe(&mut tags);
    let mut attachment_names = Vec::new();
    for v in layout.attachments.iter().filter_map(|&i| cell(Some(i))) {
        fields::push_attachment_names(&mut attachment_names, v);
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
        timeline: Vec::new(),
        attachment_names,
    })
}

/// When the events happened, and whether that is an estimate. See the
/// module doc for the order of columns.
fn when(
    layout: &Layout,
    record: &StringRecord,
    zone: Option<&Zone>,
    options: &ImportOptions,
) -> Result<(DateTime<FixedOffset>, bool), String> {
    let cell = |i: Option<usize>| value(record, i);
    let name = |i: Option<usize>| layout.name(i);
    let in_column =
        |col: Option<usize>, reason: String| format!("column {:?}: {reason}", name(col));
    let time = cell(layout.time)
        .map(|v| parse_time(v).map_err(|r| in_column(layout.time, r)))
        .transpose()?;
    if let Some(v) = cell(layout.occurred_at) {
        let mut written = parse_datetime(v).map_err(|r| in_column(layout.occurred_at, r))?;
        match (written.time, time) {
            (None, Some(t)) => written.time = Some(t),
            (Some(a), Some(b)) if a != b => {
                return Err(format!(
                    "column {:?} says {} but column {:?} says {}; keep one time",
                    name(layout.occurred_at),
                    a.format("%H:%M"),
                    name(layout.time),
                    b.format("%H:%M")
                ))
            }
            _ => {}
        }
        let at = dates::resolve(&written, zone).map_err(|r| in_column(layout.occurred_at, r))?;
        return Ok((at, written.time.is_none()));
    }
    if let (Some(date), Some(t)) = (options.default_date, time) {
        let written = dates::Written {
            date,
            time: Some(t),
            offset: None,
        };
        let at = dates::resolve(&written, zone).map_err(|r| in_column(layout.time, r))?;
        return Ok((at, false));
    }
    if let Some(v) = cell(layout.start) {
        let written = parse_datetime(v).map_err(|r| in_column(layout.start, r))?;
        let at = dates::resolve(&written, zone).map_err(|r| in_column(layout.start, r))?;
        return Ok((at, true));
    }
    if let Some(v) = cell(layout.submitted_at) {
        let written = parse_datetime(v).map_err(|r| in_column(layout.submitted_at, r))?;
        // Kobo's _submission_time is UTC written without an offset.
        let utc = Zone::Fixed(Utc.fix());
        let kobo = name(layout.submitted_at).eq_ignore_ascii_case("_submission_time");
        let at = dates::resolve(&written, if kobo { Some(&utc) } else { zone })
            .map_err(|r| in_column(layout.submitted_at, r))?;
        return Ok((at, true));
    }
    if let Some(date) = options.default_date {
        let written = dates::Written {
            date,
            time: Some(NaiveTime::MIN),
            offset: None,
        };
        let at = dates::resolve(&written, zone)?;
        return Ok((at, true));
    }
    let column = layout.occurred_at.or(layout.start).or(layout.submitted_at);
    Err(format!(
        "no date: column {:?} is empty; fill it in, or give a default date",
        name(column)
    ))
}

#[cfg(test)]
mod tests;
