//! The PostgreSQL store against a real server (`FIELDSYNC_TEST_POSTGRES`,
//! which `./test` starts): what several processes on one database must
//! keep true. Each test makes a database of its own.

use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use fieldsync_core::document::NewReport;
use fieldsync_core::model::{DeviceRole, Edit};
use fieldsync_core::protocol::{SyncRequest, DEFAULT_MAX_REQUEST_BYTES};
use fieldsync_core::replica::Replica;
use fieldsync_core::sync::server::{verify_request, ServerLimits, SyncError};
use fieldsync_core::{CaseId, ReportId};

use super::PgStore;
use crate::store::{DeviceRecord, SyncStoreError};

/// A new, empty database on the test server.
fn fresh_database() -> String {
    let server = std::env::var("FIELDSYNC_TEST_POSTGRES").unwrap_or_else(|_| {
        panic!(
            "the PostgreSQL store's tests need a server: run `./test`, or \
             `eval \"$(tests/services/postgres.sh start)\"` first"
        )
    });
    let name = format!(
        "fs_unit_{}",
        hex::encode(ReportId::random().unwrap().as_str())
    );
    let mut client = postgres::Client::connect(&server, postgres::NoTls).unwrap();
    client
        .batch_execute(&format!("CREATE DATABASE {}", &name[..40]))
        .unwrap();
    let (base, _) = server.rsplit_once('/').unwrap();
    format!("{base}/{}", &name[..40])
}

struct Device {
    replica: Replica,
    record: DeviceRecord,
}

fn enroll(store: &PgStore, case: &str, role: DeviceRole) -> Device {
    let mut replica = Replica::open_in_memory().unwrap();
    replica.init_identity().unwrap();
    let key = replica.device_key().unwrap().unwrap().public_key();
    let token = store
        .create_invite(case, role, Duration::from_secs(3600))
        .unwrap();
    let record = store.enroll(&token, &key).unwrap();
    Device { replica, record }
}

fn record(device: &mut Device, case: &CaseId, title: &str) -> ReportId {
    let report = NewReport::new(
        ReportId::random().unwrap(),
        case.clone(),
        title,
        chrono::DateTime::parse_from_rfc3339("2024-05-01T10:00:00Z").unwrap(),
    );
    device.replica.create_report(&report).unwrap()
}

fn sync(store: &PgStore, device: &mut Device) {
    let record = device.record.clone();
    device
        .replica
        .sync(
            DEFAULT_MAX_REQUEST_BYTES,
            |req| {
                let req = SyncRequest::from_json(&req.to_json()).unwrap();
                let verified =
                    verify_request(req).map_err(|e| SyncStoreError::Sync(SyncError::from(e)))?;
                store
                    .sync_verified(&record, verified, ServerLimits::default(), None)
                    .map(|round| round.response)
            },
            |_| {},
        )
        .unwrap();
}

fn titles(device: &Device) -> Vec<String> {
    let mut titles: Vec<String> = device
        .replica
        .report_ids()
        .unwrap()
        .iter()
        .map(|id| device.replica.report(id).unwrap().title)
        .collect();
    titles.sort();
    titles
}

