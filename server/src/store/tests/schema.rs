//! Opening a data directory, its permissions, and migrations.

use super::*;

#[test]
fn a_new_data_directory_gets_the_current_schema_and_keeps_its_data_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store = Store::open(&data).unwrap();
    assert!(data.join("blobs").is_dir());
    assert!(data.join(DB_FILE).is_file());
    let case = store.create_case("rally").unwrap();
    {
        let conn = raw(&store);
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let sync: i64 = conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .unwrap();
        assert_eq!(sync, 2, "synchronous=FULL");
        let fk: i64 = conn
            .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
            .unwrap();
        assert_eq!(fk, 1);
    }
    let dump = store.dump().unwrap();
    drop(store);
    let again = Store::open(&data).unwrap();
    assert_eq!(again.dump().unwrap(), dump);
    let found = again.case_by_name("rally").unwrap().unwrap();
    assert_eq!(found.id, case.id);
    assert!(again.case_by_name("other").unwrap().is_none());
}

#[cfg(unix)]
#[test]
fn a_new_data_directory_is_readable_by_the_server_user_only() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store = Store::open(&data).unwrap();
    store.create_case("rally").unwrap();
    let wal = data.join(format!("{DB_FILE}-wal"));
    let shm = data.join(format!("{DB_FILE}-shm"));
    assert!(wal.is_file() && shm.is_file());
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("blobs")), 0o700);
    for file in [data.join(DB_FILE), wal, shm] {
        assert_eq!(mode(&file), 0o600, "{}", file.display());
    }
    assert!(secure_data_dir(&data).unwrap().is_empty());
}

#[cfg(unix)]
#[test]
fn a_data_directory_readable_by_others_is_reported_and_tightened() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    drop(Store::open(&data).unwrap());
    let wide = |path: &Path, m: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(m)).unwrap()
    };
    wide(&data, 0o755);
    wide(&data.join(DB_FILE), 0o644);
    let reported = secure_data_dir(&data).unwrap();
    let seen: Vec<(PathBuf, u32)> = reported.iter().map(|t| (t.path.clone(), t.was)).collect();
    assert_eq!(
        seen,
        vec![(data.clone(), 0o755), (data.join(DB_FILE), 0o644)]
    );
    wide(&data.join("blobs"), 0o777);
    let store = Store::open(&data).unwrap();
    store.create_case("rally").unwrap();
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("blobs")), 0o700);
    assert_eq!(mode(&data.join(DB_FILE)), 0o600);
}

#[test]
fn a_database_from_a_newer_fieldsync_is_refused() {
    let (dir, store) = open();
    drop(store);
    let conn = Connection::open(dir.path().join(DB_FILE)).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    let err = Store::open(dir.path()).err().unwrap();
    assert!(
        matches!(err, StoreError::NewerSchema { found: 99 }),
        "{err:?}"
    );
    assert!(err.to_string().contains("update fieldsync"), "{err}");
}

#[test]
fn a_data_directory_that_cannot_be_created_names_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let err = Store::open(&file.join("data")).err().unwrap();
    assert!(matches!(err, StoreError::Io { .. }), "{err:?}");
    assert!(
        err.to_string().starts_with("cannot create data directory"),
        "{err}"
    );
}

#[test]
fn a_version_3_database_gets_its_tag_index_on_upgrade_and_keeps_it() {
    let (dir, store) = open();
    let case = store.create_case("rally").unwrap();
    let mut reporter = enroll(&store, "rally", DeviceRole::Reporter);
    let tagged = [
        (
            "Arrest at the bus stop",
            "2024-05-01T10:00:00Z",
            vec!["Arrest", "rally"],
        ),
        ("Water cannon", "2024-05-01T09:00:00Z", vec!["arrest"]),
        ("Kettled", "2024-05-01T11:00:00Z", vec![]),
        (
            "Detained again",
            "2024-05-01T10:00:00Z",
            vec!["ARREST", "arrest "],
        ),
    ];
    let mut ids = Vec::new();
    for (title, at, tags) in &tagged {
        let mut new = new_report(&case.id, title, at);
        new.tags = tags.iter().map(|t| t.to_string()).collect();
        ids.push(reporter.replica.create_report(&new).unwrap());
    }
    sync(&store, &mut reporter);
    let before = tag_pages(&store, &case.id, "arrest", 1);
    assert_eq!(before.len(), 3);
    assert_eq!(before[0], "Water cannon");
    // What schema 3 had: the timeline without its tag index (and
    // changes without the feed columns of schema 5, cases without the
    // import salt of schema 6, no case public keys of schema 7, cases
    // without the time zone of schema 8).
    raw(&store)
        .execute_batch(
            "DROP TRIGGER timeline_tags_insert;
             DROP TRIGGER timeline_tags_update;
             DROP TRIGGER timeline_tags_delete;
             DROP TABLE timeline_tags;
             DROP INDEX changes_creator_feed;
             ALTER TABLE changes DROP COLUMN actor_device;
             ALTER TABLE changes DROP COLUMN doc_creator;
             ALTER TABLE cases DROP COLUMN import_salt;
             DROP TABLE case_public_keys;
             ALTER TABLE cases DROP COLUMN timezone;
             PRAGMA user_version = 3;",
        )
        .unwrap();
    drop(store);

    let store = Store::open(dir.path()).unwrap();
    let conn = raw(&store);
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    assert!(
        store.import_salt(&case.id).is_ok(),
        "schema 6 gave the case a salt"
    );
    let entries: i64 = conn
        .query_row("SELECT count(*) FROM timeline_tags", [], |r| r.get(0))
        .unwrap();
    assert_eq!(entries, 4, "arrest three times, rally once");
    drop(conn);
    assert_eq!(tag_pages(&store, &case.id, "ARREST", 1), before);
    assert_eq!(tag_pages(&store, &case.id, "arrest", 100), before);
    assert_eq!(
        tag_pages(&store, &case.id, "rally", 2),
        ["Arrest at the bus stop"]
    );

    // Later rounds keep the entries: a tag removed, one added, a time moved.
    reporter
        .replica
        .edit_report(&ids[0], &[Edit::RemoveTag("Arrest".into())])
        .unwrap();
    reporter
        .replica
        .edit_report(&ids[2], &[Edit::AddTag("Arrest".into())])
        .unwrap();
    reporter
        .replica
        .edit_report(
            &ids[1],
            &[Edit::SetOccurredAt {
                at: t("2024-05-01T12:00:00Z"),
                approximate: false,
            }],
        )
        .unwrap();
    sync(&store, &mut reporter);
    assert_eq!(
        tag_pages(&store, &case.id, "arrest", 1),
        ["Detained again", "Kettled", "Water cannon"]
    );
}

/// The pool's saturation as the operators' metrics read it.
#[test]
fn the_pool_status_counts_connections_lent_out() {
    let (_dir, store) = open();
    let idle = store.pool_status();
    assert_eq!(idle.in_use, 0, "{idle:?}");
    assert_eq!(idle.max, 16, "{idle:?}");
    let held = raw(&store);
    let busy = store.pool_status();
    assert_eq!(busy.in_use, 1, "{busy:?}");
    assert_eq!(busy.idle + busy.in_use, idle.idle.max(1), "{busy:?}");
    drop(held);
    assert_eq!(store.pool_status().in_use, 0);
}
