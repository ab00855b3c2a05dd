//! fieldsync-server: the HTTP API (actix-web), the SQLite server store and
//! the attachment blob store.
//!
//! It runs the core's sync algorithm behind an endpoint and must never hold
//! a case key or an attachment's plaintext, never acknowledge a change
//! before it is durably committed, and never send storage error text to a
//! client.
