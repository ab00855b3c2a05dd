//! One report = one Automerge document. This module is the only place that
//! knows the document's layout: it reads the typed [`Report`] view out of a
//! document and turns typed [`Edit`]s into signed Automerge changes.
//!
//! Layout (schema 1), all at the root map:
//!
//! | key | Automerge type |
//! |---|---|
//! | `schema_version` | uint |
//! | `id`, `case`, `created_by`, `created_at` | str (written once, by the creating change) |
//! | `occurred_at` | str, RFC 3339 with offset |
//! | `approximate` | bool |
//! | `place` | map {`name`: str, `lat`: f64 or null, `lon`: f64 or null} |
//! | `title` | str |
//! | `description` | text |
//! | `people` | list of map {`name`, `role`, `note`: str} |
//! | `tags` | map whose keys are the tags (value `true`): set semantics |
//! | `timeline` | list of map {`at`: str RFC 3339, `text`: str, `approximate`: bool} |
//! | `review` | map {`status`, `reviewer`, `note`, `reviewed_at`: str} |
//! | `attachments` | list of map {`id`, `blob`, `header`: str, `size`, `key_epoch`: uint} |

use std::collections::BTreeSet;

use automerge::transaction::{CommitOptions, Transactable};
use automerge::{
    legacy, ActorId, AutoCommit, Change, ChangeHash, ObjId, ObjType, ReadDoc, ScalarValue, Value,
    ROOT,
};
use chrono::{DateTime, FixedOffset, SecondsFormat};

use crate::identity::{DeviceKey, PublicKey};
use crate::ids::{CaseId, DeviceId, ReportId};
use crate::model::*;
use crate::signed_change::SignedChange;

/// Root keys that only the creating change may write.
pub const IMMUTABLE_KEYS: [&str; 5] = ["schema_version", "id", "case", "created_by", "created_at"];
/// Root key of the review map, which only coordinators may write.
pub const REVIEW_KEY: &str = "review";

const KNOWN_KEYS: [&str; 15] = [
    "schema_version",
    "id",
    "case",
    "created_by",
    "created_at",
    "occurred_at",
    "approximate",
    "place",
    "title",
    "description",
    "people",
    "tags",
    "timeline",
    "review",
    "attachments",
];

/// Largest title, in bytes.
pub const MAX_TITLE_BYTES: usize = 1024;
/// Largest description, in bytes.
pub const MAX_DESCRIPTION_BYTES: usize = 256 * 1024;
/// Largest short field (tag, name, note, timeline text), in bytes.
pub const MAX_FIELD_BYTES: usize = 8 * 1024;

/// A field of a document does not have the type or form this build expects.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ViewError {
    #[error(
        "field `{field}` should be {expected} but is {found}{}",
        type_hint(expected, found)
    )]
    WrongType {
        field: String,
        expected: &'static str,
        found: String,
    },
    #[error("field `{field}` holds an invalid value: {reason}")]
    InvalidValue { field: String, reason: String },
}

