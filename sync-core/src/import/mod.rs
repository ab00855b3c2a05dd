//! Reports that arrived some other way: parsers for JSON, CSV and narrative
//! text, as plain functions over bytes. No file is opened and no replica is
//! touched here; the `fieldsync import` command reads the file, calls
//! [`parse`] and turns each [`ImportedReport`] into a
//! [`NewReport`](crate::NewReport) with [`ImportedReport::to_new_report`].
//!
//! ```
//! use fieldsync_core::import::{parse, Format, ImportOptions, Zone};
//!
//! let csv = "title,date,time,place\nArrest at the bus stop,21.05.2016,10:40 am,Almaty\n";
//! let options = ImportOptions {
//!     timezone: Some("Asia/Almaty".parse::<Zone>().unwrap()),
//!     ..ImportOptions::new("reports.csv")
//! };
//! let parsed = parse(csv.as_bytes(), &options).unwrap();
//! assert_eq!(parsed.format, Format::Csv);
//! assert_eq!(parsed.reports[0].occurred_at.to_rfc3339(), "2016-05-21T10:40:00+06:00");
//! assert_eq!(parsed.reports[0].source_key, "row:1");
//! ```
//!
//! # What a caller gets
//!
//! A whole-file problem (empty, not UTF-8, a line over 1 MiB, invalid JSON,
//! a CSV column nobody knows) is an [`ImportError`] and nothing is imported.
//! A problem in one report (a bad date, a latitude out of range, no title)
//! puts that report in [`ParsedFile::refused`] with its line and a reason
//! saying how to fix it; the other reports are still returned. Every
//! returned report passes the checks an [`Edit`](crate::Edit) makes
//! (`document::validate_*`), so creating it cannot fail on its content.
//!
//! [`ImportedReport::source_key`] names a report inside its file (an id
//! column or key if the file has one, else its position), so importing a
//! corrected file can find the report it imported before.
//!
//! # Formats
//!
//! [`Format::Auto`] picks by extension (`.json`; `.csv`, `.tsv`; `.txt`,
//! `.md`, `.markdown`), else by content: `{` or `[` first is JSON, a first
//! line naming known columns is CSV, anything else is text.
//!
//! **JSON**, in one of two forms:
//!
//! 1. The project's own export:
//!    `{"format": "fieldsync-export", "version": 1, "case": "...", "reports": [...]}`
//!    where each report is a [`Report`](crate::Report) as it serializes
//!    (`id`, `case`, `created_by`, `created_at`, `occurred_at`,
//!    `approximate`, `place {name, lat, lon}`, `title`, `description`,
//!    `people [{name, role, note}]`, `tags []`,
//!    `timeline [{at, text, approximate}]`, `review`, `attachments`) plus
//!    `history`. The content fields are taken; `case`, `created_*`,
//!    `review`, `history` and the attachments' sealed blobs are not (the
//!    blobs cannot be re-sealed from a JSON file), and keys this build does
//!    not know are ignored. `source_key` is the report's `id`.
//! 2. A list of reports: a top-level array of objects with `title`,
//!    `occurred_at` (RFC 3339, or any form below with a timezone option),
//!    optional `approximate`, `place` (a string or `{name, lat, lon}`),
//!    `lat`/`lon` (or `latitude`/`longitude`), `description`, `tags` (an
//!    array or a comma-separated string), `people` (`[{name, role, note}]`
//!    or `["Name", "Name (role)"]`), `timeline` (`[{at, text, approximate}]`),
//!    `attachments` (file names), `id`. Another key is an error naming it,
//!    unless [`ImportOptions::map`] maps it (to a key above or `ignore`).
//!    Objects inside (`place`, people, timeline entries) take only the
//!    keys shown; another key refuses that report.
//!    `source_key` is `id` if given, else `item:<index from 0>`.
//!
//! **CSV** (or `;`/tab separated, guessed from the header line): `csv.rs`
//! lists the column names it knows, including ODK Central's and
//! KoboToolbox's exports. `source_key` is an id column's value
//! (`id`, `KEY`, `meta-rootUuid`, `meta-instanceID`, `_uuid`, `_id`, in that
//! order of preference, a leading `uuid:` dropped) else `row:<n>` counting
//! data rows from 1.
//!
//! **Text or Markdown**: one narrative report per file, read as `text.rs`
//! says; people, plates and places it notices are [`Candidates`], never
//! fields (except the place, offered as the report's place name).
//! `source_key` is `text`.
//!
//! # Dates and times
//!
//! Accepted (see `dates.rs`): RFC 3339 and ISO 8601 (`2016-05-21T10:40:00+06:00`,
//! `2016-05-21 10:40`, `2016-05-21`), `21.05.2016`, `05/21/2016` (month
//! first, as in the US: a first number over 12 is refused rather than
//! guessed), `21 May 2016`, `21st of May 2016`, `May 21, 2016`, each with
//! an optional time (`10:40`, `10:40:05`, `10:40 am`, `10 pm`, `10:40 a.m.`)
//! and an optional offset (`Z`, `UTC`, `+06:00`, `+0600`). A value without
//! an offset is a local time of [`ImportOptions::timezone`]; without that
//! option the row is refused (text files: the whole file). A date without
//! a time is midnight, marked approximate.
//!
//! Timezones are a [`Zone`]: an IANA name (`Asia/Almaty`, resolved with the
//! rules in force on that date, so 2016-05-21 in Almaty is +06:00) or a
//! fixed offset (`+06:00`). A local time that a daylight-saving change makes
//! ambiguous or skips is refused, asking for an explicit offset.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, FixedOffset, NaiveDate};
use chrono_tz::Tz;

