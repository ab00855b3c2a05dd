//! The device application: what any client of fieldsync does beyond
//! keeping a replica. The enrollment a device home keeps, the order of a
//! full sync, resumable attachment transfers and the ids imports give
//! their reports live here, so the CLI, the test support and a phone app
//! embedding the core share one copy.
//!
//! This module never speaks HTTP: every call to the server goes through a
//! [`Transport`] the client supplies, which signs and carries requests.
//! It never prints either; what happened comes back as values and events.

mod calls;
mod download;
mod enrollment;
mod import_ids;
pub mod meta_keys;
mod transfer;
mod transport;
mod upload_outbox;

pub use calls::{case_info, case_keys, enroll, invite, publish_case_key, roster, sync_round};
pub use download::Download;
pub use enrollment::{clock_offset, Device, DeviceError, Enrollment, SyncAll, SyncEvent};
pub use import_ids::ImportIds;
pub use transfer::{upload, Progress, TransferError, UploadEvent};
pub use transport::{Body, Request, Response, Transport, TransportError};
pub use upload_outbox::{FailedUpload, OutboxProgress, UploadSummary};
#[cfg(test)]
mod download_tests;
#[cfg(test)]
mod encoding_tests;
#[cfg(test)]
mod tests;