/// An edit was refused before it touched the document.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum EditError {
    #[error("{field} is too long: {len} bytes, at most {max}")]
    TooLong {
        field: &'static str,
        len: usize,
        max: usize,
    },
    #[error("{0} must not be empty")]
    Empty(&'static str),
    #[error("latitude {0} is outside -90..=90")]
    Latitude(f64),
    #[error("longitude {0} is outside -180..=180")]
    Longitude(f64),
    #[error("latitude and longitude go together: give both or neither")]
    HalfCoordinate,
    #[error("the document cannot be edited: {0}")]
    Document(#[from] ViewError),
    #[error("automerge refused the edit: {0}")]
    Automerge(#[from] automerge::AutomergeError),
}

/// What a new report starts with.
#[derive(Clone, Debug, PartialEq)]
pub struct NewReport {
    pub id: ReportId,
    pub case: CaseId,
    pub title: String,
    pub occurred_at: DateTime<FixedOffset>,
    pub approximate: bool,
    pub place: Place,
    pub description: String,
    pub people: Vec<Person>,
    pub tags: Vec<String>,
    pub timeline: Vec<TimelineEntry>,
}

impl NewReport {
    /// A report with only what every report has; the rest starts empty.
    pub fn new(
        id: ReportId,
        case: CaseId,
        title: impl Into<String>,
        occurred_at: DateTime<FixedOffset>,
    ) -> Self {
        Self {
            id,
            case,
            title: title.into(),
            occurred_at,
            approximate: false,
            place: Place::default(),
            description: String::new(),
            people: vec![],
            tags: vec![],
            timeline: vec![],
        }
    }
}

/// A report document, with the typed operations that change it.
#[derive(Clone, Debug)]
pub struct ReportDocument {
    doc: AutoCommit,
}

impl ReportDocument {
    /// Creates a report. The first change writes every field, so that later
    /// edits from any device address the same objects.
    pub fn create(
        key: &DeviceKey,
        new: &NewReport,
        now: DateTime<FixedOffset>,
    ) -> Result<(Self, SignedChange), EditError> {
        validate_title(&new.title)?;
        let mut doc = AutoCommit::new();
        doc.set_actor(key.public_key().actor_id());
        let result = (|| -> Result<(), EditError> {
            doc.put(ROOT, "schema_version", SCHEMA_VERSION)?;
            doc.put(ROOT, "id", new.id.as_str())?;
            doc.put(ROOT, "case", new.case.as_str())?;
            doc.put(ROOT, "created_by", key.device_id().as_str())?;
            doc.put(ROOT, "created_at", rfc3339(&now))?;
            doc.put(ROOT, "occurred_at", rfc3339(&new.occurred_at))?;
            doc.put(ROOT, "approximate", new.approximate)?;
            doc.put(ROOT, "title", new.title.as_str())?;
            doc.put_object(ROOT, "place", ObjType::Map)?;
            doc.put_object(ROOT, "description", ObjType::Text)?;
            doc.put_object(ROOT, "people", ObjType::List)?;
            doc.put_object(ROOT, "tags", ObjType::Map)?;
            doc.put_object(ROOT, "timeline", ObjType::List)?;
            let review = doc.put_object(ROOT, REVIEW_KEY, ObjType::Map)?;
            doc.put(&review, "status", ReviewStatus::Unverified.as_str())?;
            doc.put_object(ROOT, "attachments", ObjType::List)?;
            Ok(())
        })();
        if let Err(e) = result {
            doc.rollback();
            return Err(e);
        }
        let mut report = Self { doc };
        let mut edits = vec![
            Edit::SetPlace(new.place.clone()),
            Edit::SetDescription(new.description.clone()),
        ];
        edits.extend(new.people.iter().cloned().map(Edit::AddPerson));
        edits.extend(new.tags.iter().cloned().map(Edit::AddTag));
        edits.extend(new.timeline.iter().cloned().map(Edit::AddTimelineEntry));
        if let Err(e) = report.apply_all(&edits) {
            report.doc.rollback();
            return Err(e);
        }
        let change = report
            .commit(key, now)
            .expect("a new report always has operations to commit");
        Ok((report, change))
    }

    /// The change [`ReportDocument::create`] would make for `new`, byte for
    /// byte, without building the document: the operations are written out
    /// in the order `create` makes them and encoded as one change. An
    /// Automerge document spends most of a new report's cost indexing each
    /// operation (every character of the description is one), which an
    /// import of a hundred thousand rows cannot afford; the change alone is
    /// all the device stores and sends. `the_fast_creating_change_is_the_one_create_makes`
    /// holds the two paths to the same bytes.
    pub fn creating_change(
        key: &DeviceKey,
        new: &NewReport,
        now: DateTime<FixedOffset>,
    ) -> Result<(SignedChange, ChangeHash), EditError> {
        validate_title(&new.title)?;
        validate_place(&new.place)?;
        validate_description(&new.description)?;
        for person in &new.people {
            validate_person(person)?;
        }
        let tags = new
            .tags
            .iter()
            .map(|tag| normalize_tag(tag))
            .collect::<Result<Vec<_>, _>>()?;
        for entry in &new.timeline {
            validate_timeline_entry(entry)?;
        }

        let mut ops = OpWriter::new(key.public_key().actor_id());
        let root = legacy::ObjectId::Root;
        ops.put(&root, "schema_version", SCHEMA_VERSION.into());
        ops.put(&root, "id", new.id.as_str().into());
        ops.put(&root, "case", new.case.as_str().into());
        ops.put(&root, "created_by", key.device_id().as_str().into());
        ops.put(&root, "created_at", rfc3339(&now).into());
        ops.put(&root, "occurred_at", rfc3339(&new.occurred_at).into());
        ops.put(&root, "approximate", new.approximate.into());
        ops.put(&root, "title", new.title.as_str().into());
        let place = ops.make(&root, "place", ObjType::Map);
        let description = ops.make(&root, "description", ObjType::Text);
        let people = ops.make(&root, "people", ObjType::List);
        let tags_map = ops.make(&root, "tags", ObjType::Map);
        let timeline = ops.make(&root, "timeline", ObjType::List);
        let review = ops.make(&root, REVIEW_KEY, ObjType::Map);
        ops.put(&review, "status", ReviewStatus::Unverified.as_str().into());
        ops.make(&root, "attachments", ObjType::List);

        ops.put(&place, "name", new.place.name.as_str().into());
        ops.put(&place, "lat", optional_f64(new.place.lat));
        ops.put(&place, "lon", optional_f64(new.place.lon));
        // Automerge text holds one element per Unicode scalar value.
        let mut after = legacy::ElementId::Head;
        let mut buf = [0u8; 4];
        for c in new.description.chars() {
            let value = ScalarValue::from(&*c.encode_utf8(&mut buf));
            after = ops.insert(&description, after, legacy::OpType::Put(value));
        }
        let mut after = legacy::ElementId::Head;
        for person in &new.people {
            after = ops.insert(&people, after, legacy::OpType::Make(ObjType::Map));
            let obj = legacy::ObjectId::Id(ops.last_id());
            ops.put(&obj, "name", person.name.as_str().into());
            ops.put(&obj, "role", person.role.as_str().into());
            ops.put(&obj, "note", person.note.as_str().into());
        }
        for tag in &tags {
            ops.put(&tags_map, tag, true.into());
        }
        let mut after = legacy::ElementId::Head;
        for entry in &new.timeline {
            after = ops.insert(&timeline, after, legacy::OpType::Make(ObjType::Map));
            let obj = legacy::ObjectId::Id(ops.last_id());
            ops.put(&obj, "at", rfc3339(&entry.at).into());
            ops.put(&obj, "text", entry.text.as_str().into());
            ops.put(&obj, "approximate", entry.approximate.into());
        }

        let change = automerge::Change::from(automerge::ExpandedChange {
            operations: ops.ops,
            actor_id: ops.actor,
            hash: None,
            seq: 1,
            start_op: std::num::NonZeroU64::MIN,
            time: now.timestamp_millis(),
            message: None,
            deps: Vec::new(),
            extra_bytes: Vec::new(),
            author: None,
        });
        Ok((SignedChange::sign(&change, key), change.hash()))
    }

    /// The report [`ReportDocument::create`] makes of `new`, as
    /// [`ReportDocument::view`] reads it, without building the document:
    /// what a server projects into its timeline when the change of
    /// [`ReportDocument::creating_change`] arrives. `new` must be one that
    /// `creating_change` accepts. `the_created_view_is_the_view_of_create`
    /// holds the two to the same report.
    pub fn created_view(creator: &DeviceId, new: &NewReport, now: DateTime<FixedOffset>) -> Report {
        Report {
            id: new.id.as_str().to_owned(),
            case: new.case.as_str().to_owned(),
            created_by: creator.as_str().to_owned(),
            created_at: Some(now),
            schema_version: SCHEMA_VERSION,
            occurred_at: Some(new.occurred_at),
            approximate: new.approximate,
            place: new.place.clone(),
            title: new.title.clone(),
            description: new.description.clone(),
            people: new.people.clone(),
            tags: new.tags.iter().map(|t| t.trim().to_owned()).collect(),
            timeline: new.timeline.clone(),
            review: Review::default(),
            attachments: Vec::new(),
            unknown_fields: Vec::new(),
        }
    }

    /// Wraps a document loaded or received from elsewhere.
    pub fn from_automerge(doc: AutoCommit) -> Self {
        Self { doc }
    }

    pub fn load(bytes: &[u8]) -> Result<Self, automerge::AutomergeError> {
        Ok(Self {
            doc: AutoCommit::load(bytes)?,
        })
    }

    pub fn automerge(&mut self) -> &mut AutoCommit {
        &mut self.doc
    }

    pub fn into_automerge(self) -> AutoCommit {
        self.doc
    }

    pub fn heads(&mut self) -> Vec<ChangeHash> {
        self.doc.get_heads()
    }

    /// Applies `edits` as one change signed by `key`. Returns `None` when the
    /// edits changed nothing (setting a field to its current value still
    /// writes, so this is rare). On error nothing is changed.
    pub fn edit(
        &mut self,
        key: &DeviceKey,
        edits: &[Edit],
        now: DateTime<FixedOffset>,
    ) -> Result<Option<SignedChange>, EditError> {
        self.doc.set_actor(key.public_key().actor_id());
        if let Err(e) = self.apply_all(edits) {
            self.doc.rollback();
            return Err(e);
        }
        Ok(self.commit(key, now))
    }

    /// Applies `edits` as one change by `actor`, left unsigned: the server
    /// builds a web session's change this way and the browser, which holds
    /// the session key, signs it. The change stays in this document only;
    /// drop the document unless the signed change comes back.
    pub fn prepare_edit(
        &mut self,
        actor: &PublicKey,
        edits: &[Edit],
        now: DateTime<FixedOffset>,
    ) -> Result<Option<Change>, EditError> {
        self.doc.set_actor(actor.actor_id());
        if let Err(e) = self.apply_all(edits) {
            self.doc.rollback();
            return Err(e);
        }
        let Some(hash) = self
            .doc
            .commit_with(CommitOptions::default().with_time(now.timestamp_millis()))
        else {
            return Ok(None);
        };
        Ok(self.doc.get_change_by_hash(&hash))
    }

    fn commit(&mut self, key: &DeviceKey, now: DateTime<FixedOffset>) -> Option<SignedChange> {
        let hash = self
            .doc
            .commit_with(CommitOptions::default().with_time(now.timestamp_millis()))?;
        let change = self.doc.get_change_by_hash(&hash)?;
        Some(SignedChange::sign(&change, key))
    }

    fn apply_all(&mut self, edits: &[Edit]) -> Result<(), EditError> {
        for edit in edits {
            self.apply(edit)?;
        }
        Ok(())
    }

    fn apply(&mut self, edit: &Edit) -> Result<(), EditError> {
        let doc = &mut self.doc;
        match edit {
            Edit::SetTitle(title) => {
                validate_title(title)?;
                doc.put(ROOT, "title", title.as_str())?;
            }
            Edit::SetDescription(text) => {
                validate_description(text)?;
                let obj = object(doc, &ROOT, "description", ObjType::Text)?;
                doc.update_text(&obj, text)?;
            }
            Edit::AppendDescription(text) => {
                let obj = object(doc, &ROOT, "description", ObjType::Text)?;
                let len = doc.text(&obj)?.len() + text.len();
                if len > MAX_DESCRIPTION_BYTES {
                    return Err(EditError::TooLong {
                        field: "description",
                        len,
                        max: MAX_DESCRIPTION_BYTES,
                    });
                }
                let end = doc.length(&obj);
                doc.splice_text(&obj, end, 0, text)?;
            }
            Edit::SetOccurredAt { at, approximate } => {
                doc.put(ROOT, "occurred_at", rfc3339(at))?;
                doc.put(ROOT, "approximate", *approximate)?;
            }
            Edit::SetPlace(place) => {
                validate_place(place)?;
                let obj = object(doc, &ROOT, "place", ObjType::Map)?;
                doc.put(&obj, "name", place.name.as_str())?;
                doc.put(&obj, "lat", optional_f64(place.lat))?;
                doc.put(&obj, "lon", optional_f64(place.lon))?;
            }
            Edit::AddTag(tag) => {
                let tag = normalize_tag(tag)?;
                let obj = object(doc, &ROOT, "tags", ObjType::Map)?;
                doc.put(&obj, tag, true)?;
            }
            Edit::RemoveTag(tag) => {
                let tag = normalize_tag(tag)?;
                let obj = object(doc, &ROOT, "tags", ObjType::Map)?;
                if doc.get(&obj, tag.as_str())?.is_some() {
                    doc.delete(&obj, tag.as_str())?;
                }
            }
            Edit::AddPerson(person) => {
                validate_person(person)?;
                let list = object(doc, &ROOT, "people", ObjType::List)?;
                let end = doc.length(&list);
                let obj = doc.insert_object(&list, end, ObjType::Map)?;
                doc.put(&obj, "name", person.name.as_str())?;
                doc.put(&obj, "role", person.role.as_str())?;
                doc.put(&obj, "note", person.note.as_str())?;
            }
            Edit::AddTimelineEntry(entry) => {
                validate_timeline_entry(entry)?;
                let list = object(doc, &ROOT, "timeline", ObjType::List)?;
                let end = doc.length(&list);
                let obj = doc.insert_object(&list, end, ObjType::Map)?;
                doc.put(&obj, "at", rfc3339(&entry.at))?;
                doc.put(&obj, "text", entry.text.as_str())?;
                doc.put(&obj, "approximate", entry.approximate)?;
            }
            Edit::SetReview {
                status,
                note,
                reviewer,
                at,
            } => {
                validate_text("a review note", note, MAX_FIELD_BYTES)?;
                let obj = object(doc, &ROOT, REVIEW_KEY, ObjType::Map)?;
                doc.put(&obj, "status", status.as_str())?;
                doc.put(&obj, "note", note.as_str())?;
                doc.put(&obj, "reviewer", reviewer.as_str())?;
                doc.put(&obj, "reviewed_at", rfc3339(at))?;
            }
            Edit::AddAttachment(attachment) => {
                let list = object(doc, &ROOT, "attachments", ObjType::List)?;
                let end = doc.length(&list);
                let obj = doc.insert_object(&list, end, ObjType::Map)?;
                doc.put(&obj, "id", attachment.id.as_str())?;
                doc.put(&obj, "blob", attachment.blob.as_str())?;
                doc.put(&obj, "size", attachment.size)?;
                doc.put(&obj, "header", attachment.header.as_str())?;
                doc.put(&obj, "key_epoch", attachment.key_epoch)?;
            }
        }
        Ok(())
    }

    /// Reads the typed view; see [`read_report`].
    pub fn view(&self) -> Result<Report, ViewError> {
        read_report(&self.doc)
    }
}

/// The operations of a change being written by hand, numbered as
/// Automerge numbers them: counters from 1, in order.
struct OpWriter {
    actor: ActorId,
    ops: Vec<legacy::Op>,
    /// Map writes so far, (object counter, index in `ops`): a later write
    /// to the same key (a tag given twice) overwrites the last. A few dozen,
    /// so a scan costs less than hashing each key.
    written: Vec<(u64, usize)>,
}

impl OpWriter {
    fn new(actor: ActorId) -> Self {
        Self {
            actor,
            ops: Vec::with_capacity(128),
            written: Vec::with_capacity(48),
        }
    }

    fn last_id(&self) -> legacy::OpId {
        legacy::OpId(self.ops.len() as u64, self.actor.clone())
    }

    fn push(&mut self, op: legacy::Op) -> legacy::OpId {
        self.ops.push(op);
        self.last_id()
    }

    fn put(&mut self, obj: &legacy::ObjectId, key: &str, value: ScalarValue) {
        self.write(obj, key, legacy::OpType::Put(value));
    }

    fn make(&mut self, obj: &legacy::ObjectId, key: &str, ty: ObjType) -> legacy::ObjectId {
        legacy::ObjectId::Id(self.write(obj, key, legacy::OpType::Make(ty)))
    }

    fn write(&mut self, obj: &legacy::ObjectId, key: &str, action: legacy::OpType) -> legacy::OpId {
        let counter = match obj {
            legacy::ObjectId::Root => 0,
            legacy::ObjectId::Id(id) => id.counter(),
        };
        let previous = self.written.iter().rev().find_map(|&(c, i)| {
            let same = c == counter && matches!(&self.ops[i].key, legacy::Key::Map(k) if k == key);
            same.then_some(i)
        });
        if let Some(i) = previous {
            // Automerge writes nothing when a key already holds the value.
            if matches!(&action, legacy::OpType::Put(_)) && self.ops[i].action == action {
                return legacy::OpId(i as u64 + 1, self.actor.clone());
            }
        }
        let pred = previous
            .map(|i| legacy::OpId(i as u64 + 1, self.actor.clone()))
            .into_iter()
            .collect();
        let id = self.push(legacy::Op {
            action,
            obj: obj.clone(),
            key: legacy::Key::Map(key.into()),
            pred,
            insert: false,
        });
        self.written.push((counter, self.ops.len() - 1));
        id
    }

    /// Inserts into a list or text after `after`; returns the new element.
    fn insert(
        &mut self,
        obj: &legacy::ObjectId,
        after: legacy::ElementId,
        action: legacy::OpType,
    ) -> legacy::ElementId {
        legacy::ElementId::Id(self.push(legacy::Op {
            action,
            obj: obj.clone(),
            key: legacy::Key::Seq(after),
            pred: legacy::SortedVec::new(),
            insert: true,
        }))
    }
}

/// Reads the typed view of any Automerge document (the device's
/// `AutoCommit` or the server's `Automerge`). Missing fields get defaults;
/// unknown fields are listed and left alone; a field of the wrong type is an
/// error naming it.
pub fn read_report(doc: &impl ReadDoc) -> Result<Report, ViewError> {
    let mut unknown_fields: Vec<String> = doc
        .keys(ROOT)
        .filter(|k| !KNOWN_KEYS.contains(&k.as_str()))
        .collect();
    unknown_fields.sort();
    let place = match get_object(doc, &ROOT, "place", "place", ObjType::Map)? {
        None => Place::default(),
        Some(obj) => Place {
            name: get_str(doc, &obj, "name", "place.name")?.unwrap_or_default(),
            lat: get_f64(doc, &obj, "lat", "place.lat")?,
            lon: get_f64(doc, &obj, "lon", "place.lon")?,
        },
    };
    let mut people = Vec::new();
    if let Some(list) = get_object(doc, &ROOT, "people", "people", ObjType::List)? {
        for i in 0..doc.length(&list) {
            let field = format!("people[{i}]");
            let Some(obj) = get_object(doc, &list, i, &field, ObjType::Map)? else {
                continue;
            };
            let role_field = format!("{field}.role");
            let role = match get_str(doc, &obj, "role", &role_field)? {
                None => Role::Other,
                Some(text) => text.parse().map_err(|reason| ViewError::InvalidValue {
                    field: role_field,
                    reason,
                })?,
            };
            people.push(Person {
                name: get_str(doc, &obj, "name", &format!("{field}.name"))?.unwrap_or_default(),
                role,
                note: get_str(doc, &obj, "note", &format!("{field}.note"))?.unwrap_or_default(),
            });
        }
    }
    let mut tags = BTreeSet::new();
    if let Some(obj) = get_object(doc, &ROOT, "tags", "tags", ObjType::Map)? {
        tags.extend(doc.keys(&obj));
    }
    let mut timeline = Vec::new();
    if let Some(list) = get_object(doc, &ROOT, "timeline", "timeline", ObjType::List)? {
        for i in 0..doc.length(&list) {
            let field = format!("timeline[{i}]");
            let Some(obj) = get_object(doc, &list, i, &field, ObjType::Map)? else {
                continue;
            };
            let at_field = format!("{field}.at");
            let Some(at) = get_time(doc, &obj, "at", &at_field)? else {
                return Err(ViewError::InvalidValue {
                    field: at_field,
                    reason: "a timeline entry needs a time".into(),
                });
            };
            timeline.push(TimelineEntry {
                at,
                text: get_str(doc, &obj, "text", &format!("{field}.text"))?.unwrap_or_default(),
                approximate: get_bool(doc, &obj, "approximate", &format!("{field}.approximate"))?
                    .unwrap_or(false),
            });
        }
    }
    let review = match get_object(doc, &ROOT, REVIEW_KEY, "review", ObjType::Map)? {
        None => Review::default(),
        Some(obj) => Review {
            status: match get_str(doc, &obj, "status", "review.status")? {
                None => ReviewStatus::Unverified,
                Some(text) => text.parse().map_err(|reason| ViewError::InvalidValue {
                    field: "review.status".into(),
                    reason,
                })?,
            },
            reviewer: get_str(doc, &obj, "reviewer", "review.reviewer")?,
            note: get_str(doc, &obj, "note", "review.note")?.unwrap_or_default(),
            reviewed_at: get_time(doc, &obj, "reviewed_at", "review.reviewed_at")?,
        },
    };
    let mut attachments = Vec::new();
    if let Some(list) = get_object(doc, &ROOT, "attachments", "attachments", ObjType::List)? {
        for i in 0..doc.length(&list) {
            let field = format!("attachments[{i}]");
            let Some(obj) = get_object(doc, &list, i, &field, ObjType::Map)? else {
                continue;
            };
            attachments.push(AttachmentRef {
                id: get_str(doc, &obj, "id", &format!("{field}.id"))?.unwrap_or_default(),
                blob: get_str(doc, &obj, "blob", &format!("{field}.blob"))?.unwrap_or_default(),
                size: get_u64(doc, &obj, "size", &format!("{field}.size"))?.unwrap_or(0),
                header: get_str(doc, &obj, "header", &format!("{field}.header"))?
                    .unwrap_or_default(),
                key_epoch: get_u64(doc, &obj, "key_epoch", &format!("{field}.key_epoch"))?
                    .unwrap_or(0),
            });
        }
    }
    let description = match doc.get(ROOT, "description").ok().flatten() {
        None => String::new(),
        Some((Value::Object(ObjType::Text), obj)) => {
            doc.text(&obj).map_err(|e| ViewError::InvalidValue {
                field: "description".into(),
                reason: e.to_string(),
            })?
        }
        // A plain string is what an older or simpler writer would put.
        Some((Value::Scalar(s), _)) if matches!(s.as_ref(), ScalarValue::Str(_)) => {
            s.as_str().unwrap_or_default().to_owned()
        }
        Some((other, _)) => {
            return Err(ViewError::WrongType {
                field: "description".into(),
                expected: "text",
                found: describe(&other),
            })
        }
    };
    Ok(Report {
        id: get_str(doc, &ROOT, "id", "id")?.unwrap_or_default(),
        case: get_str(doc, &ROOT, "case", "case")?.unwrap_or_default(),
        created_by: get_str(doc, &ROOT, "created_by", "created_by")?.unwrap_or_default(),
        created_at: get_time(doc, &ROOT, "created_at", "created_at")?,
        schema_version: get_u64(doc, &ROOT, "schema_version", "schema_version")?
            .unwrap_or(SCHEMA_VERSION),
        occurred_at: get_time(doc, &ROOT, "occurred_at", "occurred_at")?,
        approximate: get_bool(doc, &ROOT, "approximate", "approximate")?.unwrap_or(false),
        place,
        title: get_str(doc, &ROOT, "title", "title")?.unwrap_or_default(),
        description,
        people,
        tags,
        timeline,
        review,
        attachments,
        unknown_fields,
    })
}

/// RFC 3339 with the offset as recorded: the offset is evidence of where
/// the reporter's clock was, so it is never normalised to UTC.
pub fn rfc3339(t: &DateTime<FixedOffset>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, false)
}

// The checks an edit makes before it touches a document. They are public so
// that code building a report from outside (the importers) refuses a bad
// value with the same rule and the same message, before creating anything.

/// Every field of a report passes the check an edit of it makes: what the
/// server requires of a report after each change it accepts, so that no
/// device can store a report that others cannot read or that breaks limits
/// every honest client keeps.
pub fn validate_report(report: &Report) -> Result<(), EditError> {
    validate_title(&report.title)?;
    validate_description(&report.description)?;
    validate_place(&report.place)?;
    for person in &report.people {
        validate_person(person)?;
    }
    for tag in &report.tags {
        validate_tag(tag)?;
    }
    for entry in &report.timeline {
        validate_timeline_entry(entry)?;
    }
    validate_text("a review note", &report.review.note, MAX_FIELD_BYTES)
}

/// A title fits in [`MAX_TITLE_BYTES`].
pub fn validate_title(title: &str) -> Result<(), EditError> {
    validate_text("title", title, MAX_TITLE_BYTES)
}

/// A description fits in [`MAX_DESCRIPTION_BYTES`].
pub fn validate_description(text: &str) -> Result<(), EditError> {
    validate_text("description", text, MAX_DESCRIPTION_BYTES)
}

/// A place's name fits; its coordinates are in range and come as a pair.
pub fn validate_place(place: &Place) -> Result<(), EditError> {
    validate_text("place name", &place.name, MAX_FIELD_BYTES)?;
    match (place.lat, place.lon) {
        (Some(lat), _) if !(-90.0..=90.0).contains(&lat) => Err(EditError::Latitude(lat)),
        (_, Some(lon)) if !(-180.0..=180.0).contains(&lon) => Err(EditError::Longitude(lon)),
        (Some(_), None) | (None, Some(_)) => Err(EditError::HalfCoordinate),
        _ => Ok(()),
    }
}

/// A person has a name; name and note fit.
pub fn validate_person(person: &Person) -> Result<(), EditError> {
    if person.name.trim().is_empty() {
        return Err(EditError::Empty("a person's name"));
    }
    validate_text("a person's name", &person.name, MAX_FIELD_BYTES)?;
    validate_text("a person's note", &person.note, MAX_FIELD_BYTES)
}

/// A tag is not blank once trimmed, and fits.
pub fn validate_tag(tag: &str) -> Result<(), EditError> {
    normalize_tag(tag).map(drop)
}

/// A timeline entry has text, and it fits.
pub fn validate_timeline_entry(entry: &TimelineEntry) -> Result<(), EditError> {
    if entry.text.trim().is_empty() {
        return Err(EditError::Empty("a timeline entry's text"));
    }
    validate_text("a timeline entry's text", &entry.text, MAX_FIELD_BYTES)
}

fn validate_text(field: &'static str, text: &str, max: usize) -> Result<(), EditError> {
    if text.len() > max {
        return Err(EditError::TooLong {
            field,
            len: text.len(),
            max,
        });
    }
    Ok(())
}

fn normalize_tag(tag: &str) -> Result<String, EditError> {
    let tag = tag.trim();
    if tag.is_empty() {
        return Err(EditError::Empty("a tag"));
    }
    validate_text("a tag", tag, MAX_FIELD_BYTES)?;
    Ok(tag.to_owned())
}

fn optional_f64(v: Option<f64>) -> ScalarValue {
    v.map_or(ScalarValue::Null, ScalarValue::F64)
}

/// The object under `key`, created if a document from an older schema lacks
/// it. Wrong types are errors rather than silently replaced.
fn object(
    doc: &mut AutoCommit,
    parent: &ObjId,
    key: &str,
    ty: ObjType,
) -> Result<ObjId, EditError> {
    match get_object(doc, parent, key, key, ty)? {
        Some(obj) => Ok(obj),
        None => Ok(doc.put_object(parent, key, ty)?),
    }
}

fn get_object<P: Into<automerge::Prop>>(
    doc: &impl ReadDoc,
    parent: &ObjId,
    prop: P,
    field: &str,
    ty: ObjType,
) -> Result<Option<ObjId>, ViewError> {
    match doc.get(parent, prop).ok().flatten() {
        None => Ok(None),
        Some((Value::Object(found), obj)) if same_kind(found, ty) => Ok(Some(obj)),
        Some((other, _)) => Err(ViewError::WrongType {
            field: field.into(),
            expected: obj_name(ty),
            found: describe(&other),
        }),
    }
}

fn same_kind(a: ObjType, b: ObjType) -> bool {
    matches!(
        (a, b),
        (ObjType::Map | ObjType::Table, ObjType::Map | ObjType::Table)
            | (ObjType::List, ObjType::List)
            | (ObjType::Text, ObjType::Text)
    )
}

fn obj_name(ty: ObjType) -> &'static str {
    match ty {
        ObjType::Map | ObjType::Table => "a map",
        ObjType::List => "a list",
        ObjType::Text => "text",
    }
}

