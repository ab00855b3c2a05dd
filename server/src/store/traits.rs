//! The store's operations the HTTP layer calls, one trait per concern,
//! so another database (issue 17: PostgreSQL) can implement them and the
//! handlers stay as they are. The SQLite [`Store`] implements each by
//! calling its own method of the same name; the documentation is there.
//!
//! Every method blocks: the HTTP layer calls them off the async executor.

use std::time::Duration;

use chrono::{DateTime, Utc};
use fieldsync_core::case_key_trust::{PublishedCaseKey, VerifiedCaseKey};
use fieldsync_core::model::DeviceRole;
use fieldsync_core::sync::server::{ServerLimits, VerifiedRequest};
use fieldsync_core::web_login::LoginCertificate;
use fieldsync_core::{CaseId, DeviceId, PublicKey, ReportId};

use super::blobs::{BlobAccess, NewUpload, UploadError, UploadLimits, UploadRecord, UploadStart};
use super::error::StoreError;
use super::membership::{CaseRecord, DeviceRecord};
use super::pool::{PoolStatus, Store};
use super::sync::{SyncRound, SyncStoreError};
use super::timeline::{TimelinePage, TimelineQuery};
use super::web::{LoginRefusal, NewWebSession, StoredReport, WebSession};
use crate::blob_store::{BlobId, UploadId};

/// Devices, enrollment, request nonces, the audit log and case keys.
pub trait MembershipStore {
    fn device(&self, id: &DeviceId) -> Result<Option<DeviceRecord>, StoreError>;
    fn enroll(&self, token: &str, public_key: &PublicKey) -> Result<DeviceRecord, StoreError>;
    fn devices(&self, case_name: Option<&str>) -> Result<Vec<DeviceRecord>, StoreError>;
    fn import_salt(&self, case: &CaseId) -> Result<String, StoreError>;
    fn case_timezone(&self, case: &CaseId) -> Result<Option<String>, StoreError>;
    fn use_nonce(
        &self,
        device: &DeviceId,
        nonce: &str,
        timestamp: i64,
        window_secs: i64,
    ) -> Result<bool, StoreError>;
    fn audit(&self, event: &str, device: Option<&DeviceId>, detail: &str)
        -> Result<(), StoreError>;
    fn prune_audit_log(&self, before: DateTime<Utc>) -> Result<usize, StoreError>;
    fn case_public_keys(&self, case: &CaseId) -> Result<Vec<PublishedCaseKey>, StoreError>;
    fn publish_case_key(
        &self,
        device: &DeviceRecord,
        key: &VerifiedCaseKey,
    ) -> Result<bool, StoreError>;
    fn create_invite_by(
        &self,
        device: &DeviceRecord,
        role: DeviceRole,
        ttl: Duration,
    ) -> Result<(String, String), StoreError>;
}

/// The sync round.
pub trait SyncStore {
    fn sync_verified(
        &self,
        requester: &DeviceRecord,
        request: VerifiedRequest,
        limits: ServerLimits,
        live_session: Option<&PublicKey>,
    ) -> Result<SyncRound, SyncStoreError>;
}

/// The case timeline and a report with its history.
pub trait TimelineStore {
    fn timeline(&self, case_id: &CaseId, query: &TimelineQuery)
        -> Result<TimelinePage, StoreError>;
    fn report_with_history(
        &self,
        case: &CaseId,
        id: &ReportId,
    ) -> Result<Option<StoredReport>, StoreError>;
}

/// Uploads and who may read which blob.
pub trait BlobIndex {
    fn create_upload(
        &self,
        device: &DeviceRecord,
        new: &NewUpload,
        id: &UploadId,
        limits: UploadLimits,
    ) -> Result<UploadStart, UploadError>;
    // An upload is named by its case and its id, so that every query on
    // the upload path is scoped to one case (ARCHITECTURE.md, "Past one
    // database node"); the sweeps below are the cross-case exceptions.
    fn upload(&self, case: &CaseId, id: &UploadId) -> Result<Option<UploadRecord>, StoreError>;
    fn touch_upload(
        &self,
        case: &CaseId,
        id: &UploadId,
        expiry: Duration,
    ) -> Result<DateTime<Utc>, StoreError>;
    fn complete_upload(&self, case: &CaseId, id: &UploadId) -> Result<UploadRecord, StoreError>;
    fn delete_upload(&self, case: &CaseId, id: &UploadId) -> Result<(), StoreError>;
    fn expired_uploads(&self, now: DateTime<Utc>) -> Result<Vec<(CaseId, UploadId)>, StoreError>;
    fn incomplete_uploads(&self) -> Result<Vec<(CaseId, UploadId)>, StoreError>;
    fn blob_access(&self, device: &DeviceRecord, blob: &BlobId) -> Result<BlobAccess, StoreError>;
}