use crate::document::NewReport;
use crate::ids::{CaseId, ReportId};
use crate::model::{Person, Place, TimelineEntry};

mod candidates;
mod csv;
mod dates;
mod fields;
mod json;
pub mod plan;
mod text;

pub use json::{EXPORT_FORMAT, EXPORT_VERSION};

/// Longest line accepted, in bytes. A longer one is refused before any
/// parsing: no report field needs it, and it keeps hostile files cheap.
pub const MAX_LINE_BYTES: usize = 1024 * 1024;

/// Which parser to use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Format {
    /// By extension, else by content.
    #[default]
    Auto,
    Json,
    Csv,
    Text,
}

/// A timezone for times written without an offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Zone {
    /// An IANA zone such as `Asia/Almaty`: the offset is the one in force at
    /// that place on that date.
    Named(Tz),
    /// A fixed offset such as `+06:00`.
    Fixed(FixedOffset),
}

/// How to read a file.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ImportOptions {
    pub format: Format,
    /// The file's name: for detection by extension and for messages.
    pub file_name: String,
    /// `--map column=field`: CSV columns (or JSON keys) to read as a field,
    /// or to ignore (`column=ignore`); they override the built-in names.
    pub map: Vec<(String, String)>,
    /// For times written without an offset.
    pub timezone: Option<Zone>,
    /// For reports that give no date at all (text), or a time without a
    /// date (CSV `time` column without a date column).
    pub default_date: Option<NaiveDate>,
    /// The year of dates written without one ("21 May"), before any year
    /// the text itself implies.
    pub year: Option<i32>,
}

/// One report read from a file, ready to become a [`NewReport`].
#[derive(Clone, Debug, PartialEq)]
pub struct ImportedReport {
    /// Stable identity of this report inside its file, so that a corrected
    /// file maps to the same report (see the module doc).
    pub source_key: String,
    /// 1-based line where the report starts.
    pub line: usize,
    pub title: String,
    pub occurred_at: DateTime<FixedOffset>,
    pub approximate: bool,
    pub place: Place,
    pub description: String,
    pub people: Vec<Person>,
    pub tags: Vec<String>,
    pub timeline: Vec<TimelineEntry>,
    /// Names of files the report refers to (KoboToolbox `_attachments`, ODK
    /// media columns): names only, never paths.
    pub attachment_names: Vec<String>,
}