#[test]
fn a_feed_reader_never_skips_a_change_committed_late() {
    let url = fresh_database();
    // Three processes' pools on one database. The first holds its round's
    // commit open, after its changes took their sequence numbers.
    let (held_tx, held) = mpsc::channel::<()>();
    let (release, release_rx) = mpsc::channel::<()>();
    let release_rx = std::sync::Mutex::new(release_rx);
    let mut first = PgStore::open(&url).unwrap();
    first.before_commit = Some(Arc::new(move || {
        held_tx.send(()).unwrap();
        release_rx.lock().unwrap().recv().unwrap();
    }));
    let second = PgStore::open(&url).unwrap();
    let reader = PgStore::open(&url).unwrap();
    let case = second.create_case_in_zone("rally", None).unwrap();
    let mut early = enroll(&second, "rally", DeviceRole::Reporter);
    let mut late = enroll(&second, "rally", DeviceRole::Reporter);
    let mut coordinator = enroll(&second, "rally", DeviceRole::Coordinator);
    record(&mut early, &case.id, "numbered first, committed last");
    record(&mut late, &case.id, "numbered second");

    let held_round = std::thread::spawn(move || sync(&first, &mut early));
    held.recv().unwrap();
    let other_round = std::thread::spawn(move || sync(&second, &mut late));
    // Time for the second round to commit, if anything let it.
    std::thread::sleep(Duration::from_millis(500));
    sync(&reader, &mut coordinator);
    let seen_while_held = titles(&coordinator);
    release.send(()).unwrap();
    held_round.join().unwrap();
    other_round.join().unwrap();
    sync(&reader, &mut coordinator);

    assert!(
        seen_while_held.is_empty(),
        "a reader saw {seen_while_held:?} past a change not yet committed"
    );
    assert_eq!(
        titles(&coordinator),
        ["numbered first, committed last", "numbered second"]
    );
}

#[test]
fn a_nonce_is_refused_by_every_process_once_one_has_seen_it() {
    let url = fresh_database();
    let one = PgStore::open(&url).unwrap();
    let two = PgStore::open(&url).unwrap();
    one.create_case_in_zone("rally", None).unwrap();
    let device = enroll(&one, "rally", DeviceRole::Reporter);
    let now = chrono::Utc::now().timestamp();
    let id = &device.record.device_id;
    assert!(one.use_nonce(id, "n-1", now, 300).unwrap());
    assert!(!two.use_nonce(id, "n-1", now, 300).unwrap());
    assert!(!one.use_nonce(id, "n-1", now, 300).unwrap());
    assert!(two.use_nonce(id, "n-2", now, 300).unwrap());
}

#[test]
fn one_invite_enrolls_one_device_when_two_processes_race() {
    let url = fresh_database();
    let stores: Vec<PgStore> = (0..4).map(|_| PgStore::open(&url).unwrap()).collect();
    stores[0].create_case_in_zone("rally", None).unwrap();
    let token = stores[0]
        .create_invite("rally", DeviceRole::Reporter, Duration::from_secs(3600))
        .unwrap();
    let enrolled: Vec<bool> = std::thread::scope(|s| {
        let tries: Vec<_> = stores
            .iter()
            .map(|store| {
                let token = token.clone();
                s.spawn(move || {
                    let mut replica = Replica::open_in_memory().unwrap();
                    replica.init_identity().unwrap();
                    let key = replica.device_key().unwrap().unwrap().public_key();
                    store.enroll(&token, &key).is_ok()
                })
            })
            .collect();
        tries.into_iter().map(|t| t.join().unwrap()).collect()
    });
    assert_eq!(enrolled.iter().filter(|ok| **ok).count(), 1, "{enrolled:?}");
    assert_eq!(stores[0].devices(Some("rally")).unwrap().len(), 1);
}

#[test]
fn a_refused_round_leaves_the_database_as_it_was_and_an_accepted_one_does_not() {
    let url = fresh_database();
    let store = PgStore::open(&url).unwrap();
    let case = store.create_case_in_zone("rally", None).unwrap();
    let mut reporter = enroll(&store, "rally", DeviceRole::Reporter);
    record(&mut reporter, &case.id, "one");
    let mut plan = reporter
        .replica
        .prepare_sync(DEFAULT_MAX_REQUEST_BYTES)
        .unwrap();
    plan.request.docs[0].changes[0].signature[0] ^= 1;
    let before = store.dump().unwrap();
    assert!(verify_request(plan.request).is_err());
    assert_eq!(store.dump().unwrap(), before);

    sync(&store, &mut reporter);
    let after = store.dump().unwrap();
    assert_ne!(after, before);
    assert!(after.contains("\"title\":\"one\""), "{after}");
}

