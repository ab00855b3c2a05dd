//! What importing a report does to what the device already holds: create
//! it, bring it up to date with a corrected file, or nothing.
//!
//! A corrected file is authoritative for the fields it gives one value of
//! (title, description, time, place): they are set to the file's. Tags,
//! people and timeline entries the file gives are added when missing, and
//! nothing is removed: a coordinator may have added some since the first
//! import, and an import must never erase their work.

use ring::digest::{Context, SHA256};

use crate::document::rfc3339;
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

/// A digest of everything in `imported` that [`update_edits`] compares (and
/// so everything a report created from it holds): two rows with the same
/// digest need the same edits against any document. The replica keeps the
/// digest of the row each report was last imported from, so importing an
/// unchanged row again needs no look at the document (see
/// `replica::imports`).
pub fn digest(imported: &ImportedReport) -> [u8; 32] {
    let mut d = Digest(Context::new(&SHA256));
    d.0.update(b"fieldsync import digest v1");
    d.text(&imported.title);
    d.text(&imported.description);
    d.text(&rfc3339(&imported.occurred_at));
    d.flag(imported.approximate);
    d.text(&imported.place.name);
    d.coordinate(imported.place.lat);
    d.coordinate(imported.place.lon);
    d.count(imported.tags.len());
    for tag in &imported.tags {
        d.text(tag);
    }
    d.count(imported.people.len());
    for person in &imported.people {
        d.text(&person.name);
        d.text(person.role.as_str());
        d.text(&person.note);
    }
    d.count(imported.timeline.len());
    for entry in &imported.timeline {
        d.text(&rfc3339(&entry.at));
        d.text(&entry.text);
        d.flag(entry.approximate);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(d.0.finish().as_ref());
    out
}

/// Every value length-prefixed or of fixed size, so that no two different
/// rows hash the same bytes.
struct Digest(Context);

impl Digest {
    fn count(&mut self, n: usize) {
        self.0.update(&(n as u64).to_be_bytes());
    }

    fn text(&mut self, text: &str) {
        self.count(text.len());
        self.0.update(text.as_bytes());
    }

    fn flag(&mut self, flag: bool) {
        self.0.update(&[u8::from(flag)]);
    }

    fn coordinate(&mut self, value: Option<f64>) {
        match value {
            None => self.0.update(&[0]),
            Some(v) => {
                self.0.update(&[1]);
                self.0.update(&v.to_bits().to_be_bytes());
            }
        }
    }
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