fn describe(value: &Value<'_>) -> String {
    match value {
        Value::Object(ty) => obj_name(*ty).to_owned(),
        Value::Scalar(s) => match s.as_ref() {
            ScalarValue::Bytes(_) => "bytes".into(),
            ScalarValue::Str(_) => "a string".into(),
            ScalarValue::Int(_) | ScalarValue::Uint(_) | ScalarValue::F64(_) => "a number".into(),
            ScalarValue::Counter(_) => "a counter".into(),
            ScalarValue::Timestamp(_) => "a timestamp".into(),
            ScalarValue::Boolean(_) => "a boolean".into(),
            ScalarValue::Unknown { .. } => "a value of unknown type".into(),
            ScalarValue::Null => "null".into(),
        },
    }
}

fn get_scalar(
    doc: &impl ReadDoc,
    obj: &ObjId,
    key: &str,
) -> Option<Result<ScalarValue, Value<'static>>> {
    match doc.get(obj, key).ok().flatten()? {
        (Value::Scalar(s), _) if matches!(s.as_ref(), ScalarValue::Null) => None,
        (Value::Scalar(s), _) => Some(Ok(s.into_owned())),
        (Value::Object(ty), _) => Some(Err(Value::Object(ty))),
    }
}

/// The trap an independent client falls into most: Automerge's libraries
/// make a string a collaborative Text object unless told otherwise.
fn type_hint(expected: &str, found: &str) -> &'static str {
    if expected == "a string" && found == "text" {
        " (Automerge libraries store strings as Text by default; this field must be a scalar string: in @automerge/automerge write `new ImmutableString(value)`, in Rust `ScalarValue::Str`; only `description` is Text. See PROTOCOL.md, \"The report\")"
    } else {
        ""
    }
}

