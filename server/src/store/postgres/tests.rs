//! The PostgreSQL store against a real server (`FIELDSYNC_TEST_POSTGRES`,
//! which `./test` starts): what several processes on one database must
//! keep true. Each test makes a database of its own.

use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use fieldsync_core::document::NewReport;
use fieldsync_core::model::DeviceRole;
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

fn record(device: &mut Device, case: &CaseId, title: &str) {
    let report = NewReport::new(
        ReportId::random().unwrap(),
        case.clone(),
        title,
        chrono::DateTime::parse_from_rfc3339("2024-05-01T10:00:00Z").unwrap(),
    );
    device.replica.create_report(&report).unwrap();
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
