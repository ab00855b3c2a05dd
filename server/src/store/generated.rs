//! Generated reports written straight into the store, for benchmarks
//! and tests that need cases of a hundred thousand reports (the `generated`
//! feature; the bench crate and the tests crate enable it).

use automerge::ChangeHash;
use chrono::{DateTime, FixedOffset};
use fieldsync_core::signed_change::SignedChange;
use fieldsync_core::{DeviceKey, NewReport, ReportDocument};
use rusqlite::{OptionalExtension, TransactionBehavior};

use super::error::StoreError;
use super::membership::{device_by_id, DeviceRecord};
use super::pool::Store;
use super::sql::{format_heads, now_text};
use super::sync_rows::{write_document, ChangeRow, DocumentRow};
use super::timeline::Projection;

/// The page cache [`Store::import_generated_reports`] asks of SQLite, in
/// KiB: a batch of random ids dirties pages all over five indexes, and
/// pages spilled before the commit are written twice.
const GENERATE_CACHE_KIB: i64 = 256 * 1024;

/// SQLite's default `cache_size` (2 MiB), which every other write uses.
const DEFAULT_CACHE_SIZE: i64 = -2000;

impl Store {
    /// Writes reports straight into the store, each as the sync round that
    /// brought its creating change would: the document, the change with its
    /// author's signature at the end of the case feed, and the timeline row
    /// (`write_document`, the code `Store::sync` writes with), received now.
    /// For benchmarks and tests that need a case of a hundred thousand
    /// reports or more, which no device could sync in reasonable time.
    ///
    /// Each report is made and signed by its `author` with the core
    /// ([`ReportDocument::creating_change`], on every core of the machine)
    /// at the device time `now`; the author must be an enrolled, unrevoked
    /// device of the report's case, and the report id new. The server holds
    /// device keys nowhere else. Two shortcuts, both invisible to readers:
    /// the document's snapshot is the creating change itself (a one-change
    /// Automerge file, which `Automerge::load` reads as the same document;
    /// a sync round stores `save()`'s form, as the first round that changes
    /// the report will), and the timeline row is projected from
    /// [`ReportDocument::created_view`] rather than by reading the document.
    ///
    /// All in one transaction: call it with batches of some ten thousand.
    pub fn import_generated_reports(
        &self,
        reports: &[(&DeviceKey, NewReport)],
        now: DateTime<FixedOffset>,
    ) -> Result<(), StoreError> {
        let made = make_generated(reports, now)?;
        let mut conn = self.conn()?;
        // Ids are random, so each batch writes index pages all over the
        // file; a larger page cache for this connection while it does.
        conn.pragma_update(None, "cache_size", -GENERATE_CACHE_KIB)?;
        let result = (|| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let received = now_text();
            let mut authors: Vec<DeviceRecord> = Vec::new();
            for ((key, new), made) in reports.iter().zip(&made) {
                let device = key.device_id();
                let known = authors.iter().position(|a| a.device_id == device);
                let index = match known {
                    Some(i) => i,
                    None => {
                        let a = device_by_id(&tx, &device)?
                            .ok_or_else(|| StoreError::UnknownDevice(device.clone()))?;
                        authors.push(a);
                        authors.len() - 1
                    }
                };
                let author = &authors[index];
                let refuse = |reason: &str| StoreError::GeneratedReport {
                    report: new.id.clone(),
                    reason: reason.to_owned(),
                };
                if author.case_id != new.case {
                    return Err(refuse("its author is enrolled in another case"));
                }
                if author.revoked_at.is_some() {
                    return Err(refuse("its author is revoked"));
                }
                let exists: Option<i64> = tx
                    .prepare_cached("SELECT 1 FROM documents WHERE id = ?1")?
                    .query_row([new.id.as_str()], |r| r.get(0))
                    .optional()?;
                if exists.is_some() {
                    return Err(refuse("the store already holds a report with its id"));
                }
                let changes = [ChangeRow {
                    hash: made.hash,
                    signed: &made.change,
                    author: device.clone(),
                    actor: device,
                }];
                write_document(
                    &tx,
                    new.case.as_str(),
                    &received,
                    &DocumentRow {
                        id: &new.id,
                        creator: &author.device_id,
                        snapshot: &made.change.bytes,
                        heads: &format_heads(&[made.hash]),
                        changes: &changes,
                        projection: &made.projection,
                    },
                )?;
            }
            tx.commit()?;
            Ok(())
        })();
        conn.pragma_update(None, "cache_size", DEFAULT_CACHE_SIZE)?;
        result
    }
}

/// A generated report's creating change and timeline projection.
struct Generated {
    change: SignedChange,
    hash: ChangeHash,
    projection: Projection,
}

/// Makes the creating change and projection of each report, on every core.
fn make_generated(
    reports: &[(&DeviceKey, NewReport)],
    now: DateTime<FixedOffset>,
) -> Result<Vec<Generated>, StoreError> {
    let make = |(key, new): &(&DeviceKey, NewReport)| -> Result<Generated, StoreError> {
        let (change, hash) = ReportDocument::creating_change(key, new, now).map_err(|e| {
            StoreError::GeneratedReport {
                report: new.id.clone(),
                reason: e.to_string(),
            }
        })?;
        let view = ReportDocument::created_view(&key.device_id(), new, now);
        Ok(Generated {
            change,
            hash,
            projection: Projection::of(&view)?,
        })
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = reports.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let workers: Vec<_> = reports
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(make).collect::<Vec<_>>()))
            .collect();
        let mut made = Vec::with_capacity(reports.len());
        for worker in workers {
            let part = worker
                .join()
                .map_err(|_| StoreError::Corrupt("a report generator thread panicked".into()))?;
            for one in part {
                made.push(one?);
            }
        }
        Ok(made)
    })
}
