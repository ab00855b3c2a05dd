//! Resumable uploads and who may read which blob. The bytes themselves
//! are in `blob_store/` (the data directory or a bucket); this is their
//! index.

use std::time::Duration;

use automerge::Automerge;
use chrono::{DateTime, Utc};
use fieldsync_core::document::read_report;
use fieldsync_core::model::DeviceRole;
use fieldsync_core::sync::policy::may_read;
use fieldsync_core::{CaseId, DeviceId, ReportId};
use rusqlite::{
    params, params_from_iter, Connection, OptionalExtension, Transaction, TransactionBehavior,
};

use crate::blob_store::{BlobId, UploadId};

use super::error::StoreError;
use super::membership::{DeviceRecord, MAX_INVITE_TTL};
use super::pool::Store;
use super::sql::{now_text, parse_stored, sql_length, sql_size, time_text};

/// An upload a device asks to start (`POST /v1/uploads`).
#[derive(Clone, Debug)]
pub struct NewUpload {
    pub blob: BlobId,
    pub report: ReportId,
    /// Upload-Length: the ciphertext's size in bytes.
    pub length: u64,
}

/// The bounds an upload is created under.
#[derive(Clone, Copy, Debug)]
pub struct UploadLimits {
    /// Most bytes of uploads (complete and in progress) one device may hold.
    pub device_quota_bytes: u64,
    /// How long an upload may go untouched before it is deleted.
    pub expiry: Duration,
}

/// An upload as the store records it.
#[derive(Clone, Debug)]
pub struct UploadRecord {
    pub id: UploadId,
    pub case_id: CaseId,
    pub device_id: DeviceId,
    pub blob: BlobId,
    pub report: ReportId,
    pub length: u64,
    /// Until when an incomplete upload is kept.
    pub expires_at: DateTime<Utc>,
    /// The blob is stored (uploaded here, or already there).
    pub completed: bool,
    /// The case already held the blob when the upload was created.
    pub deduplicated: bool,
}

impl UploadRecord {
    /// Whether an incomplete upload has expired by `now`.
    pub fn expired(&self, now: DateTime<Utc>) -> bool {
        !self.completed && self.expires_at <= now
    }
}

/// What [`Store::create_upload`] did.
#[derive(Clone, Debug)]
pub enum UploadStart {
    /// A new upload, with no bytes yet.
    Created(UploadRecord),
    /// This device's upload of the same blob, still in progress.
    Resumed(UploadRecord),
    /// The case holds the blob already: a completed upload that cost nothing.
    Deduplicated(UploadRecord),
}

/// Why an upload was not created. Nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Also a report of the case that this device may not write: the
    /// answer is the same, so it reveals nothing of other reporters' ids.
    #[error("report {0} is not on the server in this device's case; sync the report before uploading its attachments")]
    ReportNotSynced(ReportId),
    #[error("the report does not reference this blob; sync first (the server's copy of report {report} lists no attachment with blob {blob}: add the attachment to the report and sync before uploading)")]
    BlobNotReferenced { report: ReportId, blob: BlobId },
    /// Only for a device that may read the stored blob ([`holds_blob`]).
    #[error("this case already holds blob {blob} with {stored} bytes, not {length}; Upload-Length must be the size of the ciphertext")]
    LengthMismatch {
        blob: BlobId,
        stored: u64,
        length: u64,
    },
    #[error("this upload of {length} bytes would take the device past its quota of {quota} bytes ({used} bytes used by its uploads, complete and in progress)")]
    QuotaExceeded { length: u64, used: u64, quota: u64 },
}

/// Whether a device may read a blob ([`Store::blob_access`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlobAccess {
    /// Stored and readable by this device; its size in bytes.
    Readable { size: u64 },
    /// The device may read it once it is uploaded completely.
    NotYetUploaded,
    /// A coordinator's case has no such blob.
    Unknown,
    /// A reporter's device has not uploaded this blob itself (whether or
    /// not the case holds it).
    NotUploadedByThisDevice,
}