/// What Citus requires of a schema distributed as `citus.sql` says, read
/// from the catalog of a database this build migrated: every table is
/// either a reference table or distributed by `case_id`; a distributed
/// table's `case_id` is never NULL and is part of each of its primary and
/// unique keys; a foreign key between two distributed tables joins on
/// `case_id`; and no reference table points at a distributed one.
#[test]
fn the_schema_is_distributable_by_case_as_citus_sql_says() {
    let url = fresh_database();
    drop(PgStore::open(&url).unwrap());
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let plan = include_str!("../../../migrations/postgres/citus.sql");
    let named = |prefix: &str| -> Vec<String> {
        plan.lines()
            .filter_map(|l| l.strip_prefix(prefix))
            .map(|rest| rest.split('\'').next().unwrap().to_owned())
            .collect()
    };
    let reference = named("SELECT create_reference_table('");
    let distributed = named("SELECT create_distributed_table('");
    assert!(plan
        .lines()
        .filter(|l| l.starts_with("SELECT create_distributed_table("))
        .all(|l| l.contains("'case_id'")));

    let mut tables: Vec<String> = client
        .query(
            "SELECT table_name::text FROM information_schema.tables
             WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    tables.sort();
    let mut planned: Vec<String> = reference.iter().chain(&distributed).cloned().collect();
    planned.sort();
    assert_eq!(tables, planned, "citus.sql must name every table once");

    let mut broken = Vec::new();
    for table in &distributed {
        let nullable: String = client
            .query_one(
                "SELECT is_nullable::text FROM information_schema.columns
                 WHERE table_schema = 'public' AND table_name = $1 AND column_name = 'case_id'",
                &[table],
            )
            .unwrap()
            .get(0);
        if nullable != "NO" {
            broken.push(format!("{table}.case_id may be NULL"));
        }
    }
    // Each constraint with its table, the table it references, and whether
    // `case_id` is among its own columns and among the referenced ones.
    let constraints = client
        .query(
            "SELECT c.conname::text, c.contype::text, t.relname::text,
                    COALESCE(r.relname::text, ''),
                    EXISTS (SELECT 1 FROM pg_attribute a
                            WHERE a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey)
                              AND a.attname = 'case_id'),
                    EXISTS (SELECT 1 FROM pg_attribute a
                            WHERE a.attrelid = c.confrelid AND a.attnum = ANY (c.confkey)
                              AND a.attname = 'case_id')
             FROM pg_constraint c
             JOIN pg_class t ON t.oid = c.conrelid
             JOIN pg_namespace n ON n.oid = t.relnamespace AND n.nspname = 'public'
             LEFT JOIN pg_class r ON r.oid = c.confrelid
             WHERE c.contype IN ('p', 'u', 'f')",
            &[],
        )
        .unwrap();
    assert!(constraints.len() > 20, "the catalog query found too little");
    for row in &constraints {
        let (name, kind, table, target): (String, String, String, String) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        let (own_case, target_case): (bool, bool) = (row.get(4), row.get(5));
        let is_distributed = |t: &str| distributed.iter().any(|d| d == t);
        match kind.as_str() {
            "p" | "u" if is_distributed(&table) && !own_case => {
                broken.push(format!("{table}: key {name} lacks case_id"));
            }
            "f" if is_distributed(&table)
                && is_distributed(&target)
                && !(own_case && target_case) =>
            {
                broken.push(format!(
                    "{table}: foreign key {name} to {target} does not join on case_id"
                ));
            }
            "f" if !is_distributed(&table) && is_distributed(&target) => {
                broken.push(format!(
                    "reference table {table} points at distributed {target} ({name})"
                ));
            }
            _ => {}
        }
    }
    assert!(broken.is_empty(), "not distributable by case: {broken:#?}");
}

