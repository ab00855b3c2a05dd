//! Resumable uploads and who may read which blob, on PostgreSQL; see
//! `store/blobs.rs` for the rules, which are the same. An upload is
//! created and completed under its case's advisory lock, so two processes
//! cannot both start uploads that together pass a device's quota.

use std::time::Duration;

use chrono::{DateTime, Utc};
use fieldsync_core::model::DeviceRole;
use fieldsync_core::sync::policy::may_read;
use fieldsync_core::{CaseId, DeviceId};
use postgres::GenericClient;

use super::{case_lock_key, PgStore};
use crate::blob_store::{BlobId, UploadId};
use crate::store::blobs::{expiry_duration, report_lists_blob, vanished};
use crate::store::error::StoreError;
use crate::store::membership::DeviceRecord;
use crate::store::sql::{now_text, parse_stored, sql_length, sql_size, time_text};
use crate::store::{BlobAccess, NewUpload, UploadError, UploadLimits, UploadRecord, UploadStart};

impl PgStore {
    pub fn create_upload(
        &self,
        device: &DeviceRecord,
        new: &NewUpload,
        id: &UploadId,
        limits: UploadLimits,
    ) -> Result<UploadStart, UploadError> {
        let mut conn = self.conn()?;
        let mut tx = conn.transaction().map_err(StoreError::from)?;
        let case = device.case_id.as_str();
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&case_lock_key(case)])
            .map_err(StoreError::from)?;
        let doc = tx
            .query_opt(
                "SELECT creator, snapshot FROM documents WHERE id = $1 AND case_id = $2",
                &[&new.report.as_str(), &case],
            )
            .map_err(StoreError::from)?;
        let Some(doc) = doc else {
            return Err(UploadError::ReportNotSynced(new.report.clone()));
        };
        let creator: DeviceId = parse_stored(&doc.get::<_, String>(0), "creator device id")?;
        if !may_read(&device.member(), &creator) {
            return Err(UploadError::ReportNotSynced(new.report.clone()));
        }
        let snapshot: Vec<u8> = doc.get(1);
        if !report_lists_blob(&snapshot, &new.report, &new.blob)? {
            return Err(UploadError::BlobNotReferenced {
                report: new.report.clone(),
                blob: new.blob.clone(),
            });
        }
        let now = Utc::now();
        tx.execute(
            "INSERT INTO blob_refs (case_id, blob_id, report_id, device_id, created_at)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            &[
                &case,
                &new.blob.as_str(),
                &new.report.as_str(),
                &device.device_id.as_str(),
                &time_text(now),
            ],
        )
        .map_err(StoreError::from)?;
        let expires_at = now + expiry_duration(limits.expiry)?;
        let existing = tx
            .query_opt(
                "SELECT id FROM uploads
                 WHERE case_id = $1 AND device_id = $2 AND blob_id = $3 AND length = $4
                   AND completed_at IS NULL AND expires_at > $5
                 ORDER BY created_at DESC LIMIT 1",
                &[
                    &case,
                    &device.device_id.as_str(),
                    &new.blob.as_str(),
                    &sql_length(new.length)?,
                    &time_text(now),
                ],
            )
            .map_err(StoreError::from)?;
        let start = if let Some(stored) = holds_blob(&mut tx, device, &new.blob)? {
            if stored != new.length {
                return Err(UploadError::LengthMismatch {
                    blob: new.blob.clone(),
                    stored,
                    length: new.length,
                });
            }
            insert_upload(&mut tx, id, device, new, now, now, true)?;
            UploadStart::Deduplicated(
                upload_by_id(&mut tx, &device.case_id, id)?.ok_or_else(|| vanished(id))?,
            )
        } else if let Some(existing) = existing {
            let existing: UploadId = parse_stored(&existing.get::<_, String>(0), "upload id")?;
            tx.execute(
                "UPDATE uploads SET expires_at = $3 WHERE case_id = $1 AND id = $2",
                &[
                    &device.case_id.as_str(),
                    &existing.as_str(),
                    &time_text(expires_at),
                ],
            )
            .map_err(StoreError::from)?;
            UploadStart::Resumed(
                upload_by_id(&mut tx, &device.case_id, &existing)?
                    .ok_or_else(|| vanished(&existing))?,
            )
        } else {
            let used: i64 = tx
                .query_one(
                    "SELECT COALESCE(SUM(length), 0)::BIGINT FROM uploads
                     WHERE case_id = $1 AND device_id = $2 AND NOT deduplicated",
                    &[&case, &device.device_id.as_str()],
                )
                .map_err(StoreError::from)?
                .get(0);
            let used = sql_size(used)?;
            if used.saturating_add(new.length) > limits.device_quota_bytes {
                return Err(UploadError::QuotaExceeded {
                    length: new.length,
                    used,
                    quota: limits.device_quota_bytes,
                });
            }
            insert_upload(&mut tx, id, device, new, now, expires_at, false)?;
            UploadStart::Created(
                upload_by_id(&mut tx, &device.case_id, id)?.ok_or_else(|| vanished(id))?,
            )
        };
        tx.commit().map_err(StoreError::from)?;
        Ok(start)
    }

    pub fn upload(&self, case: &CaseId, id: &UploadId) -> Result<Option<UploadRecord>, StoreError> {
        upload_by_id(&mut *self.conn()?, case, id)
    }

    pub fn touch_upload(
        &self,
        case: &CaseId,
        id: &UploadId,
        expiry: Duration,
    ) -> Result<DateTime<Utc>, StoreError> {
        let expires_at = Utc::now() + expiry_duration(expiry)?;
        self.conn()?.execute(
            "UPDATE uploads SET expires_at = $3
             WHERE case_id = $1 AND id = $2 AND completed_at IS NULL",
            &[&case.as_str(), &id.as_str(), &time_text(expires_at)],
        )?;
        Ok(expires_at)
    }

    pub fn complete_upload(
        &self,
        case: &CaseId,
        id: &UploadId,
    ) -> Result<UploadRecord, StoreError> {
        let mut conn = self.conn()?;
        let mut tx = conn.transaction()?;
        let upload = upload_by_id(&mut tx, case, id)?.ok_or_else(|| vanished(id))?;
        let now = now_text();
        tx.execute(
            "UPDATE uploads SET completed_at = COALESCE(completed_at, $3)
             WHERE case_id = $1 AND id = $2",
            &[&case.as_str(), &id.as_str(), &now],
        )?;
        tx.execute(
            "INSERT INTO blobs (case_id, blob_id, size, uploaded_by, report_id, stored_at)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            &[
                &upload.case_id.as_str(),
                &upload.blob.as_str(),
                &sql_length(upload.length)?,
                &upload.device_id.as_str(),
                &upload.report.as_str(),
                &now,
            ],
        )?;
        tx.commit()?;
        Ok(UploadRecord {
            completed: true,
            ..upload
        })
    }

    pub fn delete_upload(&self, case: &CaseId, id: &UploadId) -> Result<(), StoreError> {
        self.conn()?.execute(
            "DELETE FROM uploads WHERE case_id = $1 AND id = $2",
            &[&case.as_str(), &id.as_str()],
        )?;
        Ok(())
    }

    pub fn expired_uploads(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<(CaseId, UploadId)>, StoreError> {
        let rows = self.conn()?.query(
            "SELECT case_id, id FROM uploads WHERE completed_at IS NULL AND expires_at <= $1",
            &[&time_text(now)],
        )?;
        rows.iter().map(upload_key).collect()
    }

    pub fn incomplete_uploads(&self) -> Result<Vec<(CaseId, UploadId)>, StoreError> {
        let rows = self.conn()?.query(
            "SELECT case_id, id FROM uploads WHERE completed_at IS NULL",
            &[],
        )?;
        rows.iter().map(upload_key).collect()
    }

    pub fn blob_access(
        &self,
        device: &DeviceRecord,
        blob: &BlobId,
    ) -> Result<BlobAccess, StoreError> {
        let mut conn = self.conn()?;
        let case = device.case_id.as_str();
        if device.role == DeviceRole::Reporter {
            return Ok(match holds_blob(&mut *conn, device, blob)? {
                Some(size) => BlobAccess::Readable { size },
                None => BlobAccess::NotUploadedByThisDevice,
            });
        }
        if let Some(row) = conn.query_opt(
            "SELECT size FROM blobs WHERE case_id = $1 AND blob_id = $2",
            &[&case, &blob.as_str()],
        )? {
            return Ok(BlobAccess::Readable {
                size: sql_size(row.get(0))?,
            });
        }
        let expected = conn.query_opt(
            "SELECT 1 FROM blob_refs WHERE case_id = $1 AND blob_id = $2 LIMIT 1",
            &[&case, &blob.as_str()],
        )?;
        Ok(match expected {
            Some(_) => BlobAccess::NotYetUploaded,
            None => BlobAccess::Unknown,
        })
    }
}