impl Store {
    /// Starts an upload of `new.blob` for `new.report`, in one
    /// transaction. Checked in order: the report is on the server in the
    /// device's case and the device may write it (a report it may not
    /// write is answered as one the server lacks); the server's copy of
    /// the report lists the blob; then, if the device may read the stored
    /// blob already ([`holds_blob`]), a completed upload that costs
    /// nothing; else, if this device has an upload of the blob in
    /// progress, that upload; else the device's quota and a new upload
    /// under `id`, expiring after `limits.expiry` untouched.
    ///
    /// A reporter that names a blob it did not upload itself gets a new
    /// upload whether or not the case holds the blob: it holds the blob
    /// only once it has sent every byte and they hash to the id, so no
    /// answer tells it whether another device's blob exists, or its size.
    ///
    /// The (blob, report) reference is recorded with any upload this
    /// returns. On an error nothing is written.
    pub fn create_upload(
        &self,
        device: &DeviceRecord,
        new: &NewUpload,
        id: &UploadId,
        limits: UploadLimits,
    ) -> Result<UploadStart, UploadError> {
        let mut conn = self.conn()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(StoreError::from)?;
        let case = device.case_id.as_str();
        let doc: Option<(String, Vec<u8>)> = tx
            .prepare_cached(
                "SELECT creator, snapshot FROM documents WHERE id = ?1 AND case_id = ?2",
            )
            .and_then(|mut s| {
                s.query_row(params![new.report.as_str(), case], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()
            })
            .map_err(StoreError::from)?;
        let Some((creator, snapshot)) = doc else {
            return Err(UploadError::ReportNotSynced(new.report.clone()));
        };
        let creator: DeviceId = parse_stored(&creator, "creator device id")?;
        // A report's writers are its readers: coordinators and its creator
        // (`policy::check_change` holds changes to the same rule). Another
        // reporter's report is answered as one the server lacks, so a
        // reporter learns nothing of other reporters' report ids.
        if !may_read(&device.member(), &creator) {
            return Err(UploadError::ReportNotSynced(new.report.clone()));
        }
        if !report_lists_blob(&snapshot, &new.report, &new.blob)? {
            return Err(UploadError::BlobNotReferenced {
                report: new.report.clone(),
                blob: new.blob.clone(),
            });
        }
        let now = Utc::now();
        tx.execute(
            "INSERT OR IGNORE INTO blob_refs (case_id, blob_id, report_id, device_id, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                case,
                new.blob.as_str(),
                new.report.as_str(),
                device.device_id.as_str(),
                time_text(now)
            ],
        )
        .map_err(StoreError::from)?;
        let expires_at = now + expiry_duration(limits.expiry)?;
        let stored = holds_blob(&tx, device, &new.blob)?;
        let start = if let Some(stored) = stored {
            if stored != new.length {
                return Err(UploadError::LengthMismatch {
                    blob: new.blob.clone(),
                    stored,
                    length: new.length,
                });
            }
            insert_upload(&tx, id, device, new, now, now, true)?;
            UploadStart::Deduplicated(
                upload_by_id(&tx, &device.case_id, id)?.ok_or_else(|| vanished(id))?,
            )
        } else if let Some(existing) = tx
            .query_row(
                "SELECT id FROM uploads
                 WHERE device_id = ?1 AND blob_id = ?2 AND length = ?3
                   AND completed_at IS NULL AND expires_at > ?4
                 ORDER BY created_at DESC LIMIT 1",
                params![
                    device.device_id.as_str(),
                    new.blob.as_str(),
                    sql_length(new.length)?,
                    time_text(now)
                ],
                |r| r.get::<_, String>(0),
            )
            .optional()
            .map_err(StoreError::from)?
        {
            let existing: UploadId = parse_stored(&existing, "upload id")?;
            tx.execute(
                "UPDATE uploads SET expires_at = ?3 WHERE case_id = ?1 AND id = ?2",
                params![
                    device.case_id.as_str(),
                    existing.as_str(),
                    time_text(expires_at)
                ],
            )
            .map_err(StoreError::from)?;
            UploadStart::Resumed(
                upload_by_id(&tx, &device.case_id, &existing)?
                    .ok_or_else(|| vanished(&existing))?,
            )
        } else {
            let used: i64 = tx
                .query_row(
                    "SELECT COALESCE(SUM(length), 0) FROM uploads WHERE device_id = ?1 AND deduplicated = 0",
                    [device.device_id.as_str()],
                    |r| r.get(0),
                )
                .map_err(StoreError::from)?;
            let used = sql_size(used)?;
            if used.saturating_add(new.length) > limits.device_quota_bytes {
                return Err(UploadError::QuotaExceeded {
                    length: new.length,
                    used,
                    quota: limits.device_quota_bytes,
                });
            }
            insert_upload(&tx, id, device, new, now, expires_at, false)?;
            UploadStart::Created(
                upload_by_id(&tx, &device.case_id, id)?.ok_or_else(|| vanished(id))?,
            )
        };
        tx.commit().map_err(StoreError::from)?;
        Ok(start)
    }