/// A database a build of schema 1 wrote moves to schema 2 when a newer
/// process opens it: its rows stay, the report ids it holds are taken for
/// their cases, an audit row of no case gets the empty case id, and the
/// next round numbers its changes after the case's last.
#[test]
fn a_schema_one_database_is_upgraded_in_place_and_its_feed_continues() {
    let url = fresh_database();
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    client
        .batch_execute(include_str!("../../../migrations/postgres/001_initial.sql"))
        .unwrap();
    let old_report = ReportId::random().unwrap();
    let old_case = CaseId::random().unwrap();
    client
        .execute(
            "INSERT INTO cases (id, name, created_at) VALUES ($1, 'archive', '2026-01-01T00:00:00.000000Z')",
            &[&old_case.as_str()],
        )
        .unwrap();
    client
        .execute(
            "INSERT INTO documents (id, case_id, creator, snapshot, heads, last_seq)
             VALUES ($1, $2, 'old-device', '\\x00', '', 41)",
            &[&old_report.as_str(), &old_case.as_str()],
        )
        .unwrap();
    client
        .execute(
            "INSERT INTO changes (seq, case_id, doc_id, hash, bytes, author_device, signature,
                                  received_at, actor_device, doc_creator)
             VALUES (41, $1, $2, 'h', '\\x00', 'old-device', '\\x00', 't', 'old-device', 'old-device')",
            &[&old_case.as_str(), &old_report.as_str()],
        )
        .unwrap();
    client
        .batch_execute(
            "INSERT INTO audit_log (case_id, at, event, detail) VALUES (NULL, 't', 'refused', '');
             CREATE TABLE fieldsync_schema (version BIGINT NOT NULL);
             INSERT INTO fieldsync_schema (version) VALUES (1);",
        )
        .unwrap();

    let store = PgStore::open(&url).unwrap();
    let version: i64 = client
        .query_one("SELECT version FROM fieldsync_schema", &[])
        .unwrap()
        .get(0);
    assert_eq!(version, super::schema::PG_SCHEMA_VERSION);
    let owner: String = client
        .query_one(
            "SELECT case_id FROM report_ids WHERE id = $1",
            &[&old_report.as_str()],
        )
        .unwrap()
        .get(0);
    assert_eq!(owner, old_case.as_str());
    let unfiled: i64 = client
        .query_one("SELECT count(*) FROM audit_log WHERE case_id = ''", &[])
        .unwrap()
        .get(0);
    assert_eq!(unfiled, 1);

    let mut reporter = enroll(&store, "archive", DeviceRole::Reporter);
    record(&mut reporter, &old_case, "recorded after the upgrade");
    sync(&store, &mut reporter);
    let seqs: Vec<i64> = client
        .query(
            "SELECT seq FROM changes WHERE case_id = $1 ORDER BY seq",
            &[&old_case.as_str()],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(seqs[0], 41);
    assert!(seqs.len() > 1, "the new report's changes were not stored");
    assert_eq!(
        seqs[1..],
        (42..42 + seqs.len() as i64 - 1).collect::<Vec<_>>()[..],
        "the feed continues after the case's last number"
    );
}

