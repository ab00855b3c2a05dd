use automerge::transaction::Transactable;
use automerge::{Automerge, Change, ROOT};
use chrono::{DateTime, FixedOffset};

use super::*;
use crate::document::{NewReport, ReportDocument};
use crate::identity::DeviceKey;
use crate::ids::{CaseId, ReportId};
use crate::model::{Edit, Person, Place, ReviewStatus, Role};

fn t(s: &str) -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339(s).unwrap()
}

fn created(key: &DeviceKey) -> ReportDocument {
    let new = NewReport::new(
        ReportId::random().unwrap(),
        CaseId::random().unwrap(),
        "Arrests at the bus stop",
        t("2016-05-21T10:40:00+06:00"),
    );
    ReportDocument::create(key, &new, t("2016-05-21T11:00:00+06:00"))
        .unwrap()
        .0
}

/// The change `edits` make to `doc`, and the document before and after it.
fn edited(doc: &ReportDocument, key: &DeviceKey, edits: &[Edit]) -> (Automerge, Change, Automerge) {
    let mut after = doc.clone();
    let before = after.automerge().document().clone();
    let change = after
        .prepare_edit(&key.public_key(), edits, t("2016-05-22T09:00:00+06:00"))
        .unwrap()
        .unwrap();
    (before, change, after.automerge().document().clone())
}

fn touch(field: Field, depth: Depth) -> Touch {
    Touch {
        field: TouchedField::Layout(field),
        depth,
    }
}

fn check(edits: &[Edit], before: &[Touch], after: &[Touch]) {
    let key = DeviceKey::generate().unwrap();
    let doc = created(&key);
    let (old, change, new) = edited(&doc, &key, edits);
    assert_eq!(
        fields_touched(&old, &change),
        before,
        "against the document before"
    );
    assert_eq!(
        fields_touched(&new, &change),
        after,
        "against the document after"
    );
}

#[test]
fn a_root_field_set_is_touched_at_its_key() {
    let touches = [touch(Field::Title, Depth::Key)];
    check(&[Edit::SetTitle("Detentions".into())], &touches, &touches);
}

#[test]
fn a_review_writes_the_review_map_once_whatever_the_keys() {
    let touches = [touch(Field::Review, Depth::Member)];
    let review = Edit::SetReview {
        status: ReviewStatus::Verified,
        note: "two witnesses".into(),
        reviewer: "coordinator".into(),
        at: t("2016-05-22T09:00:00+06:00"),
    };
    check(&[review], &touches, &touches);
}

#[test]
fn fields_are_listed_in_the_order_the_change_writes_them() {
    let place = Place {
        name: "Almaty".into(),
        lat: None,
        lon: None,
    };
    let touches = [
        touch(Field::Description, Depth::Member),
        touch(Field::Place, Depth::Member),
        touch(Field::Title, Depth::Key),
    ];
    check(
        &[
            Edit::AppendDescription("more".into()),
            Edit::SetPlace(place),
            Edit::SetTitle("t".into()),
        ],
        &touches,
        &touches,
    );
}

#[test]
fn an_object_made_by_the_change_counts_once_the_document_holds_it() {
    let person = Person {
        name: "Aleksey".into(),
        role: Role::Witness,
        note: String::new(),
    };
    check(
        &[Edit::AddPerson(person)],
        &[touch(Field::People, Depth::Member)],
        &[
            touch(Field::People, Depth::Member),
            touch(Field::People, Depth::Below),
        ],
    );
}

#[test]
fn a_key_this_build_does_not_know_is_named() {
    let key = DeviceKey::generate().unwrap();
    let mut doc = created(&key);
    let before = doc.automerge().document().clone();
    let am = doc.automerge();
    am.put(ROOT, "mood", "calm").unwrap();
    am.put(ROOT, "title", "t").unwrap();
    let hash = am.commit().unwrap();
    let change = am.get_change_by_hash(&hash).unwrap();
    let touched = fields_touched(&before, &change);
    assert_eq!(
        touched,
        [
            Touch {
                field: TouchedField::Other("mood".into()),
                depth: Depth::Key
            },
            touch(Field::Title, Depth::Key),
        ]
    );
    assert_eq!(touched[0].field.key(), "mood");
    assert!(Field::from_key("mood").is_none());
    assert!(Field::ALL
        .iter()
        .all(|f| Field::from_key(f.key()) == Some(*f)));
}

#[test]
fn concurrent_writes_of_a_single_valued_field_are_conflicts() {
    let a = DeviceKey::generate().unwrap();
    let b = DeviceKey::generate().unwrap();
    let mut doc_a = created(&a);
    let mut doc_b = doc_a.clone();
    let now = t("2016-05-22T09:00:00+06:00");
    doc_a
        .edit(&a, &[Edit::SetTitle("one".into())], now)
        .unwrap();
    doc_b
        .edit(&b, &[Edit::SetTitle("two".into())], now)
        .unwrap();
    assert!(conflicts(doc_a.automerge()).is_empty());
    let mut merged = doc_a.clone();
    merged.automerge().merge(doc_b.automerge()).unwrap();
    let found = conflicts(merged.automerge());
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].field, ConflictField::Title);
    assert_eq!(found[0].field.label(), "title");
    let mut values = found[0].values.clone();
    values.sort();
    assert_eq!(values, ["one", "two"]);
}

#[test]
fn a_review_edit_writes_into_the_review_place_and_tags_maps() {
    let key = DeviceKey::generate().unwrap();
    let mut doc = created(&key);
    let found: Vec<Field> = review_edit_objects(doc.automerge())
        .into_iter()
        .map(|(field, _)| field)
        .collect();
    assert_eq!(found, [Field::Review, Field::Place, Field::Tags]);
}