/// A report that was not imported, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefusedRow {
    /// 1-based line where the report starts.
    pub line: usize,
    /// What is wrong and how to fix it.
    pub reason: String,
    /// A date has no year and nothing gave one: the caller may offer a way
    /// to give it ([`ImportOptions::year`]).
    pub needs_year: bool,
}

impl RefusedRow {
    pub fn new(line: usize, reason: String) -> Self {
        Self {
            line,
            reason,
            needs_year: false,
        }
    }
}

/// Things a parser noticed but did not put into any field: the coordinator
/// confirms them. Only the text parser finds any.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Candidates {
    /// Names of people, in order of first appearance.
    pub people: Vec<String>,
    /// Vehicle plate numbers.
    pub plates: Vec<String>,
    /// Places named in the title line.
    pub places: Vec<String>,
}

/// What [`parse`] read from a file.
#[derive(Clone, Debug, PartialEq)]
pub struct ParsedFile {
    /// The format used (never [`Format::Auto`]).
    pub format: Format,
    pub reports: Vec<ImportedReport>,
    pub refused: Vec<RefusedRow>,
    pub candidates: Candidates,
}

/// The whole file was refused; nothing of it is imported.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ImportError {
    #[error("{file} is empty: there is nothing to import")]
    Empty { file: String },
    #[error("{file} is UTF-16 text; save it as UTF-8 and import it again")]
    Utf16 { file: String },
    #[error("{file} holds a NUL byte at line {line} (byte offset {offset}): it is not a text file; import a JSON, CSV or text file saved as UTF-8")]
    Binary {
        file: String,
        line: usize,
        offset: usize,
    },
    #[error("{file} is not UTF-8: byte 0x{byte:02X} at line {line}, column {column} (byte offset {offset}); it may be Latin-1 or Windows-1252: save it as UTF-8 and import it again")]
    NotUtf8 {
        file: String,
        line: usize,
        column: usize,
        offset: usize,
        byte: u8,
    },
    #[error("line {line} of {file} is longer than {max} bytes; no report field needs such a line, so the file is refused unread: check that it is the file you meant (JSON must be pretty-printed, a value per line)")]
    LineTooLong {
        file: String,
        line: usize,
        max: usize,
    },
    #[error("{file} is not valid JSON: {message} at line {line}, column {column}")]
    Json {
        file: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{file}: {message}")]
    JsonShape { file: String, message: String },
    #[error("{file} is not readable CSV at line {line}: {message}")]
    Csv {
        file: String,
        line: usize,
        message: String,
    },
    #[error("{file} is a fieldsync export of version {version}; this build reads version 1: import it with a newer fieldsync")]
    ExportVersion { file: String, version: String },
    #[error("{file}: unknown key {key:?} in the report at line {line}; known keys: {known}; or pass --map {key}=FIELD (or --map {key}=ignore)")]
    UnknownKey {
        file: String,
        line: usize,
        key: String,
        known: String,
    },
    #[error("{file} has no header row: the first line holds values ({first:?}); add a first line naming the columns, e.g. title,occurred_at,place,description")]
    NoHeader { file: String, first: String },
    #[error("{file}: unknown column{} {}; known fields: {known}; pass --map COLUMN=FIELD, or --map COLUMN=ignore to leave it out", if columns.len() > 1 { "s" } else { "" }, quoted_list(columns))]
    UnknownColumns {
        file: String,
        columns: Vec<String>,
        known: String,
    },
    #[error(
        "{file}: columns {} all give the {field}; keep one with --map COLUMN=ignore for the others",
        quoted_list(columns)
    )]
    ColumnsConflict {
        file: String,
        field: String,
        columns: Vec<String>,
    },
    #[error("{file} has no {field} column ({hint}); name one with --map COLUMN={field}")]
    MissingColumn {
        file: String,
        field: &'static str,
        hint: &'static str,
    },
    #[error("--map {entry}: {reason}")]
    BadMap { entry: String, reason: String },
    #[error("{file} is narrative text, whose times carry no offset: give --timezone (e.g. Asia/Almaty or +06:00)")]
    TimezoneRequired { file: String },
}