/// The review app's browser sessions.
pub trait WebSessionStore {
    fn start_web_session(
        &self,
        cert: &LoginCertificate,
        now: i64,
    ) -> Result<Result<NewWebSession, LoginRefusal>, StoreError>;
    fn web_session(&self, cookie: &str, now: i64) -> Result<Option<WebSession>, StoreError>;
    fn end_web_session(&self, cookie: &str) -> Result<(), StoreError>;
}

/// The operator's commands (`fieldsync admin`), which no handler calls.
pub trait AdminStore {
    fn create_case_in_zone(
        &self,
        name: &str,
        timezone: Option<&str>,
    ) -> Result<CaseRecord, StoreError>;
    fn set_case_timezone(
        &self,
        name: &str,
        timezone: Option<&str>,
    ) -> Result<CaseRecord, StoreError>;
    fn create_invite(
        &self,
        case_name: &str,
        role: DeviceRole,
        ttl: Duration,
    ) -> Result<String, StoreError>;
    fn case_public_keys_by_name(
        &self,
        case_name: &str,
    ) -> Result<Vec<PublishedCaseKey>, StoreError>;
    fn devices(&self, case_name: Option<&str>) -> Result<Vec<DeviceRecord>, StoreError>;
    fn revoke(&self, id: &DeviceId) -> Result<DeviceRecord, StoreError>;
}

/// The connection pool's saturation, for the operators' metrics. Cheap
/// and non-blocking: it is read at every scrape.
pub trait PoolStats {
    fn pool_status(&self) -> PoolStatus;
}

/// Everything the server's handlers need of a store.
pub trait ServerStorage:
    MembershipStore + SyncStore + TimelineStore + BlobIndex + WebSessionStore + PoolStats + Send + Sync
{
}

impl<T> ServerStorage for T where
    T: MembershipStore
        + SyncStore
        + TimelineStore
        + BlobIndex
        + WebSessionStore
        + PoolStats
        + Send
        + Sync
{
}

