//! Which store the scenarios' servers use. By default SQLite in the data
//! directory. With `FIELDSYNC_TEST_STORE=postgres` (the `./test` script
//! sets it for the scenarios it runs a second time), every data directory
//! a server or an `admin` command is given gets a fresh database of its
//! own on the PostgreSQL server `FIELDSYNC_TEST_POSTGRES` names (started by
//! `tests/services/postgres.sh`), and both are pointed at it: the same
//! scenarios, on the other store.

use std::path::Path;

/// The environment variable naming the PostgreSQL server to test against
/// (a URL ending in a database the tests may create databases from).
pub const POSTGRES_ENV: &str = "FIELDSYNC_TEST_POSTGRES";

/// The environment variable that puts the scenarios on PostgreSQL.
pub const STORE_ENV: &str = "FIELDSYNC_TEST_STORE";

/// The file in a data directory that names its test database: with the
/// SQLite files, what a copy of "the database" must take along.
pub const DATABASE_FILE: &str = "test-database-url";

/// Whether the scenarios run on PostgreSQL.
pub fn on_postgres() -> bool {
    std::env::var(STORE_ENV).is_ok_and(|s| s == "postgres")
}

/// The PostgreSQL server the tests use; a test that needs one fails with
/// what to run when there is none.
pub fn postgres_server() -> String {
    std::env::var(POSTGRES_ENV).unwrap_or_else(|_| {
        panic!(
            "this test needs PostgreSQL: run `./test`, which starts one, or \
             `eval \"$(tests/services/postgres.sh start)\"` first to set {POSTGRES_ENV}"
        )
    })
}

/// The database URL for the server of `data`, made on first use; `None`
/// on SQLite.
pub fn database_for(data: &Path) -> Option<String> {
    if !on_postgres() {
        return None;
    }
    let server = postgres_server();
    let file = data.join(DATABASE_FILE);
    if let Ok(url) = std::fs::read_to_string(&file) {
        return Some(url);
    }
    let url = fresh_database(&server);
    std::fs::create_dir_all(data).expect("create the data directory");
    std::fs::write(&file, &url).expect("record the test database");
    Some(url)
}

/// The database URL already made for `data`, if any: for an `admin`
/// command given that data directory.
pub fn known_database(data: &Path) -> Option<String> {
    database_for(data)
}

/// Creates an empty database on `server` (a URL ending in a database
/// name) and returns its URL.
pub fn fresh_database(server: &str) -> String {
    let name = format!("fs_{:016x}", crate::Rng::from_env_or_random().next_u64());
    let mut client =
        postgres::Client::connect(server, postgres::NoTls).expect("connect to the test PostgreSQL");
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .expect("create a test database");
    let base = server
        .rsplit_once('/')
        .map(|(base, _)| base)
        .expect("a PostgreSQL URL ending in /DATABASE");
    format!("{base}/{name}")
}

/// The store of the server of `data`, opened beside it, whichever it is.
pub enum TestStore {
    Sqlite(fieldsync_server::Store),
    Postgres(fieldsync_server::PgStore),
}

impl TestStore {
    pub fn open(data: &Path) -> TestStore {
        match database_for(data) {
            Some(url) => TestStore::Postgres(
                fieldsync_server::PgStore::open(&url).expect("open the test database"),
            ),
            None => TestStore::Sqlite(fieldsync_server::Store::open(data).expect("open the store")),
        }
    }

    /// Every table but nonces and the audit log, as text: equal exactly
    /// when the stored state is.
    pub fn dump(&self) -> String {
        match self {
            TestStore::Sqlite(store) => store.dump(),
            TestStore::Postgres(store) => store.dump(),
        }
        .expect("dump the store")
    }

    /// The audit log, oldest first: (at, event, device, detail).
    pub fn audit_log(&self) -> Vec<fieldsync_server::store::AuditEntry> {
        match self {
            TestStore::Sqlite(store) => store.audit_log(),
            TestStore::Postgres(store) => store.audit_log(),
        }
        .expect("read the audit log")
    }
}

/// The events of the audit log of the server of `data`, oldest first.
pub fn audit_events(data: &Path) -> Vec<String> {
    TestStore::open(data)
        .audit_log()
        .into_iter()
        .map(|(_, event, _, _)| event)
        .collect()
}

/// `n` server processes on one fresh database and one prefix of the test
/// bucket, each with a data directory of its own (dropped with them).
/// Needs `FIELDSYNC_TEST_STORE=postgres` and an S3 server.
pub fn processes_on_one_database(n: usize) -> (Vec<tempfile::TempDir>, Vec<crate::ServerProcess>) {
    let url = fresh_database(&postgres_server());
    let prefix = crate::blobs::fresh_prefix();
    let dirs: Vec<tempfile::TempDir> = (0..n).map(|_| tempfile::tempdir().unwrap()).collect();
    let servers = dirs
        .iter()
        .map(|dir| {
            // Each process's data directory names the one database.
            std::fs::write(dir.path().join(DATABASE_FILE), &url).unwrap();
            crate::ServerProcess::start_with_prefix(
                dir.path(),
                "127.0.0.1:0",
                &[],
                Some(prefix.clone()),
            )
        })
        .collect();
    (dirs, servers)
}
