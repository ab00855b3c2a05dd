//! Issue 14 ("Hardening"): each finding's attack replayed against a real
//! server process, one file per finding.

mod review_page;
