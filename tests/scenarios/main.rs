//! fieldsync's scenarios across crates, one module per concern. One test
//! binary, so the workspace links once.

mod offline_sync;
mod replica_crash;