fn wrong(field: &str, expected: &'static str, found: Value<'_>) -> ViewError {
    ViewError::WrongType {
        field: field.into(),
        expected,
        found: describe(&found),
    }
}

fn get_str(
    doc: &impl ReadDoc,
    obj: &ObjId,
    key: &str,
    field: &str,
) -> Result<Option<String>, ViewError> {
    match get_scalar(doc, obj, key) {
        None => Ok(None),
        Some(Ok(ScalarValue::Str(s))) => Ok(Some(s.to_string())),
        Some(Ok(other)) => Err(wrong(
            field,
            "a string",
            Value::Scalar(std::borrow::Cow::Owned(other)),
        )),
        Some(Err(found)) => Err(wrong(field, "a string", found)),
    }
}

fn get_bool(
    doc: &impl ReadDoc,
    obj: &ObjId,
    key: &str,
    field: &str,
) -> Result<Option<bool>, ViewError> {
    match get_scalar(doc, obj, key) {
        None => Ok(None),
        Some(Ok(ScalarValue::Boolean(b))) => Ok(Some(b)),
        Some(Ok(other)) => Err(wrong(
            field,
            "a boolean",
            Value::Scalar(std::borrow::Cow::Owned(other)),
        )),
        Some(Err(found)) => Err(wrong(field, "a boolean", found)),
    }
}

