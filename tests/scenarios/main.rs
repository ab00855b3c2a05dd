//! fieldsync's scenarios across crates, one module per concern. One test
//! binary, so the workspace links once.

mod attachments;
mod blob_api;
mod bundles;
mod case_timezone;
mod chaos;
mod cli_output;
mod clock_skew;
mod device_fixes;
mod disk_full;
mod export;
mod fuzz_corpus;
mod hardening;
mod hostile_requests;
mod import;
mod metrics;
mod migrate;
mod node_units;
mod offline_sync;
mod phone_app;
mod replica_crash;
mod server_crash;
mod server_memory;
mod several_processes;
mod web_api;
mod web_review;
mod wire_encodings;
