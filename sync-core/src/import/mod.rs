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

use std::str::FromStr;

use chrono_tz::Tz;

mod candidates;
mod csv;
mod dates;
mod fields;
mod json;
pub mod plan;
mod text;
mod types;

pub use json::{EXPORT_FORMAT, EXPORT_VERSION};
pub use types::{
    Candidates, Format, ImportError, ImportOptions, ImportedReport, ParsedFile, RefusedRow,
    UnknownFormat, UnknownZone, Zone,
};

/// Longest line accepted, in bytes. A longer one is refused before any
/// parsing: no report field needs it, and it keeps hostile files cheap.
pub const MAX_LINE_BYTES: usize = 1024 * 1024;

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

fn display_name(file_name: &str) -> String {
    if file_name.is_empty() {
        "the file".to_owned()
    } else {
        file_name.to_owned()
    }
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
