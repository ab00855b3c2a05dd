//! What an import reads and answers with: the options, the reports read,
//! the rows refused, and why a whole file is refused. The parsers
//! (`csv.rs`, `json.rs`, `text.rs`) share these; `mod.rs` picks a parser.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, FixedOffset, NaiveDate};
use chrono_tz::Tz;

use crate::document::NewReport;
use crate::ids::{CaseId, ReportId};
use crate::model::{Person, Place, TimelineEntry};

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

pub(super) fn quoted_list(items: &[String]) -> String {
    items
        .iter()
        .map(|c| format!("{c:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

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
