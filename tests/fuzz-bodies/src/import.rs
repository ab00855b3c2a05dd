use chrono::NaiveDate;

use fieldsync_core::document::ReportDocument;
use fieldsync_core::import::{self, Format, ImportOptions, Zone};

use crate::world::{case_id, key, report_id, time};

pub(crate) fn import_options(name: &str, format: Format) -> ImportOptions {
    ImportOptions {
        format,
        file_name: name.into(),
        map: vec![],
        timezone: Some(Zone::Named(chrono_tz::Asia::Almaty)),
        default_date: NaiveDate::from_ymd_opt(2016, 5, 21),
        year: None,
    }
}

/// Parses `data` as `format`, then checks that every report it read is one
/// a device can create: [`ReportDocument::creating_change`] accepts it,
/// and for the first report (when small) the full
/// [`ReportDocument::create`] makes the same change and reads back the
/// same fields.
pub(crate) fn import_checked(data: &[u8], name: &str, format: Format) {
    let Ok(parsed) = import::parse(data, &import_options(name, format)) else {
        return;
    };
    assert_eq!(parsed.format, format);
    let now = time("2024-01-01T00:00:00+00:00");
    for (i, imported) in parsed.reports.iter().enumerate() {
        let new = imported.to_new_report(report_id(&imported.source_key), case_id());
        let (change, _) = ReportDocument::creating_change(key(0), &new, now)
            .unwrap_or_else(|e| panic!("imported report {i} cannot be created: {e}"));
        if i > 0 || new.description.len() > 4096 {
            continue;
        }
        let (doc, created) = ReportDocument::create(key(0), &new, now).expect("creates");
        assert_eq!(created, change, "create and creating_change differ");
        let report = doc.view().expect("a new report reads");
        assert_eq!(report.title, new.title);
        assert_eq!(report.description, new.description);
        assert_eq!(report.occurred_at, Some(new.occurred_at));
        assert_eq!(report.timeline, new.timeline);
    }
}

/// The CSV import parser; see [`import_checked`] for the invariants.
pub fn import_csv(data: &[u8]) {
    import_checked(data, "fuzz.csv", Format::Csv);
}

/// The narrative text import parser; see [`import_checked`].
pub fn import_text(data: &[u8]) {
    import_checked(data, "fuzz.txt", Format::Text);
}

/// The JSON import parser; see [`import_checked`].
pub fn import_json(data: &[u8]) {
    import_checked(data, "fuzz.json", Format::Json);
}
