//! Issue 14's attacks, replayed against real server processes: one module
//! per finding.

mod blob_capability;
mod clock_correction;
mod import_salt;
mod report_ids;
mod unauthenticated_audit;
