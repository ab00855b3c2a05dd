//! The replica as what an export reads: the export knows nothing of
//! SQLite, only [`ExportSource`].

use automerge::{AutoCommit, ChangeHash};

use super::{Replica, ReplicaError};
use crate::document::ViewError;
use crate::export::ExportSource;
use crate::ids::ReportId;
use crate::model::Report;

impl ExportSource for Replica {
    type Error = ReplicaError;

    fn report_ids(&self) -> Result<Vec<ReportId>, ReplicaError> {
        Replica::report_ids(self)
    }

    fn read_report(&self, id: &ReportId) -> Result<Result<Report, ViewError>, ReplicaError> {
        match self.report(id) {
            Ok(report) => Ok(Ok(report)),
            Err(ReplicaError::View(e)) => Ok(Err(e)),
            Err(e) => Err(e),
        }
    }

    fn report_document(&self, id: &ReportId) -> Result<AutoCommit, ReplicaError> {
        self.document(id)
    }

    fn change_signature(
        &self,
        id: &ReportId,
        hash: &ChangeHash,
    ) -> Result<Option<Vec<u8>>, ReplicaError> {
        self.signature(id, hash)
    }
}
