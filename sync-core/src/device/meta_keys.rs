//! Where the device home keeps its enrollment and what it learned from the
//! server. The names are the device home's on-disk format: homes made by
//! any earlier fieldsync open unchanged.

pub const SERVER: &str = "server";
pub const CASE_ID: &str = "case_id";
pub const CASE_NAME: &str = "case_name";
pub const ROLE: &str = "role";
/// The case's import salt (coordinators' devices only).
pub const IMPORT_SALT: &str = "import_salt";
/// Seconds the device's clock is off the server's, learned from a
/// server that refused a request for its time.
pub const CLOCK_OFFSET: &str = "clock_offset_secs";
/// The case's time zone as the server last gave it (empty: none), for
/// imports of times written without an offset.
pub const CASE_TIMEZONE: &str = "case_timezone";