fn upload_key(row: &postgres::Row) -> Result<(CaseId, UploadId), StoreError> {
    Ok((
        parse_stored(&row.get::<_, String>(0), "case id")?,
        parse_stored(&row.get::<_, String>(1), "upload id")?,
    ))
}

fn upload_by_id(
    conn: &mut impl GenericClient,
    case: &CaseId,
    id: &UploadId,
) -> Result<Option<UploadRecord>, StoreError> {
    let row = conn.query_opt(
        "SELECT id, case_id, device_id, blob_id, report_id, length, expires_at, completed_at,
                deduplicated
         FROM uploads WHERE case_id = $1 AND id = $2",
        &[&case.as_str(), &id.as_str()],
    )?;
    row.map(|r| {
        let expires_at: String = r.get(6);
        Ok(UploadRecord {
            id: parse_stored(&r.get::<_, String>(0), "upload id")?,
            case_id: parse_stored(&r.get::<_, String>(1), "case id")?,
            device_id: parse_stored(&r.get::<_, String>(2), "device id")?,
            blob: parse_stored(&r.get::<_, String>(3), "blob id")?,
            report: parse_stored(&r.get::<_, String>(4), "report id")?,
            length: sql_size(r.get(5))?,
            expires_at: DateTime::parse_from_rfc3339(&expires_at)
                .map_err(|_| StoreError::Corrupt(format!("upload expiry {expires_at:?}")))?
                .with_timezone(&Utc),
            completed: r.get::<_, Option<String>>(7).is_some(),
            deduplicated: r.get(8),
        })
    })
    .transpose()
}

