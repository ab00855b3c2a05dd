use chrono::{DateTime, FixedOffset};

use super::craft::{self, Header};
use super::*;
use crate::document::{NewReport, ReportDocument};
use crate::identity::DeviceKey;
use crate::ids::{CaseId, ReportId};
use crate::model::{Edit, Place};
use automerge::transaction::Transactable;
use automerge::ReadDoc;

fn t(s: &str) -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339(s).unwrap()
}

fn report() -> NewReport {
    let mut new = NewReport::new(
        ReportId::random().unwrap(),
        CaseId::random().unwrap(),
        "Arrests at the bus stop",
        t("2016-05-21T10:40:00+06:00"),
    );
    new.description = "Aleksey was arrested.".into();
    new.tags = vec!["arrest".into(), "police".into()];
    new.place = Place {
        name: "Almaty".into(),
        lat: Some(43.2),
        lon: Some(76.9),
    };
    new
}

/// A run-length column holding `v` once.
fn one(v: u64) -> Vec<u8> {
    let mut d = Vec::new();
    craft::sleb(&mut d, 1);
    craft::uleb(&mut d, v);
    d
}

/// A string column holding the key "title" once.
fn one_title() -> Vec<u8> {
    let mut key = Vec::new();
    craft::sleb(&mut key, 1);
    craft::uleb(&mut key, 5);
    key.extend_from_slice(b"title");
    key
}

fn automerge_ops(bytes: &[u8]) -> u64 {
    let change = automerge::Change::try_from(bytes).unwrap();
    change.decode().operations.len() as u64
}

fn header(actor: &[u8; 32]) -> Header<'_> {
    Header {
        deps: &[],
        actor,
        seq: 1,
        start_op: 1,
        time_ms: 1_463_800_000_000,
    }
}

#[test]
fn every_change_a_device_makes_passes_and_counts_what_automerge_counts() {
    let key = DeviceKey::generate().unwrap();
    let now = t("2016-05-21T11:00:00+06:00");
    let (mut doc, created) = ReportDocument::create(&key, &report(), now).unwrap();
    let mut changes = vec![created];
    // "Aleksey was arrested." and " Two officers." are 35 bytes.
    let fill = "x".repeat(MAX_DESCRIPTION_BYTES - 35);
    for edits in [
        vec![Edit::AppendDescription(" Two officers.".into())],
        vec![
            Edit::SetTitle("Arrests".into()),
            Edit::AddTag("night".into()),
        ],
        vec![Edit::RemoveTag("police".into())],
        // The longest description there may be.
        vec![Edit::AppendDescription(fill)],
    ] {
        changes.push(doc.edit(&key, &edits, now).unwrap().unwrap());
    }
    // Then deleted whole, as `SetDescription` does when the new text shares
    // nothing with the old: the most deletes an honest change makes, in a
    // few bytes. (Spliced here: diffing 256 KiB is slow in a debug build.)
    let am = doc.automerge();
    let (_, text) = am.get(automerge::ROOT, "description").unwrap().unwrap();
    let len = am.length(&text) as isize;
    am.splice_text(&text, 0, len, "").unwrap();
    am.commit_with(automerge::transaction::CommitOptions::default().with_time(1_463_900_000_000));
    let emptied = am.get_last_local_change().unwrap().clone();
    changes.push(crate::SignedChange::sign(&emptied, &key));
    for change in &changes {
        let shape = check(&change.bytes).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(shape.ops, automerge_ops(&change.bytes));
        change.verify().unwrap();
    }
    let emptied = check(&changes.last().unwrap().bytes).unwrap();
    assert_eq!(emptied.deletes, MAX_DESCRIPTION_BYTES as u64);
    assert!(
        changes.last().unwrap().bytes.len() < 1024,
        "deleting a whole description costs few bytes, which is why deletes have an allowance"
    );
}

#[test]
fn a_crafted_run_is_what_automerge_reads_it_as() {
    // The crafting helper is only worth its tests if Automerge agrees with
    // it: three puts it makes are three ops Automerge reads.
    let key = DeviceKey::generate().unwrap();
    let actor = *key.public_key().as_bytes();
    let bytes = craft::run_of_puts(&header(&actor), "title", 3);
    assert_eq!(automerge_ops(&bytes), 3);
    assert_eq!(check(&bytes).unwrap().ops, 3);
}

#[test]
fn runs_declaring_millions_of_operations_are_refused_unexpanded() {
    let actor = [7u8; 32];
    for n in [1_000_000, 10_000_000, 1 << 62] {
        let bytes = craft::run_of_puts(&header(&actor), "title", n);
        assert!(bytes.len() < 200, "{} bytes", bytes.len());
        let started = std::time::Instant::now();
        let err = check(&bytes).unwrap_err();
        assert!(
            matches!(err, LimitError::TooManyOps { declared, .. } if declared == n),
            "{err}"
        );
        assert!(started.elapsed().as_millis() < 50);
    }
}

