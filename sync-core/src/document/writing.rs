//! Writing: [`ReportDocument`], its creation and its typed edits.

use automerge::transaction::{CommitOptions, Transactable};
use automerge::{AutoCommit, Change, ChangeHash, ObjId, ObjType, ReadDoc, ScalarValue, ROOT};
use chrono::{DateTime, FixedOffset};

use super::errors::{EditError, ViewError};
use super::layout::*;
use super::reading::{get_object, read_report};
use super::validate::*;
use crate::identity::{DeviceKey, PublicKey};
use crate::model::{Edit, Report, MAX_DESCRIPTION_BYTES, MAX_FIELD_BYTES};
use crate::signed_change::SignedChange;

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
        let tags = validate_new(new)?;
        let mut doc = AutoCommit::new();
        doc.set_actor(key.public_key().actor_id());
        if let Err(e) = write_new(&mut Live(&mut doc), &key.device_id(), new, &tags, &now) {
            doc.rollback();
            return Err(e);
        }
        let mut report = Self { doc };
        let change = report
            .commit(key, now)
            .expect("a new report always has operations to commit");
        Ok((report, change))
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
                doc.put(ROOT, TITLE, title.as_str())?;
            }
            Edit::SetDescription(text) => {
                validate_description(text)?;
                let obj = object(doc, &ROOT, DESCRIPTION, ObjType::Text)?;
                doc.update_text(&obj, text)?;
            }
            Edit::AppendDescription(text) => {
                let obj = object(doc, &ROOT, DESCRIPTION, ObjType::Text)?;
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
                doc.put(ROOT, OCCURRED_AT, rfc3339(at))?;
                doc.put(ROOT, APPROXIMATE, *approximate)?;
            }
            Edit::SetPlace(place) => {
                validate_place(place)?;
                let obj = object(doc, &ROOT, PLACE, ObjType::Map)?;
                write_place(&mut Live(doc), &obj, place)?;
            }
            Edit::AddTag(tag) => {
                let tag = normalize_tag(tag)?;
                let obj = object(doc, &ROOT, TAGS, ObjType::Map)?;
                doc.put(&obj, tag, true)?;
            }
            Edit::RemoveTag(tag) => {
                let tag = normalize_tag(tag)?;
                let obj = object(doc, &ROOT, TAGS, ObjType::Map)?;
                if doc.get(&obj, tag.as_str())?.is_some() {
                    doc.delete(&obj, tag.as_str())?;
                }
            }
            Edit::AddPerson(person) => {
                validate_person(person)?;
                let list = object(doc, &ROOT, PEOPLE, ObjType::List)?;
                write_person(&mut Live(doc), &list, person)?;
            }
            Edit::AddTimelineEntry(entry) => {
                validate_timeline_entry(entry)?;
                let list = object(doc, &ROOT, TIMELINE, ObjType::List)?;
                write_timeline_entry(&mut Live(doc), &list, entry)?;
            }
            Edit::SetReview {
                status,
                note,
                reviewer,
                at,
            } => {
                validate_text("a review note", note, MAX_FIELD_BYTES)?;
                let obj = object(doc, &ROOT, REVIEW, ObjType::Map)?;
                write_review(&mut Live(doc), &obj, *status, note, reviewer, at)?;
            }
            Edit::AddAttachment(attachment) => {
                let list = object(doc, &ROOT, ATTACHMENTS, ObjType::List)?;
                write_attachment(&mut Live(doc), &list, attachment)?;
            }
        }
        Ok(())
    }

    /// Reads the typed view; see [`read_report`].
    pub fn view(&self) -> Result<Report, ViewError> {
        read_report(&self.doc)
    }
}

/// The layout written into a live document.
struct Live<'a>(&'a mut AutoCommit);

impl LayoutWriter for Live<'_> {
    type Obj = ObjId;

    fn root(&self) -> ObjId {
        ROOT
    }

    fn scalar(&mut self, obj: &ObjId, key: &str, value: ScalarValue) -> Result<(), EditError> {
        Ok(self.0.put(obj, key, value)?)
    }

    fn object(&mut self, obj: &ObjId, key: &str, ty: ObjType) -> Result<ObjId, EditError> {
        Ok(self.0.put_object(obj, key, ty)?)
    }

    fn push_map(&mut self, list: &ObjId) -> Result<ObjId, EditError> {
        let end = self.0.length(list);
        Ok(self.0.insert_object(list, end, ObjType::Map)?)
    }

    fn fill_text(&mut self, obj: &ObjId, text: &str) -> Result<(), EditError> {
        Ok(self.0.update_text(obj, text)?)
    }
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