/// A round planned (outside the lock) before another process wrote the
/// report it plans to write finds its plan stale under the lock and is
/// applied again there: neither process's edit is lost.
#[test]
fn a_round_planned_before_another_process_wrote_its_report_is_applied_again() {
    let url = fresh_database();
    let mut planner = PgStore::open(&url).unwrap();
    let other = Arc::new(PgStore::open(&url).unwrap());
    let case = other.create_case_in_zone("rally", None).unwrap();
    let mut reporter = enroll(&other, "rally", DeviceRole::Reporter);
    let mut coordinator = enroll(&other, "rally", DeviceRole::Coordinator);
    let id = record(&mut reporter, &case.id, "Detained");
    sync(&other, &mut reporter);
    sync(&other, &mut coordinator);

    reporter
        .replica
        .edit_report(&id, &[Edit::AppendDescription("Two officers.".into())])
        .unwrap();
    coordinator
        .replica
        .edit_report(&id, &[Edit::AddTag("arrest".into())])
        .unwrap();
    // Between the reporter's plan and its lock, the coordinator's edit of
    // the same report lands through the other process.
    let coordinator = Arc::new(std::sync::Mutex::new(Some(coordinator)));
    let (hook_store, hook_device) = (other.clone(), coordinator.clone());
    planner.before_lock = Some(Arc::new(move || {
        if let Some(mut device) = hook_device.lock().unwrap().take() {
            sync(&hook_store, &mut device);
        }
    }));
    sync(&planner, &mut reporter);
    assert!(coordinator.lock().unwrap().is_none(), "the hook ran");

    let report = reporter.replica.report(&id).unwrap();
    assert_eq!(report.description, "Two officers.");
    assert!(report.tags.contains("arrest"), "{:?}", report.tags);
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let row = client
        .query_one(
            "SELECT snapshot, (SELECT tags FROM timeline WHERE report_id = $1),
                    (SELECT count(*) FROM changes WHERE doc_id = $1)
             FROM documents WHERE id = $1",
            &[&id.as_str()],
        )
        .unwrap();
    let stored = automerge::Automerge::load(&row.get::<_, Vec<u8>>(0)).unwrap();
    let stored = fieldsync_core::document::read_report(&stored).unwrap();
    assert_eq!(stored.description, "Two officers.");
    assert!(stored.tags.contains("arrest"));
    assert!(row.get::<_, String>(1).contains("arrest"));
    assert_eq!(
        row.get::<_, i64>(2),
        3,
        "the creation and both edits, once each"
    );
}

/// A round of several reports is written in one statement per table: each
/// report's changes are numbered in order after the case's last, each
/// report's `last_seq` is its own last change, and its tags (folded to
/// lower case) are in `timeline_tags`, replaced when an edit changes them.
#[test]
fn a_round_of_several_reports_numbers_their_changes_and_indexes_their_tags() {
    let url = fresh_database();
    let store = PgStore::open(&url).unwrap();
    let case = store.create_case_in_zone("rally", None).unwrap();
    let mut reporter = enroll(&store, "rally", DeviceRole::Reporter);
    let mut ids = Vec::new();
    for tags in [vec!["Arrest"], vec!["arrest", "Night"], vec![]] {
        let mut report = NewReport::new(
            ReportId::random().unwrap(),
            case.id.clone(),
            "tagged",
            chrono::DateTime::parse_from_rfc3339("2024-05-01T10:00:00Z").unwrap(),
        );
        report.tags = tags.into_iter().map(str::to_owned).collect();
        ids.push(reporter.replica.create_report(&report).unwrap());
    }
    sync(&store, &mut reporter);
    reporter
        .replica
        .edit_report(
            &ids[1],
            &[Edit::RemoveTag("Night".into()), Edit::AddTag("Vans".into())],
        )
        .unwrap();
    sync(&store, &mut reporter);

    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let seqs: Vec<i64> = client
        .query("SELECT seq FROM changes ORDER BY seq", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>());
    assert!(seqs.len() >= 4, "three creations and an edit: {seqs:?}");
    for id in &ids {
        let row = client
            .query_one(
                "SELECT d.last_seq, (SELECT max(seq) FROM changes c WHERE c.doc_id = d.id)
                 FROM documents d WHERE d.id = $1",
                &[&id.as_str()],
            )
            .unwrap();
        assert_eq!(row.get::<_, i64>(0), row.get::<_, i64>(1), "report {id}");
    }
    let mut tags: Vec<(String, String)> = client
        .query("SELECT report_id, tag FROM timeline_tags", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    tags.sort();
    let mut expected = vec![
        (ids[0].to_string(), "arrest".to_owned()),
        (ids[1].to_string(), "arrest".to_owned()),
        (ids[1].to_string(), "vans".to_owned()),
    ];
    expected.sort();
    assert_eq!(tags, expected);
}
