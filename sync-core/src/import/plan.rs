//! What importing a report does to what the device already holds: create
//! it, bring it up to date with a corrected file, or nothing.
//!
//! A corrected file is authoritative for the fields it gives one value of
//! (title, description, time, place): they are set to the file's. Tags,
//! people and timeline entries the file gives are added when missing, and
//! nothing is removed: a coordinator may have added some since the first
//! import, and an import must never erase their work.

use crate::import::ImportedReport;
use crate::model::{Edit, Report};

/// The edits that bring `existing` to what the file says, empty when it
/// already does.
pub fn update_edits(imported: &ImportedReport, existing: &Report) -> Vec<Edit> {
    let mut edits = Vec::new();
    if existing.title != imported.title {
        edits.push(Edit::SetTitle(imported.title.clone()));
    }
    if existing.description != imported.description {
        edits.push(Edit::SetDescription(imported.description.clone()));
    }
    // DateTime's == compares instants; the offset as written matters too.
    let same_time = existing.occurred_at.is_some_and(|at| {
        at == imported.occurred_at && at.offset() == imported.occurred_at.offset()
    });
    if !same_time || existing.approximate != imported.approximate {
        edits.push(Edit::SetOccurredAt {
            at: imported.occurred_at,
            approximate: imported.approximate,
        });
    }
    if existing.place != imported.place {
        edits.push(Edit::SetPlace(imported.place.clone()));
    }
    for tag in &imported.tags {
        if !existing.tags.contains(tag) {
            edits.push(Edit::AddTag(tag.clone()));
        }
    }
    for person in &imported.people {
        if !existing.people.contains(person) {
            edits.push(Edit::AddPerson(person.clone()));
        }
    }
    for entry in &imported.timeline {
        if !existing.timeline.contains(entry) {
            edits.push(Edit::AddTimelineEntry(entry.clone()));
        }
    }
    edits
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;

    use super::*;
    use crate::document::ReportDocument;
    use crate::identity::DeviceKey;
    use crate::ids::{CaseId, ReportId};
    use crate::import::{parse, ImportOptions};

    fn imported(csv: &str) -> Vec<ImportedReport> {
        parse(csv.as_bytes(), &ImportOptions::new("rows.csv"))
            .unwrap()
            .reports
    }

    fn stored(report: &ImportedReport) -> Report {
        let key = DeviceKey::generate().unwrap();
        let new = report.to_new_report(ReportId::random().unwrap(), CaseId::random().unwrap());
        let now = DateTime::parse_from_rfc3339("2026-11-23T10:00:00+00:00").unwrap();
        ReportDocument::create(&key, &new, now)
            .unwrap()
            .0
            .view()
            .unwrap()
    }

    #[test]
    fn the_same_row_again_needs_no_edit_and_a_corrected_one_only_what_changed() {
        let first = imported(
            "id,title,occurred_at,place,tags\n7,Arrest at the bus stop,2016-05-21T10:40:00+06:00,Bus stop,arrest\n",
        );
        let existing = stored(&first[0]);
        assert_eq!(update_edits(&first[0], &existing), vec![]);

        let corrected = imported(
            "id,title,occurred_at,place,tags\n7,Arrest at the bus stop,2016-05-21T10:45:00+06:00,Bus stop,arrest;police\n",
        );
        assert_eq!(corrected[0].source_key, first[0].source_key);
        let edits = update_edits(&corrected[0], &existing);
        assert_eq!(edits.len(), 2, "{edits:?}");
        assert!(matches!(edits[0], Edit::SetOccurredAt { .. }));
        assert_eq!(edits[1], Edit::AddTag("police".into()));
    }

    #[test]
    fn the_same_instant_written_with_another_offset_is_a_change() {
        let first = imported("id,title,occurred_at\n1,Release,2016-05-21T13:00:00+06:00\n");
        let existing = stored(&first[0]);
        let utc = imported("id,title,occurred_at\n1,Release,2016-05-21T07:00:00Z\n");
        assert_eq!(utc[0].occurred_at, first[0].occurred_at);
        assert_eq!(update_edits(&utc[0], &existing).len(), 1);
    }
}
