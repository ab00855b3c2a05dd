//! The device: its replica, the enrollment it keeps there, and a full sync
//! in the order the server needs.

use super::calls;
use super::meta_keys as keys;
use super::transport::{Transport, TransportError};
use super::upload_outbox::{self, OutboxProgress, UploadSummary};
use crate::model::DeviceRole;
use crate::protocol::{EnrollResponse, WireEncoding};
use crate::replica::{Replica, ReplicaError, RoundReport, SyncFailure, SyncSummary};
use crate::CaseId;

/// The case this device belongs to and how it reaches its server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Enrollment {
    pub server: String,
    pub case_id: CaseId,
    pub case_name: String,
    pub role: DeviceRole,
}

#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("this device is not enrolled in a case")]
    NotEnrolled,
    #[error("this device's enrollment is damaged: {0}")]
    BadEnrollment(String),
    #[error("this device is enrolled in case {enrolled:?}, not {asked:?}")]
    OtherCase { enrolled: String, asked: String },
    #[error("this device is already enrolled in case {0}")]
    AlreadyEnrolled(String),
    #[error("this device does not have its case's import salt yet (it keeps imported reports' ids unpredictable, and only coordinators' devices get it)")]
    NoImportSalt,
    /// The changes did not get through; `left` of them wait on the device.
    #[error("sync failed: {failure}\nnothing was lost: {left} changes stay on this device")]
    SyncFailed {
        failure: Box<SyncFailure<TransportError>>,
        left: usize,
    },
    #[error(transparent)]
    Replica(#[from] ReplicaError),
}

/// What happened during [`Device::sync_all`], as it happens; nothing of it
/// stops the sync.
pub enum SyncEvent<'a> {
    /// One round of changes went and came.
    Round(&'a RoundReport),
    /// The device's clock offset changed (0: it agrees with the server's
    /// again); the device home keeps it.
    ClockOffset(i64),
    /// The case's device list could not be refreshed.
    RosterFailed(TransportError),
    /// The server answered with another case's details.
    OtherCaseInfo,
    /// The case's import salt could not be fetched.
    SaltFailed(TransportError),
}

/// What a full sync did.
pub struct SyncAll {
    pub changes: SyncSummary,
    pub uploads: UploadSummary,
}

/// A device home: the replica and what the device application keeps in it.
pub struct Device {
    replica: Replica,
}

impl Device {
    pub fn new(replica: Replica) -> Self {
        Self { replica }
    }

    pub fn replica(&self) -> &Replica {
        &self.replica
    }

    pub fn replica_mut(&mut self) -> &mut Replica {
        &mut self.replica
    }

    pub fn into_replica(self) -> Replica {
        self.replica
    }

    /// The case this device is enrolled in.
    pub fn enrollment(&self) -> Result<Enrollment, DeviceError> {
        Enrollment::load(&self.replica)
    }

    /// Keeps what the server answered to enrollment at `server`. Refused
    /// when the device is already enrolled: a device belongs to one case.
    pub fn record_enrollment(
        &mut self,
        server: &str,
        enrolled: &EnrollResponse,
    ) -> Result<(), DeviceError> {
        let r = &mut self.replica;
        r.set_meta(keys::SERVER, server)?;
        r.set_meta(keys::CASE_ID, &enrolled.case_id)?;
        r.set_meta(keys::CASE_NAME, &enrolled.case_name)?;
        r.set_meta(keys::ROLE, enrolled.role.as_str())?;
        if let Some(salt) = &enrolled.import_salt {
            r.set_meta(keys::IMPORT_SALT, salt)?;
        }
        self.keep_case_timezone(enrolled.case_timezone.as_deref())?;
        Ok(())
    }

    /// The case's time zone as the server last gave it (an IANA name or an
    /// offset, unchecked: the importer parses it), or `None`.
    pub fn case_timezone(&self) -> Result<Option<String>, DeviceError> {
        Ok(self
            .replica
            .meta(keys::CASE_TIMEZONE)?
            .filter(|z| !z.is_empty()))
    }

    /// Keeps the zone a server answer carried; `None` clears it (the
    /// operator removed it, or the server predates case zones).
    fn keep_case_timezone(&mut self, zone: Option<&str>) -> Result<(), DeviceError> {
        if self.case_timezone()?.as_deref() != zone {
            self.replica
                .set_meta(keys::CASE_TIMEZONE, zone.unwrap_or(""))?;
        }
        Ok(())
    }

    /// Refuses when this device is enrolled already.
    pub fn check_not_enrolled(&self) -> Result<(), DeviceError> {
        match self.replica.meta(keys::CASE_NAME)? {
            Some(case) => Err(DeviceError::AlreadyEnrolled(case)),
            None => Ok(()),
        }
    }

    /// The clock offset the device home learned from its server.
    pub fn clock_offset(&self) -> Result<i64, DeviceError> {
        clock_offset(&self.replica)
    }

    /// Keeps `offset` (what the transport signs with now) in the device
    /// home; returns it when it changed. The times a user records are
    /// never changed by it; only request signatures use it.
    pub fn keep_clock_offset(&mut self, offset: i64) -> Result<Option<i64>, DeviceError> {
        if offset == self.clock_offset()? {
            return Ok(None);
        }
        self.replica
            .set_meta(keys::CLOCK_OFFSET, &offset.to_string())?;
        Ok(Some(offset))
    }

