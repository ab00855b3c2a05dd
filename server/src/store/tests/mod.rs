//! The store's tests, one file per concern; the helpers here enroll
//! devices with their own replicas and sync them against a store.

#![allow(unused_imports)]

pub(super) use super::schema::dump_value;
pub(super) use super::sql::{time_text, token_hash};
pub(super) use super::sync::{COORDINATOR_FEED, REPORTER_FEED};
pub(super) use super::timeline::{TimelineFilter, TIMELINE_SELECT};
pub(super) use super::*;
pub(super) use automerge::Automerge;
pub(super) use automerge::ChangeHash;
pub(super) use base64::engine::general_purpose::URL_SAFE_NO_PAD;
pub(super) use base64::Engine as _;
pub(super) use chrono::{DateTime, FixedOffset, Utc};
pub(super) use fieldsync_core::document::read_report;
pub(super) use fieldsync_core::document::NewReport;
pub(super) use fieldsync_core::model::DeviceRole;
pub(super) use fieldsync_core::model::ReviewStatus;
pub(super) use fieldsync_core::model::{Edit, Place};
pub(super) use fieldsync_core::protocol::SyncRequest;
pub(super) use fieldsync_core::protocol::DEFAULT_MAX_REQUEST_BYTES;
pub(super) use fieldsync_core::replica::{Replica, SyncSummary};
pub(super) use fieldsync_core::sync::server::verify_request;
pub(super) use fieldsync_core::sync::server::ServerLimits;
pub(super) use fieldsync_core::sync::server::SyncError;
pub(super) use fieldsync_core::DeviceKey;
pub(super) use fieldsync_core::{CaseId, ReportId};
pub(super) use fieldsync_core::{DeviceId, ReportDocument};
pub(super) use r2d2::PooledConnection;
pub(super) use r2d2_sqlite::SqliteConnectionManager;
pub(super) use rusqlite::params;
pub(super) use rusqlite::params_from_iter;
pub(super) use rusqlite::types::Value;
pub(super) use std::path::Path;
pub(super) use std::path::PathBuf;
pub(super) use std::str::FromStr;
pub(super) use std::time::Duration;

pub(super) const DAY: Duration = Duration::from_secs(24 * 3600);

pub(super) fn t(s: &str) -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339(s).unwrap()
}

pub(super) fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    (dir, store)
}

pub(super) fn raw(store: &Store) -> PooledConnection<SqliteConnectionManager> {
    store.conn().unwrap()
}

/// A device with its own replica, enrolled in `case` through an invite.
pub(super) struct Device {
    pub(super) replica: Replica,
    pub(super) record: DeviceRecord,
}

pub(super) fn enroll(store: &Store, case: &str, role: DeviceRole) -> Device {
    let mut replica = Replica::open_in_memory().unwrap();
    replica.init_identity().unwrap();
    let key = replica.device_key().unwrap().unwrap().public_key();
    let token = store.create_invite(case, role, DAY).unwrap();
    let record = store.enroll(&token, &key).unwrap();
    Device { replica, record }
}

pub(super) fn new_report(case: &CaseId, title: &str, occurred_at: &str) -> NewReport {
    NewReport::new(
        ReportId::random().unwrap(),
        case.clone(),
        title,
        t(occurred_at),
    )
}

pub(super) fn sync(store: &Store, device: &mut Device) -> SyncSummary {
    let record = device.record.clone();
    device
        .replica
        .sync(
            DEFAULT_MAX_REQUEST_BYTES,
            |req| {
                let req = SyncRequest::from_json(&req.to_json()).unwrap();
                store.sync(&record, &req, ServerLimits::default())
            },
            |_| {},
        )
        .unwrap()
}

pub(super) fn titles(page: &TimelinePage) -> Vec<&str> {
    page.reports.iter().map(|r| r.title.as_str()).collect()
}

#[cfg(unix)]
pub(super) fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

/// Reports with tags, a place and a description, as a generator makes them.
pub(super) fn generated(case: &CaseId, n: usize) -> Vec<NewReport> {
    (0..n)
        .map(|i| {
            let mut new = new_report(case, &format!("Generated {i}"), "2024-05-01T10:00:00Z");
            new.occurred_at = t("2024-05-01T10:00:00+06:00") + chrono::Duration::minutes(i as i64);
            new.place = Place {
                name: "Republic square".into(),
                lat: Some(43.25),
                lon: Some(76.95),
            };
            new.description = format!("Held for {i} hours.");
            new.tags = vec!["arrest".into(), format!(" Tag{} ", i % 3)];
            new
        })
        .collect()
}

/// Columns of each table that a sync round and the generator write
/// alike: all but the receipt times, and each snapshot as the document
/// it loads as.
pub(super) fn stored_alike(store: &Store) -> Vec<String> {
    let conn = raw(store);
    let mut out = Vec::new();
    let mut docs = conn
        .prepare(
            "SELECT id, case_id, creator, snapshot, heads, last_seq FROM documents ORDER BY id",
        )
        .unwrap();
    let mut rows = docs.query([]).unwrap();
    while let Some(r) = rows.next().unwrap() {
        let snapshot: Vec<u8> = r.get(3).unwrap();
        let saved = Automerge::load(&snapshot).unwrap().save();
        out.push(format!(
            "document {} {} {} {} {} {}",
            r.get::<_, String>(0).unwrap(),
            r.get::<_, String>(1).unwrap(),
            r.get::<_, String>(2).unwrap(),
            hex::encode(saved),
            r.get::<_, String>(4).unwrap(),
            r.get::<_, i64>(5).unwrap()
        ));
    }
    for (table, columns) in [
        ("changes", "seq, case_id, doc_id, hash, bytes, author_device, signature"),
        (
            "timeline",
            "report_id, case_id, occurred_utc, occurred_at, approximate, place, title, search_text, status, tags, reporter, lat, lon, entries",
        ),
    ] {
        let mut stmt = conn
            .prepare(&format!("SELECT {columns} FROM {table} ORDER BY 1"))
            .unwrap();
        let n = stmt.column_count();
        let mut rows = stmt.query([]).unwrap();
        while let Some(r) = rows.next().unwrap() {
            let values: Vec<String> = (0..n).map(|i| dump_value(r.get_ref(i).unwrap())).collect();
            out.push(format!("{table} {}", values.join(" ")));
        }
    }
    out
}

/// Every page of a tag's reports, `limit` at a time: the titles.
pub(super) fn tag_pages(store: &Store, case: &CaseId, tag: &str, limit: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .timeline(
                case,
                &TimelineQuery {
                    tag: Some(tag.into()),
                    after: after.clone(),
                    limit: Some(limit),
                    ..TimelineQuery::default()
                },
            )
            .unwrap();
        out.extend(titles(&page).into_iter().map(str::to_owned));
        match page.next {
            Some(next) => after = Some(next),
            None => return out,
        }
    }
}

mod generated;
mod membership;
mod schema;
mod sync;
mod timeline;