/// `--format` was not one of the formats.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown format {0:?}; expected one of: auto, json, csv, text")]
pub struct UnknownFormat(pub String);

/// `--timezone` was neither an IANA name nor an offset.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown timezone {0:?}; give an IANA name such as Asia/Almaty or Europe/Berlin, or an offset such as +06:00")]
pub struct UnknownZone(pub String);

/// Reads `bytes` as `options` say. See the module doc.
pub fn parse(bytes: &[u8], options: &ImportOptions) -> Result<ParsedFile, ImportError> {
    let file = display_name(&options.file_name);
    let text = decode(bytes, &file)?;
    let format = match options.format {
        Format::Auto => detect(&options.file_name, text),
        given => given,
    };
    let (reports, refused, candidates) = match format {
        Format::Json => {
            let (r, x) = json::parse(text, options, &file)?;
            (r, x, Candidates::default())
        }
        Format::Csv => {
            let (r, x) = csv::parse(text, options, &file)?;
            (r, x, Candidates::default())
        }
        Format::Text | Format::Auto => text::parse(text, options, &file)?,
    };
    Ok(ParsedFile {
        format: if format == Format::Auto {
            Format::Text
        } else {
            format
        },
        reports,
        refused,
        candidates,
    })
}

impl ImportOptions {
    /// Options for a file of this name: format by detection, no map, no
    /// timezone, no default date.
    pub fn new(file_name: impl Into<String>) -> Self {
        Self {
            file_name: file_name.into(),
            ..Self::default()
        }
    }
}

impl ImportedReport {
    /// The report to create, under `id` in `case`. A caller that wants an
    /// import to be repeatable derives `id` from the case, the file and
    /// [`source_key`](Self::source_key) with [`ReportId::derived_from`].
    pub fn to_new_report(&self, id: ReportId, case: CaseId) -> NewReport {
        NewReport {
            id,
            case,
            title: self.title.clone(),
            occurred_at: self.occurred_at,
            approximate: self.approximate,
            place: self.place.clone(),
            description: self.description.clone(),
            people: self.people.clone(),
            tags: self.tags.clone(),
            timeline: self.timeline.clone(),
        }
    }
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Auto => "auto",
            Format::Json => "json",
            Format::Csv => "csv",
            Format::Text => "text",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Format {
    type Err = UnknownFormat;
    fn from_str(s: &str) -> Result<Self, UnknownFormat> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Format::Auto),
            "json" => Ok(Format::Json),
            "csv" => Ok(Format::Csv),
            "text" | "txt" | "md" | "markdown" => Ok(Format::Text),
            _ => Err(UnknownFormat(s.to_owned())),
        }
    }
}

impl FromStr for Zone {
    type Err = UnknownZone;
    /// `Asia/Almaty`, `UTC`, `+06:00`, `+0600`, `+06`, `-03:30`.
    fn from_str(s: &str) -> Result<Self, UnknownZone> {
        let t = s.trim();
        if t.starts_with(['+', '-']) {
            return dates::parse_offset(t)
                .map(Zone::Fixed)
                .ok_or_else(|| UnknownZone(s.to_owned()));
        }
        t.parse::<Tz>()
            .map(Zone::Named)
            .map_err(|_| UnknownZone(s.to_owned()))
    }
}

impl From<Tz> for Zone {
    fn from(tz: Tz) -> Self {
        Zone::Named(tz)
    }
}

impl From<FixedOffset> for Zone {
    fn from(offset: FixedOffset) -> Self {
        Zone::Fixed(offset)
    }
}

