//! Reports read from an imported file ([`crate::import`]) written into the
//! replica: created, brought up to date with a corrected file
//! ([`plan::update_edits`]), or left alone.
//!
//! Importing a file again must not cost what importing it cost. Each report
//! an import wrote keeps the digest of the row it came from
//! ([`plan::digest`], column `documents.import_digest`). While the document
//! is exactly what that import left, a row with the same digest needs no
//! edit, so it is found unchanged without loading the document. A trigger
//! (schema 4) clears the digest on any other change to the document,
//! whoever makes it: an edit, a sync, a bundle, compaction. The next import
//! of that row then compares against the document itself, as it always
//! did, and a coordinator's correction of an imported field is still set
//! back to the file's.

use rusqlite::{params, OptionalExtension, Transaction, TransactionBehavior};

use super::error::ReplicaError;
use super::store::{edit_in, for_each_creating_change, insert_created, load_document, Replica};
use crate::document::ReportDocument;
use crate::ids::{CaseId, ReportId};
use crate::import::{plan, ImportedReport};
use crate::NewReport;

/// The page cache an import asks of SQLite, in KiB: enough for the indexes
/// of a few hundred thousand reports.
const IMPORT_CACHE_KIB: i64 = 32 * 1024;

/// What importing one report did (or, in a dry run, would do).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImportOutcome {
    Created,
    Updated,
    Unchanged,
}

impl Replica {
    /// Imports `rows`, each with the id its caller derived for it (from
    /// case, file and [`ImportedReport::source_key`]), into `case` in one
    /// transaction: all are saved or none. Returns what happened to each
    /// row, in order. With `dry_run`, writes nothing and says what would
    /// happen.
    pub fn import_reports(
        &mut self,
        case: &CaseId,
        rows: &[(ReportId, &ImportedReport)],
        dry_run: bool,
    ) -> Result<Vec<ImportOutcome>, ReplicaError> {
        let key = self.require_key()?;
        // Ids are hashes, so every batch inserts into index pages all over
        // the replica; with SQLite's default 2 MiB cache a large import
        // reads most of them back from the file for each batch. Grown once
        // and left so for the connection: SQLite fills it only as it reads.
        self.conn
            .pragma_update(None, "cache_size", -IMPORT_CACHE_KIB)?;
        // Immediate: what is read here decides what is written, so no other
        // writer may come between.
        let behavior = if dry_run {
            TransactionBehavior::Deferred
        } else {
            TransactionBehavior::Immediate
        };
        let tx = self.conn.transaction_with_behavior(behavior)?;
        let digests: Vec<[u8; 32]> = rows.iter().map(|(_, r)| plan::digest(r)).collect();
        let mut outcomes = vec![ImportOutcome::Unchanged; rows.len()];
        let mut creates: Vec<(usize, NewReport)> = Vec::new();
        let mut edits = Vec::new();
        // Found unchanged by reading the document: their digest is recorded
        // so that the next import need not read it again.
        let mut settled = Vec::new();
        for (i, (id, imported)) in rows.iter().enumerate() {
            let stored = match stored_digest(&tx, id)? {
                None => {
                    creates.push((i, imported.to_new_report(id.clone(), case.clone())));
                    continue;
                }
                Some(stored) => stored,
            };
            if stored.as_deref() == Some(&digests[i][..]) {
                continue;
            }
            let Some(document) = load_document(&tx, id)? else {
                return Err(ReplicaError::Corrupt(format!("report {id} vanished")));
            };
            let existing = ReportDocument::from_automerge(document.doc).view()?;
            let list = plan::update_edits(imported, &existing);
            if list.is_empty() {
                settled.push(i);
            } else {
                edits.push((i, list));
            }
        }
        if dry_run {
            for (i, _) in &creates {
                outcomes[*i] = ImportOutcome::Created;
            }
            for (i, _) in &edits {
                outcomes[*i] = ImportOutcome::Updated;
            }
            return Ok(outcomes);
        }

        let (indices, news): (Vec<usize>, Vec<NewReport>) = creates.into_iter().unzip();
        for_each_creating_change(&key, &news, |n, created| {
            let i = indices[n];
            insert_created(&tx, &news[n].id, &created, Some(&digests[i][..]))?;
            outcomes[i] = ImportOutcome::Created;
            Ok(())
        })?;
        for (i, list) in edits {
            let id = &rows[i].0;
            if edit_in(&tx, &key, id, &list)?.is_some() {
                outcomes[i] = ImportOutcome::Updated;
            }
            record_digest(&tx, id, &digests[i])?;
        }
        for i in settled {
            record_digest(&tx, &rows[i].0, &digests[i])?;
        }
        tx.commit()?;
        Ok(outcomes)
    }
}

