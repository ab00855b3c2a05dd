//! The sync algorithm, for both sides, as plain functions over data.
//!
//! - [`server`]: given a request and a [`server::ServerStore`], apply what the
//!   device brought and answer with what it lacks.
//! - [`device`]: build a bounded request from pending changes; absorb a
//!   response into a document.
//! - [`policy`]: who may read and write what.
//! - [`memory`]: an in-memory server store, the reference for tests.
//! - [`apply`]: Automerge's apply of changes from outside, its panics
//!   turned into errors.

mod admission;
pub mod apply;
pub mod device;
pub mod memory;
pub mod policy;
pub mod server;
mod store;

#[cfg(test)]
pub(crate) mod tests;