#[test]
fn predecessor_bombs_are_refused() {
    // One op whose predecessor count is 2^40: Automerge would collect them.
    let actor = [7u8; 32];
    let mut pred = Vec::new();
    craft::sleb(&mut pred, 1);
    craft::uleb(&mut pred, 1 << 40);
    let key = one_title();
    let bytes = craft::change_chunk(
        &header(&actor),
        &[
            ((1 << 4) | 5, key),
            ((4 << 4) | 2, one(1)),
            ((5 << 4) | 6, one(0)),
            (7 << 4, pred),
        ],
    );
    let err = check(&bytes).unwrap_err();
    assert!(
        matches!(
            err,
            LimitError::TooManyOps {
                what: "predecessors",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn compressed_chunks_and_compressed_columns_are_refused() {
    let key = DeviceKey::generate().unwrap();
    let (_, change) =
        ReportDocument::create(&key, &report(), t("2016-05-21T11:00:00+06:00")).unwrap();
    let mut compressed = change.bytes.clone();
    compressed[8] = 2;
    assert_eq!(check(&compressed), Err(LimitError::Compressed));

    let actor = [7u8; 32];
    let bytes = craft::change_chunk(&header(&actor), &[((4 << 4) | 8 | 2, vec![1, 1])]);
    assert_eq!(check(&bytes), Err(LimitError::Compressed));
}

#[test]
fn every_truncation_and_other_chunk_kinds_are_refused_without_panic() {
    let key = DeviceKey::generate().unwrap();
    let (_, change) =
        ReportDocument::create(&key, &report(), t("2016-05-21T11:00:00+06:00")).unwrap();
    for cut in 0..change.bytes.len() {
        assert!(check(&change.bytes[..cut]).is_err(), "cut at {cut}");
    }
    let mut doc = change.bytes.clone();
    doc[8] = 0;
    assert!(matches!(check(&doc), Err(LimitError::NotAChange(_))));
    let mut longer = change.bytes.clone();
    longer.push(0);
    assert!(check(&longer).is_err());
}

#[test]
fn a_signed_change_out_of_bounds_is_refused_by_verify() {
    let key = DeviceKey::generate().unwrap();
    let actor = *key.public_key().as_bytes();
    let bytes = craft::run_of_puts(&header(&actor), "title", 1 << 62);
    let signature = key
        .sign(crate::identity::Domain::Change, &craft::change_hash(&bytes))
        .as_bytes()
        .to_vec();
    let signed = crate::SignedChange { bytes, signature };
    let started = std::time::Instant::now();
    assert!(matches!(
        signed.verify(),
        Err(crate::signed_change::ChangeError::OutOfBounds(_))
    ));
    assert!(started.elapsed().as_millis() < 50);
}

#[test]
fn the_crafted_deflate_stream_inflates_to_what_it_says() {
    // Checked against Automerge's own inflater: a compressed chunk of it
    // parses as a change only once inflated, so the error tells it read
    // the zeros (a change body of zeros is no change), not a bad stream.
    let stream = craft::deflated_zeros(1000);
    assert!(stream.len() < 2000, "{}", stream.len());
    let chunk = craft::chunk(2, &stream);
    assert_eq!(check(&chunk), Err(LimitError::Compressed));
    let err = automerge::Change::try_from(chunk.as_slice()).unwrap_err();
    assert!(!err.to_string().contains("decompress"), "{err}");
}

#[test]
fn an_actor_index_past_the_changes_actors_is_refused() {
    // Found by fuzzing sync_request: Automerge's decode unwraps the actor
    // of a predecessor that indexes past the change's actors.
    let actor = [7u8; 32];
    let key = one_title();
    let bytes = craft::change_chunk(
        &header(&actor),
        &[
            ((1 << 4) | 5, key),
            ((3 << 4) | 4, vec![1]),
            ((4 << 4) | 2, one(1)),
            ((5 << 4) | 6, one(0)),
            (7 << 4, one(1)),
            ((7 << 4) | 1, one(3)),
            ((7 << 4) | 3, one(1)),
        ],
    );
    assert_eq!(
        check(&bytes),
        Err(LimitError::Malformed(
            "an actor index past the change's actors"
        ))
    );
}

#[test]
fn the_dependencies_read_from_the_header_are_automerges() {
    let key = DeviceKey::generate().unwrap();
    let now = t("2016-05-21T11:00:00+06:00");
    let (mut doc, created) = ReportDocument::create(&key, &report(), now).unwrap();
    let edited = doc
        .edit(&key, &[Edit::AddTag("night".into())], now)
        .unwrap()
        .unwrap();
    for change in [&created, &edited] {
        let automerge = automerge::Change::try_from(change.bytes.as_slice()).unwrap();
        assert_eq!(change_header(&change.bytes).unwrap().deps, automerge.deps());
    }
    assert_eq!(change_header(&edited.bytes).unwrap().deps.len(), 1);
    // Two dependencies, crafted, in the order given.
    let deps = [[1u8; 32], [2u8; 32]];
    let actor = [9u8; 32];
    let crafted = craft::change_chunk(
        &Header {
            deps: &deps,
            ..header(&actor)
        },
        &[],
    );
    let read: Vec<[u8; 32]> = change_header(&crafted)
        .unwrap()
        .deps
        .iter()
        .map(|h| h.0)
        .collect();
    assert_eq!(read, deps);
}

#[test]
fn a_dependency_list_longer_than_its_chunk_is_refused_before_it_is_allocated() {
    let mut body = Vec::new();
    craft::uleb(&mut body, u64::MAX / 2);
    body.extend_from_slice(&[0u8; 64]);
    let bytes = craft::chunk(1, &body);
    assert_eq!(
        change_header(&bytes).map(|h| h.deps),
        Err(LimitError::Malformed("a field runs past the end"))
    );
    let key = DeviceKey::generate().unwrap();
    let (mut doc, _) =
        ReportDocument::create(&key, &report(), t("2016-05-21T11:00:00+06:00")).unwrap();
    let edited = doc
        .edit(
            &key,
            &[Edit::AddTag("x".into())],
            t("2016-05-21T11:00:00+06:00"),
        )
        .unwrap()
        .unwrap();
    // Cut inside its one dependency.
    assert!(change_header(&edited.bytes[..20]).is_err());
    let mut document = edited.bytes.clone();
    document[8] = 0;
    assert!(matches!(
        change_header(&document),
        Err(LimitError::NotAChange(_))
    ));
}
