//! The ids imports give their reports. Imports repeat safely: a report's
//! id derives from the case's import salt, the case, the file's name and
//! the report's key inside the file, so importing again changes nothing
//! and a corrected file updates the reports it made. The salt is a secret
//! the server gives coordinators' devices only: without it a reporter, who
//! can know the case, the file's name and its rows, could compute an id an
//! import will use and create a report under it first, blocking the import.

use super::enrollment::{Device, DeviceError, Enrollment};
use crate::import::ImportedReport;
use crate::ReportId;

/// The id scheme for one imported file.
pub struct ImportIds {
    salt: String,
    case: String,
    file_name: String,
    /// The file was imported before ids were salted: it keeps its ids.
    unsalted: bool,
}

impl ImportIds {
    /// The scheme for the file `file_name` whose reports are `reports`, on
    /// `device` enrolled as `enrollment`.
    pub fn for_file(
        device: &Device,
        enrollment: &Enrollment,
        file_name: &str,
        reports: &[ImportedReport],
    ) -> Result<Self, DeviceError> {
        let mut ids = Self {
            salt: device.import_salt()?,
            case: enrollment.case_id.as_str().to_owned(),
            file_name: file_name.to_owned(),
            unsalted: false,
        };
        ids.unsalted = ids.imported_unsalted(device, reports)?;
        Ok(ids)
    }

    /// The id of `imported`.
    pub fn id(&self, imported: &ImportedReport) -> ReportId {
        if self.unsalted {
            return self.unsalted_id(imported);
        }
        ReportId::derived_from(&[
            b"import v2",
            self.salt.as_bytes(),
            self.case.as_bytes(),
            self.file_name.as_bytes(),
            imported.source_key.as_bytes(),
        ])
    }

    /// The id an import made before ids were salted.
    fn unsalted_id(&self, imported: &ImportedReport) -> ReportId {
        ReportId::derived_from(&[
            b"import v1",
            self.case.as_bytes(),
            self.file_name.as_bytes(),
            imported.source_key.as_bytes(),
        ])
    }

    /// Whether this device imported this file before ids were salted: one
    /// of its first rows is a report this device created under the
    /// unsalted id. Such a file keeps its ids, so importing it again still
    /// changes nothing and a corrected file still updates its reports. A
    /// reporter cannot fake this: the server takes a report only with its
    /// author as creator.
    fn imported_unsalted(
        &self,
        device: &Device,
        reports: &[ImportedReport],
    ) -> Result<bool, DeviceError> {
        let replica = device.replica();
        let Some(me) = replica.device_key()?.map(|k| k.device_id().to_string()) else {
            return Ok(false);
        };
        Ok(reports.iter().take(8).any(|imported| {
            replica
                .report(&self.unsalted_id(imported))
                .is_ok_and(|report| report.created_by == me)
        }))
    }
}