fn insert_upload(
    tx: &mut impl GenericClient,
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
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        &[
            &id.as_str(),
            &device.case_id.as_str(),
            &device.device_id.as_str(),
            &new.blob.as_str(),
            &new.report.as_str(),
            &sql_length(new.length)?,
            &now,
            &time_text(expires_at),
            &deduplicated.then_some(&now),
            &deduplicated,
        ],
    )?;
    Ok(())
}

/// See `store/blobs.rs` `holds_blob`.
fn holds_blob(
    conn: &mut impl GenericClient,
    device: &DeviceRecord,
    blob: &BlobId,
) -> Result<Option<u64>, StoreError> {
    let row = conn.query_opt(
        "SELECT b.size FROM blobs b
         WHERE b.case_id = $1 AND b.blob_id = $2
           AND ($4 OR EXISTS (
               SELECT 1 FROM uploads u
               WHERE u.device_id = $3 AND u.blob_id = $2 AND u.case_id = $1
                 AND u.completed_at IS NOT NULL AND NOT u.deduplicated))",
        &[
            &device.case_id.as_str(),
            &blob.as_str(),
            &device.device_id.as_str(),
            &(device.role == DeviceRole::Coordinator),
        ],
    )?;
    row.map(|r| sql_size(r.get(0))).transpose()
}
