//! The attacks of the hardening audit (issue 14), each replayed against a
//! real server process: what a hostile reporter, a relayed web session and
//! a reporter's own phone could do, and what the server now does instead.

mod ended_session;
mod feed_scan;
mod freeze;
mod invalid_report;
mod own_reviews;