impl fmt::Display for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Zone::Named(tz) => f.write_str(tz.name()),
            Zone::Fixed(offset) => write!(f, "{offset}"),
        }
    }
}

fn display_name(file_name: &str) -> String {
    if file_name.is_empty() {
        "the file".to_owned()
    } else {
        file_name.to_owned()
    }
}

fn quoted_list(items: &[String]) -> String {
    items
        .iter()
        .map(|c| format!("{c:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The checks every format shares, in one pass each: not empty, not UTF-16
/// or binary, no line over [`MAX_LINE_BYTES`], UTF-8. A UTF-8 byte order
/// mark (as spreadsheet programs write) is dropped.
fn decode<'a>(bytes: &'a [u8], file: &str) -> Result<&'a str, ImportError> {
    let file = || file.to_owned();
    if bytes.starts_with(&[0xFF, 0xFE]) || bytes.starts_with(&[0xFE, 0xFF]) {
        return Err(ImportError::Utf16 { file: file() });
    }
    let bytes = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]).unwrap_or(bytes);
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ImportError::Empty { file: file() });
    }
    let mut line = 1;
    let mut line_start = 0;
    for (offset, &b) in bytes.iter().enumerate() {
        match b {
            b'\n' => {
                line += 1;
                line_start = offset + 1;
            }
            0 => {
                // UTF-16 without a byte order mark has a NUL beside nearly
                // every ASCII character.
                let head = &bytes[..bytes.len().min(200)];
                let nuls = head.iter().filter(|&&b| b == 0).count();
                if nuls * 3 >= head.len() {
                    return Err(ImportError::Utf16 { file: file() });
                }
                return Err(ImportError::Binary {
                    file: file(),
                    line,
                    offset,
                });
            }
            _ if offset - line_start >= MAX_LINE_BYTES => {
                return Err(ImportError::LineTooLong {
                    file: file(),
                    line,
                    max: MAX_LINE_BYTES,
                });
            }
            _ => {}
        }
    }
    std::str::from_utf8(bytes).map_err(|e| {
        let offset = e.valid_up_to();
        let before = &bytes[..offset];
        let line_start = before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        // The prefix is valid UTF-8, so this cannot fail; count characters.
        let column = std::str::from_utf8(&before[line_start..])
            .map_or(offset - line_start, |s| s.chars().count())
            + 1;
        ImportError::NotUtf8 {
            file: file(),
            line: before.iter().filter(|&&b| b == b'\n').count() + 1,
            column,
            offset,
            byte: bytes[offset],
        }
    })
}

fn detect(file_name: &str, text: &str) -> Format {
    let ext = file_name
        .rsplit_once('.')
        .map(|(_, ext)| ext.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "json" => return Format::Json,
        "csv" | "tsv" => return Format::Csv,
        "txt" | "md" | "markdown" | "text" => return Format::Text,
        _ => {}
    }
    let trimmed = text.trim_start();
    if trimmed.starts_with(['{', '[']) {
        Format::Json
    } else if csv::looks_like_header(trimmed.lines().next().unwrap_or("")) {
        Format::Csv
    } else {
        Format::Text
    }
}

/// What every parser's tests start from.
#[cfg(test)]
impl ImportOptions {
    /// Options for `file` with naive times read in Almaty.
    pub(crate) fn almaty(file: &str) -> Self {
        Self {
            timezone: Some(Zone::Named(chrono_tz::Asia::Almaty)),
            ..Self::new(file)
        }
    }
}

/// Parses `bytes` with `options`, failing the test on an error or when
/// another format than `format` was chosen.
#[cfg(test)]
pub(crate) fn parse_as(bytes: &[u8], options: &ImportOptions, format: Format) -> ParsedFile {
    let parsed = parse(bytes, options).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(parsed.format, format);
    parsed
}

#[cfg(test)]
mod tests;