/// `None` when there is no report `id`; `Some(None)` when it has no
/// digest that is still true of it.
fn stored_digest(
    tx: &Transaction<'_>,
    id: &ReportId,
) -> Result<Option<Option<Vec<u8>>>, ReplicaError> {
    Ok(tx
        .prepare_cached("SELECT import_digest FROM documents WHERE id = ?1")?
        .query_row([id.as_str()], |r| r.get(0))
        .optional()?)
}

/// Records that `id`'s document is, as of now, what the row with `digest`
/// makes of it. Called after the write that made it so, in the same
/// transaction: the trigger that clears a digest fires on that write.
fn record_digest(
    tx: &Transaction<'_>,
    id: &ReportId,
    digest: &[u8; 32],
) -> Result<(), ReplicaError> {
    tx.prepare_cached("UPDATE documents SET import_digest = ?2 WHERE id = ?1")?
        .execute(params![id.as_str(), &digest[..]])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::{parse, ImportOptions};
    use crate::model::DeviceRole;
    use crate::model::Edit;
    use crate::sync::tests::World;

    const ROWS: &str = "id,title,occurred_at,place,description,tags\n\
        1,Arrest at the bus stop,2016-05-21T10:40:00+06:00,Bus stop,Two men in plain clothes.,arrest\n\
        2,Assembly at the library,2016-05-21T11:00:00+06:00,Central library,,assembly;rally\n\
        3,Release,2016-05-21T13:00:00+06:00,District department,Released without charge.,release\n";

    fn rows(csv: &str) -> Vec<ImportedReport> {
        parse(csv.as_bytes(), &ImportOptions::new("rows.csv"))
            .unwrap()
            .reports
    }

    /// Imports `csv` the way `fieldsync import` does and counts the
    /// outcomes (created, updated, unchanged).
    fn import(w: &mut World, csv: &str, dry_run: bool) -> (usize, usize, usize) {
        let reports = rows(csv);
        let with_ids: Vec<(ReportId, &ImportedReport)> = reports
            .iter()
            .map(|r| (ReportId::derived_from(&[r.source_key.as_bytes()]), r))
            .collect();
        let case = w.case.clone();
        let outcomes = w.devices[0]
            .replica
            .import_reports(&case, &with_ids, dry_run)
            .unwrap();
        let count = |o| outcomes.iter().filter(|x| **x == o).count();
        (
            count(ImportOutcome::Created),
            count(ImportOutcome::Updated),
            count(ImportOutcome::Unchanged),
        )
    }

    fn digests(w: &World) -> i64 {
        w.devices[0]
            .replica
            .conn
            .query_row(
                "SELECT count(*) FROM documents WHERE import_digest IS NOT NULL",
                [],
                |r| r.get::<_, i64>(0),
            )
            .unwrap()
    }

    fn coordinator() -> World {
        World::new(&[DeviceRole::Coordinator])
    }

    #[test]
    fn an_unchanged_file_changes_nothing_whether_or_not_its_digests_are_kept() {
        let mut w = coordinator();
        assert_eq!(import(&mut w, ROWS, false), (3, 0, 0));
        assert_eq!(digests(&w), 3);
        let pending = w.devices[0].replica.pending_change_count().unwrap();
        assert_eq!(import(&mut w, ROWS, false), (0, 0, 3));

        // Without digests (a home from before schema 4) each document is
        // compared, found unchanged, and its digest recorded.
        w.devices[0]
            .replica
            .conn
            .execute("UPDATE documents SET import_digest = NULL", [])
            .unwrap();
        assert_eq!(import(&mut w, ROWS, false), (0, 0, 3));
        assert_eq!(digests(&w), 3);
        assert_eq!(
            w.devices[0].replica.pending_change_count().unwrap(),
            pending
        );
    }

    #[test]
    fn a_corrected_row_updates_its_report_once() {
        let mut w = coordinator();
        import(&mut w, ROWS, false);
        let corrected = ROWS.replace("10:40", "10:45");
        assert_eq!(import(&mut w, &corrected, false), (0, 1, 2));
        assert_eq!(import(&mut w, &corrected, false), (0, 0, 3));
        let id = ReportId::derived_from(&[b"1"]);
        let report = w.devices[0].replica.report(&id).unwrap();
        assert_eq!(
            report.occurred_at.unwrap().to_rfc3339(),
            "2016-05-21T10:45:00+06:00"
        );
    }

    #[test]
    fn an_edit_after_the_import_clears_the_digest_so_the_file_wins_again() {
        let mut w = coordinator();
        import(&mut w, ROWS, false);
        let id = ReportId::derived_from(&[b"1"]);
        w.devices[0]
            .replica
            .edit_report(&id, &[Edit::SetTitle("Arrest (edited)".into())])
            .unwrap();
        assert_eq!(digests(&w), 2);
        // As before digests existed: the file is authoritative for the title.
        assert_eq!(import(&mut w, ROWS, false), (0, 1, 2));
        assert_eq!(
            w.devices[0].replica.report(&id).unwrap().title,
            "Arrest at the bus stop"
        );
        assert_eq!(digests(&w), 3);
    }

    #[test]
    fn a_sync_keeps_the_digests_until_it_brings_a_change() {
        let mut w = World::new(&[DeviceRole::Coordinator, DeviceRole::Coordinator]);
        import(&mut w, ROWS, false);
        // Sending the reports only records acknowledged heads.
        w.sync(0, crate::protocol::DEFAULT_MAX_REQUEST_BYTES);
        assert_eq!(digests(&w), 3);
        assert_eq!(import(&mut w, ROWS, false), (0, 0, 3));

        // Another coordinator's tag arrives: that report is compared again,
        // and the tag (which the file does not remove) stays.
        w.sync(1, crate::protocol::DEFAULT_MAX_REQUEST_BYTES);
        let id = ReportId::derived_from(&[b"2"]);
        w.devices[1]
            .replica
            .edit_report(&id, &[Edit::AddTag("police".into())])
            .unwrap();
        w.sync(1, crate::protocol::DEFAULT_MAX_REQUEST_BYTES);
        w.sync(0, crate::protocol::DEFAULT_MAX_REQUEST_BYTES);
        assert_eq!(digests(&w), 2);
        assert_eq!(import(&mut w, ROWS, false), (0, 0, 3));
        assert!(w.devices[0]
            .replica
            .report(&id)
            .unwrap()
            .tags
            .contains("police"));
    }

    #[test]
    fn a_dry_run_says_what_would_happen_and_writes_nothing() {
        let mut w = coordinator();
        assert_eq!(import(&mut w, ROWS, true), (3, 0, 0));
        assert!(w.devices[0].replica.report_ids().unwrap().is_empty());
        import(&mut w, ROWS, false);
        let corrected = ROWS.replace("Bus stop", "Bus stop 7");
        assert_eq!(import(&mut w, &corrected, true), (0, 1, 2));
        assert_eq!(import(&mut w, &corrected, false), (0, 1, 2));
    }

    #[test]
    fn many_rows_are_made_on_every_core_and_read_back_as_create_would_make_them() {
        let mut w = coordinator();
        let mut csv =
            String::from("id,title,occurred_at,place,latitude,longitude,description,tags\n");
        for i in 0..500 {
            csv.push_str(&format!(
                "{i},Detention {i},2016-05-21T10:{:02}:00+06:00,Square,43.{i},76.{i},\"Held, released after {i} hours. Ёлка 👍🏽\",arrest;rally\n",
                i % 60
            ));
        }
        assert_eq!(import(&mut w, &csv, false), (500, 0, 0));
        let key = w.devices[0].replica.device_key().unwrap().unwrap();
        for (imported, id) in rows(&csv)
            .iter()
            .map(|r| (r, ReportId::derived_from(&[r.source_key.as_bytes()])))
        {
            let stored = w.devices[0].replica.report(&id).unwrap();
            let new = imported.to_new_report(id.clone(), w.case.clone());
            let (doc, _) = ReportDocument::create(&key, &new, stored.created_at.unwrap()).unwrap();
            assert_eq!(stored, doc.view().unwrap());
        }
        assert_eq!(import(&mut w, &csv, false), (0, 0, 500));
        // Every report is one signed change, which the server takes.
        let sent = w.sync(0, crate::protocol::DEFAULT_MAX_REQUEST_BYTES);
        assert_eq!(sent.sent, 500);
        assert!(sent.refused.is_empty());
    }

    #[test]
    fn a_batch_with_one_bad_report_writes_none_of_them() {
        let mut w = coordinator();
        let mut news: Vec<NewReport> = (0..300)
            .map(|i| w.new_report(&format!("report {i}")))
            .collect();
        news[250].title = "x".repeat(crate::model::MAX_TITLE_BYTES + 1);
        let replica = &mut w.devices[0].replica;
        assert!(matches!(
            replica.write_batch(&news, &[]),
            Err(ReplicaError::Edit(
                crate::document::EditError::TooLong { .. }
            ))
        ));
        assert!(replica.report_ids().unwrap().is_empty());
        news.remove(250);
        replica.write_batch(&news, &[]).unwrap();
        assert_eq!(replica.report_ids().unwrap().len(), 299);
    }

    #[test]
    fn a_home_from_schema_3_opens_and_imports() {
        let home = tempfile::tempdir().unwrap();
        let mut replica = Replica::open(home.path()).unwrap();
        replica.init_identity().unwrap();
        let case = CaseId::random().unwrap();
        let new = NewReport::new(
            ReportId::random().unwrap(),
            case.clone(),
            "Recorded before schema 4",
            crate::sync::tests::t("2016-05-21T10:40:00+06:00"),
        );
        let id = replica.create_report(&new).unwrap();
        // What a schema 3 home looks like: no digest column, no trigger,
        // nor what schemas 5 and 6 added.
        replica
            .conn
            .execute_batch(
                "DROP TRIGGER documents_heads_stale;
                 ALTER TABLE documents DROP COLUMN heads;
                 DROP TRIGGER documents_import_digest_stale;
                 ALTER TABLE documents DROP COLUMN import_digest;
                 ALTER TABLE case_keys DROP COLUMN version;
                 DROP TABLE case_public_keys;
                 PRAGMA user_version = 3;",
            )
            .unwrap();
        drop(replica);

        let mut replica = Replica::open(home.path()).unwrap();
        let version: i64 = replica
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, super::super::REPLICA_SCHEMA);
        assert_eq!(replica.report(&id).unwrap().title, new.title);
        let reports = rows(ROWS);
        let with_ids: Vec<(ReportId, &ImportedReport)> = reports
            .iter()
            .map(|r| (ReportId::derived_from(&[r.source_key.as_bytes()]), r))
            .collect();
        let outcomes = replica.import_reports(&case, &with_ids, false).unwrap();
        assert_eq!(outcomes, vec![ImportOutcome::Created; 3]);
        drop(replica);
        let mut replica = Replica::open(home.path()).unwrap();
        let outcomes = replica.import_reports(&case, &with_ids, false).unwrap();
        assert_eq!(outcomes, vec![ImportOutcome::Unchanged; 3]);
    }

    #[test]
    fn a_report_stored_as_its_creating_change_compacts_and_syncs_like_any_other() {
        let mut w = coordinator();
        let news: Vec<NewReport> = (0..2).map(|i| w.new_report(&format!("r{i}"))).collect();
        w.devices[0].replica.write_batch(&news, &[]).unwrap();
        let id = &news[0].id;
        for i in 0..(super::super::COMPACT_AFTER + 5) {
            w.devices[0]
                .replica
                .edit_report(id, &[Edit::AddTag(format!("t{i}"))])
                .unwrap();
        }
        let report = w.devices[0].replica.report(id).unwrap();
        assert_eq!(report.tags.len() as i64, super::super::COMPACT_AFTER + 5);
        let sent = w.sync(0, crate::protocol::DEFAULT_MAX_REQUEST_BYTES);
        assert_eq!(sent.sent as i64, 2 + super::super::COMPACT_AFTER + 5);
        assert_eq!(w.devices[0].replica.pending_change_count().unwrap(), 0);
    }
}
