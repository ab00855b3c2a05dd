//! CSV for spreadsheets (RFC 4180: comma, `"` quoting, CRLF-free `\n`
//! records; quoting by the `csv` crate).
//!
//! [`write_reports`]: one row per report, columns [`REPORT_COLUMNS`]:
//! times RFC 3339 with the reporter's offset, `approximate` `true`/`false`,
//! coordinates as numbers (empty when unknown), `tags` joined with `;`,
//! `people` as `Name (role): note` joined with `;`, `reviewer` the
//! coordinator's device id, `attachments` the attachment ids joined with
//! `;`.
//!
//! [`write_timeline_rows`]: one row per timeline entry, columns
//! [`TIMELINE_COLUMNS`], carrying its report's id, title and place;
//! reports in export order, a report's entries by time.
//!
//! Formula injection: a spreadsheet runs a cell that starts with `=`, `+`,
//! `-` or `@` (and some strip a leading tab or carriage return first), so
//! a report titled `=HYPERLINK(…)` would become a live link. Every text
//! cell that starts with one of those characters gets a leading `'`, which
//! spreadsheets show as text. Cells fieldsync formats itself (coordinates,
//! booleans, times) are left as they are: `-12.5` stays a number.

use std::io::Write;

use ::csv::WriterBuilder;

use super::{timeline_in_order, Export, ExportError};
use crate::document::rfc3339;
use crate::model::Report;

pub const REPORT_COLUMNS: [&str; 16] = [
    "id",
    "occurred_at",
    "approximate",
    "title",
    "place",
    "latitude",
    "longitude",
    "description",
    "tags",
    "people",
    "status",
    "reviewer",
    "review_note",
    "created_by",
    "created_at",
    "attachments",
];

pub const TIMELINE_COLUMNS: [&str; 8] = [
    "report_id",
    "report_title",
    "at",
    "approximate",
    "text",
    "place",
    "latitude",
    "longitude",
];

/// One row per report.
pub fn write_reports<W: Write>(out: W, export: &Export) -> Result<(), ExportError> {
    let mut csv = WriterBuilder::new().from_writer(out);
    csv.write_record(REPORT_COLUMNS)?;
    for exported in &export.reports {
        let r = &exported.report;
        let people: Vec<String> = r
            .people
            .iter()
            .map(|p| {
                if p.note.is_empty() {
                    format!("{} ({})", p.name, p.role)
                } else {
                    format!("{} ({}): {}", p.name, p.role, p.note)
                }
            })
            .collect();
        let attachments: Vec<&str> = r.attachments.iter().map(|a| a.id.as_str()).collect();
        let tags: Vec<&str> = r.tags.iter().map(String::as_str).collect();
        let (lat, lon) = coordinates(r);
        csv.write_record([
            text(r.id.as_str()),
            time(r.occurred_at.as_ref()),
            r.approximate.to_string(),
            text(&r.title),
            text(&r.place.name),
            lat,
            lon,
            text(&r.description),
            text(&tags.join(";")),
            text(&people.join(";")),
            r.review.status.to_string(),
            text(r.review.reviewer.as_deref().unwrap_or_default()),
            text(&r.review.note),
            text(r.created_by.as_str()),
            time(r.created_at.as_ref()),
            text(&attachments.join(";")),
        ])?;
    }
    csv.flush()?;
    Ok(())
}

/// One row per timeline entry of the exported reports.
pub fn write_timeline_rows<W: Write>(out: W, export: &Export) -> Result<(), ExportError> {
    let mut csv = WriterBuilder::new().from_writer(out);
    csv.write_record(TIMELINE_COLUMNS)?;
    for exported in &export.reports {
        let r = &exported.report;
        let (lat, lon) = coordinates(r);
        for entry in timeline_in_order(r) {
            csv.write_record([
                text(r.id.as_str()),
                text(&r.title),
                rfc3339(&entry.at),
                entry.approximate.to_string(),
                text(&entry.text),
                text(&r.place.name),
                lat.clone(),
                lon.clone(),
            ])?;
        }
    }
    csv.flush()?;
    Ok(())
}

/// A text cell, defused for spreadsheets: see the module doc.
pub fn text(value: &str) -> String {
    if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{value}")
    } else {
        value.to_owned()
    }
}

fn time(t: Option<&chrono::DateTime<chrono::FixedOffset>>) -> String {
    t.map(rfc3339).unwrap_or_default()
}

