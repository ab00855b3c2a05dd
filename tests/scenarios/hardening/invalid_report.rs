//! Finding 2: a reporter wrote `title = 42` to its own report, the server
//! took it, and from then on the coordinators' `timeline` and `export`
//! exited 1 for the whole case. The server now refuses any change after
//! which the report does not read back valid, and clients that meet a
//! report they cannot read (stored before the fix) list it as unreadable
//! and go on.

use automerge::transaction::{CommitOptions, Transactable};
use automerge::{ReadDoc, ROOT};
use fieldsync_core::protocol::{Refusal, SyncResponse};
use fieldsync_core::replica::Replica;
use fieldsync_core::{DeviceKey, ReportId, SignedChange};
use fieldsync_tests::http::{device_key, offer_changes};
use fieldsync_tests::{enrolled_device, DeviceHome, ServerProcess, BUS_STOP_ARREST};

struct Case {
    server: ServerProcess,
    reporter: DeviceHome,
    coordinator: DeviceHome,
    report: ReportId,
    key: DeviceKey,
    _data: tempfile::TempDir,
}

fn case() -> Case {
    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(data.path(), "127.0.0.1:0");
    server.create_case("almaty");
    let reporter = enrolled_device(&server, "almaty", "reporter");
    let coordinator = enrolled_device(&server, "almaty", "coordinator");
    let report: ReportId = reporter.ok(BUS_STOP_ARREST).trim().parse().unwrap();
    reporter.record("almaty", "Second report", &[]);
    reporter.ok(&["sync"]);
    let key = device_key(reporter.dir.path());
    Case {
        server,
        reporter,
        coordinator,
        report,
        key,
        _data: data,
    }
}

/// The reporter's own report with `title` set to what `put` writes, as a
/// change signed by the reporter: what a modified app could send.
fn hostile_title(
    c: &Case,
    put: impl FnOnce(&mut automerge::AutoCommit),
) -> (Vec<automerge::ChangeHash>, SignedChange) {
    let mut doc = Replica::open(c.reporter.dir.path())
        .unwrap()
        .document(&c.report)
        .unwrap();
    let heads = doc.get_heads();
    doc.set_actor(c.key.public_key().actor_id());
    put(&mut doc);
    doc.commit_with(CommitOptions::default().with_time(1_463_900_000_000));
    let change = doc.get_last_local_change().unwrap().clone();
    (heads, SignedChange::sign(&change, &c.key))
}

/// A hostile write to a report's document.
type Write = Box<dyn FnOnce(&mut automerge::AutoCommit)>;

#[test]
fn a_change_that_leaves_a_report_unreadable_is_refused_and_the_case_stays_readable() {
    let c = case();
    let attacks: Vec<(&str, Write)> = vec![
        (
            "title = 42",
            Box::new(|d| d.put(ROOT, "title", 42i64).unwrap()),
        ),
        (
            "a title of 70,000 bytes",
            Box::new(|d| d.put(ROOT, "title", "x".repeat(70_000)).unwrap()),
        ),
        (
            "review status \"bribed\"",
            Box::new(|d| {
                let review = d.get(ROOT, "review").unwrap().unwrap().1;
                d.put(&review, "status", "bribed").unwrap();
            }),
        ),
    ];
    for (name, put) in attacks {
        let (heads, change) = hostile_title(&c, put);
        let reply = offer_changes(&c.server.url, &c.key, &c.report, heads, vec![change]);
        assert_eq!(reply.status, 200, "{name}: {}", reply.body);
        let response = SyncResponse::from_json(reply.body.as_bytes()).unwrap();
        let refused = &response.docs[0].refused;
        println!("{name}: {refused:?}");
        assert_eq!(refused.len(), 1, "{name}: the change is refused");
        assert!(
            matches!(
                refused[0].reason,
                Refusal::InvalidReport | Refusal::ReviewIsForCoordinators
            ),
            "{name}: {:?}",
            refused[0]
        );
    }
    // The coordinator's listing and export of the case work as before.
    c.coordinator.ok(&["sync"]);
    let mut titles: Vec<String> = c
        .coordinator
        .timeline("almaty")
        .iter()
        .map(|r| r["title"].as_str().unwrap().to_owned())
        .collect();
    titles.sort();
    assert_eq!(titles, ["Arrest at the bus stop", "Second report"]);
    c.coordinator
        .ok(&["export", "--case", "almaty", "--format", "markdown"]);
}

#[test]
fn a_report_stored_unreadable_before_the_fix_is_named_and_the_rest_is_listed() {
    let c = case();
    // A server from before the fix accepted such a change: put it in its
    // database as a sync round of that server would have.
    let (_, change) = hostile_title(&c, |d| d.put(ROOT, "title", 42i64).unwrap());
    let db =
        rusqlite::Connection::open(c.server.data.join(fieldsync_server::store::DB_FILE)).unwrap();
    db.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
    let (snapshot, case_id, creator): (Vec<u8>, String, String) = db
        .query_row(
            "SELECT snapshot, case_id, creator FROM documents WHERE id = ?1",
            [c.report.as_str()],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    let mut doc = automerge::Automerge::load(&snapshot).unwrap();
    let parsed = automerge::Change::try_from(change.bytes.as_slice()).unwrap();
    doc.apply_changes([parsed.clone()]).unwrap();
    db.execute(
        "INSERT INTO changes (case_id, doc_id, hash, bytes, author_device, signature,
                              received_at, actor_device, doc_creator)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, '2016-05-22T00:00:00Z', ?5, ?5)",
        rusqlite::params![
            case_id,
            c.report.as_str(),
            parsed.hash().to_string(),
            change.bytes,
            creator,
            change.signature
        ],
    )
    .unwrap();
    let heads = fieldsync_core::heads::format(&doc.get_heads());
    db.execute(
        "UPDATE documents SET snapshot = ?2, heads = ?3,
             last_seq = (SELECT max(seq) FROM changes) WHERE id = ?1",
        rusqlite::params![c.report.as_str(), doc.save(), heads],
    )
    .unwrap();
    drop(db);

    c.coordinator.ok(&["sync"]);
    let listed = c
        .coordinator
        .run(&["timeline", "--case", "almaty", "--json"]);
    let stderr = String::from_utf8_lossy(&listed.stderr);
    assert!(listed.status.success(), "{stderr}");
    let rows: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 1, "the readable report");
    assert_eq!(rows[0]["title"], "Second report");
    assert!(
        stderr.contains(c.report.as_str()) && stderr.contains("cannot be read"),
        "{stderr}"
    );
    assert!(
        stderr.contains("title"),
        "the reason names the field: {stderr}"
    );
    let exported = c
        .coordinator
        .run(&["export", "--case", "almaty", "--format", "json"]);
    let stderr = String::from_utf8_lossy(&exported.stderr);
    assert!(exported.status.success(), "{stderr}");
    assert!(stderr.contains(c.report.as_str()), "{stderr}");
    assert!(String::from_utf8_lossy(&exported.stdout).contains("Second report"));
}