fn get_f64(
    doc: &impl ReadDoc,
    obj: &ObjId,
    key: &str,
    field: &str,
) -> Result<Option<f64>, ViewError> {
    match get_scalar(doc, obj, key) {
        None => Ok(None),
        Some(Ok(ScalarValue::F64(v))) => Ok(Some(v)),
        Some(Ok(ScalarValue::Int(v))) => Ok(Some(v as f64)),
        Some(Ok(ScalarValue::Uint(v))) => Ok(Some(v as f64)),
        Some(Ok(other)) => Err(wrong(
            field,
            "a number",
            Value::Scalar(std::borrow::Cow::Owned(other)),
        )),
        Some(Err(found)) => Err(wrong(field, "a number", found)),
    }
}

fn get_u64(
    doc: &impl ReadDoc,
    obj: &ObjId,
    key: &str,
    field: &str,
) -> Result<Option<u64>, ViewError> {
    match get_scalar(doc, obj, key) {
        None => Ok(None),
        Some(Ok(ScalarValue::Uint(v))) => Ok(Some(v)),
        Some(Ok(ScalarValue::Int(v))) if v >= 0 => Ok(Some(v as u64)),
        Some(Ok(other)) => Err(wrong(
            field,
            "a whole number",
            Value::Scalar(std::borrow::Cow::Owned(other)),
        )),
        Some(Err(found)) => Err(wrong(field, "a whole number", found)),
    }
}

fn get_time(
    doc: &impl ReadDoc,
    obj: &ObjId,
    key: &str,
    field: &str,
) -> Result<Option<DateTime<FixedOffset>>, ViewError> {
    let Some(text) = get_str(doc, obj, key, field)? else {
        return Ok(None);
    };
    DateTime::parse_from_rfc3339(&text)
        .map(Some)
        .map_err(|e| ViewError::InvalidValue {
            field: field.into(),
            reason: format!("{text:?} is not an RFC 3339 time with offset: {e}"),
        })
}

#[cfg(test)]
mod tests;
