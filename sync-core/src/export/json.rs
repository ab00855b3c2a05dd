//! The lossless export: every field of every report, as `timeline --json`
//! gives it, plus its signed change history.
//!
//! ```text
//! {"format": "fieldsync-export", "version": 1,
//!  "case": NAME, "case_id": ID, "exported_at": RFC3339, "exported_by": DEVICE_ID,
//!  "filters": {"from": T|null, "to": T|null, "status": S|null},
//!  "reports": [{<Report fields>, "history": [HistoryEntry, ...]}, ...]}
//! ```
//!
//! An importer reads each `reports[]` item as a [`crate::model::Report`]
//! and may ignore `history`. The output is deterministic: two exports of
//! the same data differ only in `exported_at`.

use std::io::Write;

use serde::Serialize;

use super::{ExportError, ExportedReport, Filters};
use crate::document::rfc3339;

/// The value of the `format` member.
pub const FORMAT: &str = "fieldsync-export";
/// The value of the `version` member; bumped when a field changes meaning.
pub const VERSION: u64 = 1;

#[derive(Serialize)]
struct Document<'a> {
    format: &'static str,
    version: u64,
    case: &'a str,
    case_id: &'a str,
    exported_at: String,
    exported_by: &'a str,
    filters: &'a Filters,
    reports: &'a [ExportedReport],
}

/// Writes `export` as pretty-printed JSON, ending with a newline.
pub fn write<W: Write>(mut out: W, export: &super::Export) -> Result<(), ExportError> {
    let document = Document {
        format: FORMAT,
        version: VERSION,
        case: &export.case,
        case_id: &export.case_id,
        exported_at: rfc3339(&export.exported_at),
        exported_by: &export.exported_by,
        filters: &export.filters,
        reports: &export.reports,
    };
    serde_json::to_writer_pretty(&mut out, &document)?;
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::export::tests::{hostile, sample};
    use crate::model::Report;

    fn written(export: &super::super::Export) -> String {
        let mut out = Vec::new();
        write(&mut out, export).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn the_envelope_names_format_version_case_and_filters() {
        let json: Value = serde_json::from_str(&written(&sample())).unwrap();
        assert_eq!(json["format"], "fieldsync-export");
        assert_eq!(json["version"], 1);
        assert_eq!(json["case"], "almaty");
        assert_eq!(json["case_id"], sample().case_id);
        assert_eq!(json["exported_at"], "2024-03-01T12:00:00+00:00");
        assert_eq!(json["exported_by"], sample().exported_by);
        assert_eq!(json["filters"]["from"], "2016-05-01");
        assert_eq!(json["filters"]["to"], Value::Null);
        assert_eq!(json["filters"]["status"], Value::Null);
        assert_eq!(json["reports"].as_array().unwrap().len(), 3);
    }

    #[test]
    fn every_report_reads_back_as_the_report_it_was_with_its_history() {
        let export = sample();
        let json: Value = serde_json::from_str(&written(&export)).unwrap();
        for (item, original) in json["reports"]
            .as_array()
            .unwrap()
            .iter()
            .zip(&export.reports)
        {
            // What the importer does: the item as a Report, history ignored.
            let report: Report = serde_json::from_value(item.clone()).unwrap();
            assert_eq!(report, original.report);
            let back: super::super::ExportedReport = serde_json::from_value(item.clone()).unwrap();
            assert_eq!(&back, original);
            // Same field names as `timeline --json`.
            let plain = serde_json::to_value(&original.report).unwrap();
            for key in plain.as_object().unwrap().keys() {
                assert_eq!(item[key], plain[key], "{key}");
            }
        }
        let h = &json["reports"][0]["history"][0];
        for key in [
            "hash",
            "author",
            "author_key",
            "time",
            "signature",
            "signature_verified",
            "change",
        ] {
            assert!(h.get(key).is_some(), "history entry lacks {key}: {h}");
        }
    }

    #[test]
    fn two_exports_of_the_same_data_differ_only_in_exported_at() {
        let a = sample();
        let mut b = sample();
        b.exported_at = "2025-01-01T00:00:00+00:00".parse().unwrap();
        let (a, b) = (written(&a), written(&b));
        let differing: Vec<(&str, &str)> =
            a.lines().zip(b.lines()).filter(|(x, y)| x != y).collect();
        assert_eq!(differing.len(), 1, "{differing:?}");
        assert!(differing[0].0.contains("\"exported_at\""));
        assert_eq!(written(&sample()), written(&sample()));
    }

    #[test]
    fn hostile_text_is_kept_exactly_and_unicode_survives() {
        let export = hostile();
        let text = written(&export);
        let json: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(json["reports"][0]["title"], "<img src=x onerror=alert(1)>");
        assert_eq!(
            json["reports"][0]["description"],
            export.reports[0].report.description
        );
        assert!(text.contains("Алексей"), "unicode is written as is");
    }
}
