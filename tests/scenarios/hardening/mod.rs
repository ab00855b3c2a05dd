//! The attacks of the hardening audit (issue 14), each replayed against a
//! real server process, one file per finding: what a hostile reporter, a
//! relayed web session, a compromised server and a seized phone could do,
//! and what happens now instead.

mod blob_capability;
mod clock_correction;
mod ended_session;
mod feed_scan;
mod freeze;
mod import_salt;
mod invalid_report;
mod keys;
mod own_reviews;
mod passphrase;
mod report_ids;
mod review_page;
mod unauthenticated_audit;
