//! Issue 14 ("Hardening"): each finding's attack replayed against real
//! server processes, one file per finding.

mod keys;