fn coordinates(r: &Report) -> (String, String) {
    let number = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
    (number(r.place.lat), number(r.place.lon))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::tests::{hostile, sample, HOSTILE_FORMULA, HOSTILE_TITLE};

    fn rows(
        write: fn(&mut Vec<u8>, &Export) -> Result<(), ExportError>,
        export: &Export,
    ) -> Vec<Vec<String>> {
        let mut out = Vec::new();
        write(&mut out, export).unwrap();
        let mut reader = ::csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(out.as_slice());
        reader
            .records()
            .map(|r| r.unwrap().iter().map(str::to_owned).collect())
            .collect()
    }

    fn reports(export: &Export) -> Vec<Vec<String>> {
        rows(|out, e| write_reports(out, e), export)
    }

    fn timeline(export: &Export) -> Vec<Vec<String>> {
        rows(|out, e| write_timeline_rows(out, e), export)
    }

    #[test]
    fn one_row_per_report_under_the_documented_header() {
        let rows = reports(&sample());
        assert_eq!(rows[0], REPORT_COLUMNS);
        assert_eq!(rows.len(), 4);
        let r1 = &rows[1];
        let col = |name: &str| REPORT_COLUMNS.iter().position(|c| *c == name).unwrap();
        assert_eq!(r1[col("id")], "11111111111111111111111111111111");
        assert_eq!(r1[col("occurred_at")], "2016-05-21T10:40:00+06:00");
        assert_eq!(r1[col("approximate")], "true");
        assert_eq!(r1[col("place")], "Bus stop, Abay avenue");
        assert_eq!(r1[col("latitude")], "43.25");
        assert_eq!(r1[col("longitude")], "76.95");
        assert_eq!(
            r1[col("description")],
            "Aleksey was arrested.\nTwo officers took him away."
        );
        assert_eq!(r1[col("tags")], "arrest;police");
        assert_eq!(
            r1[col("people")],
            "Tulegen Shakirov (officer): car kz380KP02;Aleksey Ivanov (detainee)"
        );
        assert_eq!(r1[col("status")], "verified");
        assert_eq!(r1[col("reviewer")], crate::export::tests::COORDINATOR);
        assert_eq!(r1[col("review_note")], "two witnesses");
        assert_eq!(r1[col("created_at")], "2016-05-21T12:00:00+06:00");
        assert_eq!(
            r1[col("attachments")],
            "a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1;a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2"
        );
        // Order of the export; no coordinates is two empty cells; a
        // negative coordinate stays a number.
        assert_eq!(rows[2][col("title")], "Search of the flat");
        assert_eq!(rows[2][col("latitude")], "");
        assert_eq!(rows[3][col("latitude")], "-33.9");
        assert_eq!(rows[3][col("status")], "disputed");
    }

    #[test]
    fn timeline_rows_carry_their_report_and_come_in_time_order() {
        let rows = timeline(&sample());
        assert_eq!(rows[0], TIMELINE_COLUMNS);
        assert_eq!(rows.len(), 3, "only r1 has timeline entries");
        assert_eq!(
            rows[1],
            [
                "11111111111111111111111111111111",
                "Arrest at the bus stop",
                "2016-05-21T11:15:00+06:00",
                "true",
                "taken to the station",
                "Bus stop, Abay avenue",
                "43.25",
                "76.95"
            ]
        );
        assert_eq!(rows[2][2], "2016-05-21T13:00:00+06:00");
        assert_eq!(rows[2][4], "released");
    }

    #[test]
    fn formulas_are_defused_and_quoting_survives_hostile_text() {
        let export = hostile();
        let rows = reports(&export);
        let col = |name: &str| REPORT_COLUMNS.iter().position(|c| *c == name).unwrap();
        let r = &rows[1];
        assert_eq!(r[col("title")], HOSTILE_TITLE);
        let description = &r[col("description")];
        assert_eq!(
            *description,
            format!("'{}", export.reports[0].report.description)
        );
        assert!(description.starts_with(&format!("'{HOSTILE_FORMULA}")));
        assert!(description.contains("Алексей задержан 🙂"));
        assert_eq!(r[col("place")], "'+cmd|' /C calc'!A0");
        assert_eq!(r[col("tags")], "'-2+3;@SUM(A1);ok");
        assert_eq!(r[col("people")], "'\tTab (witness): \rCR");
        assert_eq!(r[col("latitude")], "-12.5");
        assert_eq!(r[col("longitude")], "-77");
        let rows = timeline(&export);
        assert_eq!(rows[1][4], "'=1+1 <b>bold</b>");
        assert_eq!(rows[1][6], "-12.5");
    }

    #[test]
    fn the_guard_covers_every_character_spreadsheets_act_on() {
        for hostile in ["=1", "+1", "-1", "@a", "\tx", "\rx"] {
            assert_eq!(text(hostile), format!("'{hostile}"));
        }
        for fine in ["a=1", "", "1", "'quoted", " =1"] {
            assert_eq!(text(fine), fine);
        }
    }

    #[test]
    fn output_is_deterministic() {
        let write = |e: &Export| {
            let mut out = Vec::new();
            write_reports(&mut out, e).unwrap();
            out
        };
        assert_eq!(write(&sample()), write(&sample()));
    }
}