    /// An upload of `case`, whoever made it, complete or not, expired or
    /// not.
    pub fn upload(&self, case: &CaseId, id: &UploadId) -> Result<Option<UploadRecord>, StoreError> {
        let conn = self.conn()?;
        upload_by_id(&conn, case, id)
    }

    /// Keeps an incomplete upload for `expiry` from now (it is in use);
    /// returns the new expiry.
    pub fn touch_upload(
        &self,
        case: &CaseId,
        id: &UploadId,
        expiry: Duration,
    ) -> Result<DateTime<Utc>, StoreError> {
        let expires_at = Utc::now() + expiry_duration(expiry)?;
        let conn = self.conn()?;
        conn.execute(
            "UPDATE uploads SET expires_at = ?3
             WHERE case_id = ?1 AND id = ?2 AND completed_at IS NULL",
            params![case.as_str(), id.as_str(), time_text(expires_at)],
        )?;
        Ok(expires_at)
    }

    /// Marks an upload complete and its blob stored in the upload's case,
    /// in one transaction. Call it only once the blob's bytes are verified
    /// and durably in place.
    pub fn complete_upload(
        &self,
        case: &CaseId,
        id: &UploadId,
    ) -> Result<UploadRecord, StoreError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let upload = upload_by_id(&tx, case, id)?.ok_or_else(|| vanished(id))?;
        let now = now_text();
        tx.execute(
            "UPDATE uploads SET completed_at = COALESCE(completed_at, ?3)
             WHERE case_id = ?1 AND id = ?2",
            params![case.as_str(), id.as_str(), now],
        )?;
        tx.execute(
            "INSERT OR IGNORE INTO blobs (case_id, blob_id, size, uploaded_by, report_id, stored_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                upload.case_id.as_str(),
                upload.blob.as_str(),
                sql_length(upload.length)?,
                upload.device_id.as_str(),
                upload.report.as_str(),
                now
            ],
        )?;
        tx.commit()?;
        Ok(UploadRecord {
            completed: true,
            ..upload
        })
    }

    /// Forgets an upload (its bytes were refused, or it expired).
    pub fn delete_upload(&self, case: &CaseId, id: &UploadId) -> Result<(), StoreError> {
        let conn = self.conn()?;
        conn.execute(
            "DELETE FROM uploads WHERE case_id = ?1 AND id = ?2",
            [case.as_str(), id.as_str()],
        )?;
        Ok(())
    }

    /// Incomplete uploads whose expiry is past `now`, of every case.
    pub fn expired_uploads(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<(CaseId, UploadId)>, StoreError> {
        self.upload_ids(
            "SELECT case_id, id FROM uploads WHERE completed_at IS NULL AND expires_at <= ?1",
            Some(time_text(now)),
        )
    }

    /// Every incomplete upload of every case.
    pub fn incomplete_uploads(&self) -> Result<Vec<(CaseId, UploadId)>, StoreError> {
        self.upload_ids(
            "SELECT case_id, id FROM uploads WHERE completed_at IS NULL",
            None,
        )
    }

    fn upload_ids(
        &self,
        sql: &str,
        arg: Option<String>,
    ) -> Result<Vec<(CaseId, UploadId)>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare(sql)?;
        let ids = stmt
            .query_map(params_from_iter(arg.iter()), |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        ids.iter()
            .map(|(case, id)| {
                Ok((
                    parse_stored(case, "case id")?,
                    parse_stored(id, "upload id")?,
                ))
            })
            .collect()
    }

    /// Every complete blob of every case, with its size: what a copy of
    /// this store must carry (`admin migrate`).
    pub fn stored_blobs(&self) -> Result<Vec<(CaseId, BlobId, u64)>, StoreError> {
        let conn = self.conn()?;
        let mut stmt =
            conn.prepare("SELECT case_id, blob_id, size FROM blobs ORDER BY case_id, blob_id")?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter()
            .map(|(case, blob, size)| {
                Ok((
                    parse_stored(&case, "case id")?,
                    parse_stored(&blob, "blob id")?,
                    sql_size(size)?,
                ))
            })
            .collect()
    }

    /// Every report's stored heads: (case id, report id, heads), for
    /// comparing two stores.
    pub fn document_heads(&self) -> Result<Vec<(String, String, String)>, StoreError> {
        let conn = self.conn()?;
        let mut stmt =
            conn.prepare("SELECT case_id, id, heads FROM documents ORDER BY case_id, id")?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Whether `device` may read `blob`. Coordinators read every blob of
    /// their case; reporters only blobs their own device uploaded
    /// ([`holds_blob`]), and get one answer for every other blob, whether
    /// the case holds it or not. Nothing here depends on other cases, so
    /// the answer reveals nothing about them.
    pub fn blob_access(
        &self,
        device: &DeviceRecord,
        blob: &BlobId,
    ) -> Result<BlobAccess, StoreError> {
        let conn = self.conn()?;
        let case = device.case_id.as_str();
        if device.role == DeviceRole::Reporter {
            return Ok(match holds_blob(&conn, device, blob)? {
                Some(size) => BlobAccess::Readable { size },
                None => BlobAccess::NotUploadedByThisDevice,
            });
        }
        let size: Option<i64> = conn
            .query_row(
                "SELECT size FROM blobs WHERE case_id = ?1 AND blob_id = ?2",
                params![case, blob.as_str()],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(size) = size {
            return Ok(BlobAccess::Readable {
                size: sql_size(size)?,
            });
        }
        let expected: Option<i64> = conn
            .query_row(
                "SELECT 1 FROM blob_refs WHERE case_id = ?1 AND blob_id = ?2 LIMIT 1",
                params![case, blob.as_str()],
                |r| r.get(0),
            )
            .optional()?;
        Ok(match expected {
            Some(_) => BlobAccess::NotYetUploaded,
            None => BlobAccess::Unknown,
        })
    }
}

const UPLOAD_SELECT: &str =
    "SELECT id, case_id, device_id, blob_id, report_id, length, expires_at, completed_at, deduplicated
     FROM uploads";

fn upload_by_id(
    conn: &Connection,
    case: &CaseId,
    id: &UploadId,
) -> Result<Option<UploadRecord>, StoreError> {
    type Row = (
        String,
        String,
        String,
        String,
        String,
        i64,
        String,
        Option<String>,
        bool,
    );
    let row: Option<Row> = conn
        .prepare_cached(&format!("{UPLOAD_SELECT} WHERE case_id = ?1 AND id = ?2"))?
        .query_row([case.as_str(), id.as_str()], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get(7)?,
                r.get(8)?,
            ))
        })
        .optional()?;
    row.map(
        |(id, case, device, blob, report, length, expires_at, completed_at, deduplicated)| {
            Ok(UploadRecord {
                id: parse_stored(&id, "upload id")?,
                case_id: parse_stored(&case, "case id")?,
                device_id: parse_stored(&device, "device id")?,
                blob: parse_stored(&blob, "blob id")?,
                report: parse_stored(&report, "report id")?,
                length: sql_size(length)?,
                expires_at: DateTime::parse_from_rfc3339(&expires_at)
                    .map_err(|_| StoreError::Corrupt(format!("upload expiry {expires_at:?}")))?
                    .with_timezone(&Utc),
                completed: completed_at.is_some(),
                deduplicated,
            })
        },
    )
    .transpose()
}

