//! The fast creating change: the bytes [`ReportDocument::create`] makes,
//! written without building a document.

use automerge::{legacy, ActorId, ChangeHash, ObjType, ScalarValue};
use chrono::{DateTime, FixedOffset};

use super::errors::EditError;
use super::layout::{write_new, LayoutWriter, NewReport};
use super::validate::validate_new;
use super::writing::ReportDocument;
use crate::identity::DeviceKey;
use crate::ids::DeviceId;
use crate::model::{Report, Review, SCHEMA_VERSION};
use crate::signed_change::SignedChange;

impl ReportDocument {
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
        let tags = validate_new(new)?;
        let mut ops = OpWriter::new(key.public_key().actor_id());
        write_new(&mut ops, &key.device_id(), new, &tags, &now)?;
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
            id: new.id.clone(),
            case: new.case.clone(),
            created_by: creator.clone(),
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
    /// The last element appended to each list so far (three lists at most).
    tails: Vec<(legacy::ObjectId, legacy::ElementId)>,
}

impl OpWriter {
    fn new(actor: ActorId) -> Self {
        Self {
            actor,
            ops: Vec::with_capacity(128),
            written: Vec::with_capacity(48),
            tails: Vec::with_capacity(3),
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

impl LayoutWriter for OpWriter {
    type Obj = legacy::ObjectId;

    fn root(&self) -> legacy::ObjectId {
        legacy::ObjectId::Root
    }

    fn scalar(
        &mut self,
        obj: &legacy::ObjectId,
        key: &str,
        value: ScalarValue,
    ) -> Result<(), EditError> {
        self.put(obj, key, value);
        Ok(())
    }

    fn object(
        &mut self,
        obj: &legacy::ObjectId,
        key: &str,
        ty: ObjType,
    ) -> Result<legacy::ObjectId, EditError> {
        Ok(self.make(obj, key, ty))
    }

    fn push_map(&mut self, list: &legacy::ObjectId) -> Result<legacy::ObjectId, EditError> {
        let tail = self.tails.iter().position(|(l, _)| l == list);
        let after = tail.map_or(legacy::ElementId::Head, |i| self.tails[i].1.clone());
        let element = self.insert(list, after, legacy::OpType::Make(ObjType::Map));
        match tail {
            Some(i) => self.tails[i].1 = element,
            None => self.tails.push((list.clone(), element)),
        }
        Ok(legacy::ObjectId::Id(self.last_id()))
    }

    fn fill_text(&mut self, obj: &legacy::ObjectId, text: &str) -> Result<(), EditError> {
        // Automerge text holds one element per Unicode scalar value.
        let mut after = legacy::ElementId::Head;
        let mut buf = [0u8; 4];
        for c in text.chars() {
            let value = ScalarValue::from(&*c.encode_utf8(&mut buf));
            after = self.insert(obj, after, legacy::OpType::Put(value));
        }
        Ok(())
    }
}