/// The trait methods of a store type that has inherent methods of the
/// same names and signatures: the SQLite [`Store`] and the PostgreSQL
/// [`PgStore`](super::postgres::PgStore).
macro_rules! delegate {
    ($store:ty) => {
        impl AdminStore for $store {
            fn create_case_in_zone(
                &self,
                name: &str,
                timezone: Option<&str>,
            ) -> Result<CaseRecord, StoreError> {
                <$store>::create_case_in_zone(self, name, timezone)
            }
            fn set_case_timezone(
                &self,
                name: &str,
                timezone: Option<&str>,
            ) -> Result<CaseRecord, StoreError> {
                <$store>::set_case_timezone(self, name, timezone)
            }
            fn create_invite(
                &self,
                case_name: &str,
                role: DeviceRole,
                ttl: Duration,
            ) -> Result<String, StoreError> {
                <$store>::create_invite(self, case_name, role, ttl)
            }
            fn case_public_keys_by_name(
                &self,
                case_name: &str,
            ) -> Result<Vec<PublishedCaseKey>, StoreError> {
                <$store>::case_public_keys_by_name(self, case_name)
            }
            fn devices(&self, case_name: Option<&str>) -> Result<Vec<DeviceRecord>, StoreError> {
                <$store>::devices(self, case_name)
            }
            fn revoke(&self, id: &DeviceId) -> Result<DeviceRecord, StoreError> {
                <$store>::revoke(self, id)
            }
        }

        impl MembershipStore for $store {
            fn device(&self, id: &DeviceId) -> Result<Option<DeviceRecord>, StoreError> {
                <$store>::device(self, id)
            }
            fn enroll(
                &self,
                token: &str,
                public_key: &PublicKey,
            ) -> Result<DeviceRecord, StoreError> {
                <$store>::enroll(self, token, public_key)
            }
            fn devices(&self, case_name: Option<&str>) -> Result<Vec<DeviceRecord>, StoreError> {
                <$store>::devices(self, case_name)
            }
            fn import_salt(&self, case: &CaseId) -> Result<String, StoreError> {
                <$store>::import_salt(self, case)
            }
            fn case_timezone(&self, case: &CaseId) -> Result<Option<String>, StoreError> {
                <$store>::case_timezone(self, case)
            }
            fn use_nonce(
                &self,
                device: &DeviceId,
                nonce: &str,
                timestamp: i64,
                window_secs: i64,
            ) -> Result<bool, StoreError> {
                <$store>::use_nonce(self, device, nonce, timestamp, window_secs)
            }
            fn audit(
                &self,
                event: &str,
                device: Option<&DeviceId>,
                detail: &str,
            ) -> Result<(), StoreError> {
                <$store>::audit(self, event, device, detail)
            }
            fn prune_audit_log(&self, before: DateTime<Utc>) -> Result<usize, StoreError> {
                <$store>::prune_audit_log(self, before)
            }
            fn case_public_keys(&self, case: &CaseId) -> Result<Vec<PublishedCaseKey>, StoreError> {
                <$store>::case_public_keys(self, case)
            }
            fn publish_case_key(
                &self,
                device: &DeviceRecord,
                key: &VerifiedCaseKey,
            ) -> Result<bool, StoreError> {
                <$store>::publish_case_key(self, device, key)
            }
            fn create_invite_by(
                &self,
                device: &DeviceRecord,
                role: DeviceRole,
                ttl: Duration,
            ) -> Result<(String, String), StoreError> {
                <$store>::create_invite_by(self, device, role, ttl)
            }
        }

        impl SyncStore for $store {
            fn sync_verified(
                &self,
                requester: &DeviceRecord,
                request: VerifiedRequest,
                limits: ServerLimits,
                live_session: Option<&PublicKey>,
            ) -> Result<SyncRound, SyncStoreError> {
                <$store>::sync_verified(self, requester, request, limits, live_session)
            }
        }

        impl TimelineStore for $store {
            fn timeline(
                &self,
                case_id: &CaseId,
                query: &TimelineQuery,
            ) -> Result<TimelinePage, StoreError> {
                <$store>::timeline(self, case_id, query)
            }
            fn report_with_history(
                &self,
                case: &CaseId,
                id: &ReportId,
            ) -> Result<Option<StoredReport>, StoreError> {
                <$store>::report_with_history(self, case, id)
            }
        }

        impl BlobIndex for $store {
            fn create_upload(
                &self,
                device: &DeviceRecord,
                new: &NewUpload,
                id: &UploadId,
                limits: UploadLimits,
            ) -> Result<UploadStart, UploadError> {
                <$store>::create_upload(self, device, new, id, limits)
            }
            fn upload(
                &self,
                case: &CaseId,
                id: &UploadId,
            ) -> Result<Option<UploadRecord>, StoreError> {
                <$store>::upload(self, case, id)
            }
            fn touch_upload(
                &self,
                case: &CaseId,
                id: &UploadId,
                expiry: Duration,
            ) -> Result<DateTime<Utc>, StoreError> {
                <$store>::touch_upload(self, case, id, expiry)
            }
            fn complete_upload(
                &self,
                case: &CaseId,
                id: &UploadId,
            ) -> Result<UploadRecord, StoreError> {
                <$store>::complete_upload(self, case, id)
            }
            fn delete_upload(&self, case: &CaseId, id: &UploadId) -> Result<(), StoreError> {
                <$store>::delete_upload(self, case, id)
            }
            fn expired_uploads(
                &self,
                now: DateTime<Utc>,
            ) -> Result<Vec<(CaseId, UploadId)>, StoreError> {
                <$store>::expired_uploads(self, now)
            }
            fn incomplete_uploads(&self) -> Result<Vec<(CaseId, UploadId)>, StoreError> {
                <$store>::incomplete_uploads(self)
            }
            fn blob_access(
                &self,
                device: &DeviceRecord,
                blob: &BlobId,
            ) -> Result<BlobAccess, StoreError> {
                <$store>::blob_access(self, device, blob)
            }
        }

        impl PoolStats for $store {
            fn pool_status(&self) -> PoolStatus {
                <$store>::pool_status(self)
            }
        }

        impl WebSessionStore for $store {
            fn start_web_session(
                &self,
                cert: &LoginCertificate,
                now: i64,
            ) -> Result<Result<NewWebSession, LoginRefusal>, StoreError> {
                <$store>::start_web_session(self, cert, now)
            }
            fn web_session(
                &self,
                cookie: &str,
                now: i64,
            ) -> Result<Option<WebSession>, StoreError> {
                <$store>::web_session(self, cookie, now)
            }
            fn end_web_session(&self, cookie: &str) -> Result<(), StoreError> {
                <$store>::end_web_session(self, cookie)
            }
        }
    };
}

delegate!(Store);
delegate!(super::postgres::PgStore);