fn insert_upload(
    tx: &Transaction<'_>,
    id: &UploadId,
    device: &DeviceRecord,
    new: &NewUpload,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    deduplicated: bool,
) -> Result<(), StoreError> {
    let now = time_text(now);
    tx.execute(
        "INSERT INTO uploads (id, case_id, device_id, blob_id, report_id, length, created_at,
                              expires_at, completed_at, deduplicated)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            id.as_str(),
            device.case_id.as_str(),
            device.device_id.as_str(),
            new.blob.as_str(),
            new.report.as_str(),
            sql_length(new.length)?,
            now,
            time_text(expires_at),
            deduplicated.then_some(&now),
            deduplicated,
        ],
    )?;
    Ok(())
}

/// The size of `blob` if `device` may read it as stored in its case
/// without sending it: a coordinator reads every blob of its case; any
/// other device only a blob it uploaded itself, every byte checked against
/// the id (a completed upload that was not deduplicated). A blob id alone
/// proves nothing: reports list ids that any device can copy.
fn holds_blob(
    conn: &Connection,
    device: &DeviceRecord,
    blob: &BlobId,
) -> Result<Option<u64>, StoreError> {
    let size: Option<i64> = conn
        .prepare_cached(
            "SELECT b.size FROM blobs b
             WHERE b.case_id = ?1 AND b.blob_id = ?2
               AND (?4 OR EXISTS (
                   SELECT 1 FROM uploads u
                   WHERE u.device_id = ?3 AND u.blob_id = ?2 AND u.case_id = ?1
                     AND u.completed_at IS NOT NULL AND u.deduplicated = 0))",
        )?
        .query_row(
            params![
                device.case_id.as_str(),
                blob.as_str(),
                device.device_id.as_str(),
                device.role == DeviceRole::Coordinator
            ],
            |r| r.get(0),
        )
        .optional()?;
    size.map(sql_size).transpose()
}

/// Whether the stored report (its snapshot) lists `blob` among its
/// attachments; a report that does not read lists none.
pub(super) fn report_lists_blob(
    snapshot: &[u8],
    report: &ReportId,
    blob: &BlobId,
) -> Result<bool, StoreError> {
    let doc = Automerge::load(snapshot)
        .map_err(|e| StoreError::Corrupt(format!("report {report} does not load: {e}")))?;
    Ok(match read_report(&doc) {
        Ok(read) => read.attachments.iter().any(|a| a.blob == blob.as_str()),
        Err(_) => false,
    })
}

pub(super) fn vanished(id: &UploadId) -> StoreError {
    StoreError::Corrupt(format!("upload {id} vanished inside a transaction"))
}

pub(super) fn expiry_duration(expiry: Duration) -> Result<chrono::Duration, StoreError> {
    chrono::Duration::from_std(expiry.min(MAX_INVITE_TTL))
        .map_err(|_| StoreError::Corrupt("upload expiry out of range".into()))
}