    /// The case's import salt, which the server gives coordinators'
    /// devices at enrollment and on every sync.
    pub fn import_salt(&self) -> Result<String, DeviceError> {
        self.replica
            .meta(keys::IMPORT_SALT)?
            .filter(|s| !s.is_empty())
            .ok_or(DeviceError::NoImportSalt)
    }

    /// A full sync: the changes, in bounded rounds; then the attachment
    /// outbox (the server accepts a blob only once it holds the report
    /// that references it); then, on a coordinator's device, the case's
    /// device list and import salt. The clock offset the transport learns
    /// on the way is kept, and the case's time zone the answers carry.
    pub fn sync_all(
        &mut self,
        t: &impl Transport,
        max_request_bytes: usize,
        progress: &dyn OutboxProgress,
        on_event: &mut dyn FnMut(SyncEvent<'_>),
    ) -> Result<SyncAll, DeviceError> {
        let enrollment = self.enrollment()?;
        let pending = self.replica.pending_change_count()?;
        // The last answer's case time zone: an operator may set or change
        // it at any time (`admin case timezone`).
        let mut zone = None;
        // CBOR until a server from before it refuses it; then JSON for the
        // rest of this sync.
        let mut encoding = WireEncoding::Cbor;
        let result = self.replica.sync(
            max_request_bytes,
            |request| {
                let answer = calls::sync_round(t, request, &mut encoding);
                if let Ok(response) = &answer {
                    zone = Some(response.case_timezone.clone());
                }
                answer
            },
            |round| on_event(SyncEvent::Round(round)),
        );
        self.keep_offset(t, on_event)?;
        if let Some(zone) = zone {
            self.keep_case_timezone(zone.as_deref())?;
        }
        let changes = match result {
            Ok(summary) => summary,
            Err(failure) => {
                let left = self.replica.pending_change_count().unwrap_or(pending);
                return Err(DeviceError::SyncFailed {
                    failure: Box::new(failure),
                    left,
                });
            }
        };
        let uploads = self.upload_outbox(t, progress)?;
        self.keep_offset(t, on_event)?;
        if enrollment.role == DeviceRole::Coordinator {
            // Kept for checking bundles offline; a failure here loses nothing.
            match calls::roster(t) {
                Ok(roster) => self.replica.set_roster(&roster)?,
                Err(e) => on_event(SyncEvent::RosterFailed(e)),
            }
            // A device enrolled before cases had an import salt gets it here.
            match calls::case_info(t) {
                Ok(case) if case.case_id == enrollment.case_id.as_str() => self
                    .replica
                    .set_meta(keys::IMPORT_SALT, &case.import_salt)?,
                Ok(_) => on_event(SyncEvent::OtherCaseInfo),
                Err(e) => on_event(SyncEvent::SaltFailed(e)),
            }
        }
        Ok(SyncAll { changes, uploads })
    }

    /// Uploads every attachment waiting in the outbox (see
    /// [`upload_outbox::upload_outbox`]).
    pub fn upload_outbox(
        &mut self,
        t: &impl Transport,
        progress: &dyn OutboxProgress,
    ) -> Result<UploadSummary, ReplicaError> {
        upload_outbox::upload_outbox(&mut self.replica, t, progress)
    }

    fn keep_offset(
        &mut self,
        t: &impl Transport,
        on_event: &mut dyn FnMut(SyncEvent<'_>),
    ) -> Result<(), DeviceError> {
        if let Some(offset) = self.keep_clock_offset(t.clock_offset())? {
            on_event(SyncEvent::ClockOffset(offset));
        }
        Ok(())
    }
}

/// The clock offset kept in `replica` (0 when none).
pub fn clock_offset(replica: &Replica) -> Result<i64, DeviceError> {
    Ok(replica
        .meta(keys::CLOCK_OFFSET)?
        .and_then(|t| t.parse().ok())
        .unwrap_or(0))
}

impl Enrollment {
    /// The enrollment kept in `replica`.
    pub fn load(replica: &Replica) -> Result<Self, DeviceError> {
        let get = |k: &str| -> Result<String, DeviceError> {
            replica.meta(k)?.ok_or(DeviceError::NotEnrolled)
        };
        Ok(Enrollment {
            server: get(keys::SERVER)?,
            case_id: get(keys::CASE_ID)?
                .parse()
                .map_err(|e: crate::ids::IdError| DeviceError::BadEnrollment(e.to_string()))?,
            case_name: get(keys::CASE_NAME)?,
            role: get(keys::ROLE)?
                .parse()
                .map_err(DeviceError::BadEnrollment)?,
        })
    }

    /// Refuses a command naming another case than this device's.
    pub fn check_case(&self, name: &str) -> Result<(), DeviceError> {
        if self.case_name != name {
            return Err(DeviceError::OtherCase {
                enrolled: self.case_name.clone(),
                asked: name.to_owned(),
            });
        }
        Ok(())
    }
}
