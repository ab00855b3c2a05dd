//! The layout of a report document, written in one place: the key names,
//! and the writer of every field that `create`, the fast creating change and
//! the edits share. The table is in the [module doc](super).

use automerge::{ObjType, ScalarValue};
use chrono::{DateTime, FixedOffset, SecondsFormat};

use super::errors::EditError;
use crate::ids::{CaseId, DeviceId, ReportId};
use crate::model::{AttachmentRef, Person, Place, ReviewStatus, TimelineEntry, SCHEMA_VERSION};

// Root keys.
pub(super) const SCHEMA_VERSION_KEY: &str = "schema_version";
pub(super) const ID: &str = "id";
pub(super) const CASE: &str = "case";
pub(super) const CREATED_BY: &str = "created_by";
pub(super) const CREATED_AT: &str = "created_at";
pub(super) const OCCURRED_AT: &str = "occurred_at";
pub(super) const APPROXIMATE: &str = "approximate";
pub(super) const PLACE: &str = "place";
pub(super) const TITLE: &str = "title";
pub(super) const DESCRIPTION: &str = "description";
pub(super) const PEOPLE: &str = "people";
pub(super) const TAGS: &str = "tags";
pub(super) const TIMELINE: &str = "timeline";
pub(super) const REVIEW: &str = "review";
pub(super) const ATTACHMENTS: &str = "attachments";

// Keys of the maps under `place`, `people`, `timeline`, `review` and
// `attachments`.
pub(super) const NAME: &str = "name";
pub(super) const LAT: &str = "lat";
pub(super) const LON: &str = "lon";
pub(super) const ROLE: &str = "role";
pub(super) const NOTE: &str = "note";
pub(super) const AT: &str = "at";
pub(super) const TEXT: &str = "text";
pub(super) const STATUS: &str = "status";
pub(super) const REVIEWER: &str = "reviewer";
pub(super) const REVIEWED_AT: &str = "reviewed_at";
pub(super) const BLOB: &str = "blob";
pub(super) const SIZE: &str = "size";
pub(super) const HEADER: &str = "header";
pub(super) const KEY_EPOCH: &str = "key_epoch";

/// Root keys that only the creating change may write.
pub const IMMUTABLE_KEYS: [&str; 5] = [SCHEMA_VERSION_KEY, ID, CASE, CREATED_BY, CREATED_AT];
/// Root key of the review map, which only coordinators may write.
pub const REVIEW_KEY: &str = REVIEW;

/// A field of a report: a key of the document's root map.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Field {
    SchemaVersion,
    Id,
    Case,
    CreatedBy,
    CreatedAt,
    OccurredAt,
    Approximate,
    Place,
    Title,
    Description,
    People,
    Tags,
    Timeline,
    Review,
    Attachments,
}

impl Field {
    /// Every field, in the order the creating change writes them.
    pub const ALL: [Field; 15] = [
        Field::SchemaVersion,
        Field::Id,
        Field::Case,
        Field::CreatedBy,
        Field::CreatedAt,
        Field::OccurredAt,
        Field::Approximate,
        Field::Place,
        Field::Title,
        Field::Description,
        Field::People,
        Field::Tags,
        Field::Timeline,
        Field::Review,
        Field::Attachments,
    ];

    /// The field's key in the root map.
    pub fn key(self) -> &'static str {
        match self {
            Field::SchemaVersion => SCHEMA_VERSION_KEY,
            Field::Id => ID,
            Field::Case => CASE,
            Field::CreatedBy => CREATED_BY,
            Field::CreatedAt => CREATED_AT,
            Field::OccurredAt => OCCURRED_AT,
            Field::Approximate => APPROXIMATE,
            Field::Place => PLACE,
            Field::Title => TITLE,
            Field::Description => DESCRIPTION,
            Field::People => PEOPLE,
            Field::Tags => TAGS,
            Field::Timeline => TIMELINE,
            Field::Review => REVIEW,
            Field::Attachments => ATTACHMENTS,
        }
    }

    /// The field stored under `key`, if this build knows it.
    pub fn from_key(key: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.key() == key)
    }

    /// Written once, by the creating change.
    pub fn is_immutable(self) -> bool {
        IMMUTABLE_KEYS.contains(&self.key())
    }
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

/// RFC 3339 with the offset as recorded: the offset is evidence of where
/// the reporter's clock was, so it is never normalised to UTC.
pub fn rfc3339(t: &DateTime<FixedOffset>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, false)
}

fn optional_f64(v: Option<f64>) -> ScalarValue {
    v.map_or(ScalarValue::Null, ScalarValue::F64)
}

/// Where the layout is written: a live document (`create` and the edits) or
/// the operations of a change written by hand (the fast creating change).
/// Both get the same operations in the same order from the functions below,
/// which is what keeps their bytes equal.
pub(super) trait LayoutWriter {
    type Obj;
    fn root(&self) -> Self::Obj;
    fn scalar(&mut self, obj: &Self::Obj, key: &str, value: ScalarValue) -> Result<(), EditError>;
    fn object(&mut self, obj: &Self::Obj, key: &str, ty: ObjType) -> Result<Self::Obj, EditError>;
    /// Appends a new map to the list `list`.
    fn push_map(&mut self, list: &Self::Obj) -> Result<Self::Obj, EditError>;
    /// Fills the empty text `obj` with `text`.
    fn fill_text(&mut self, obj: &Self::Obj, text: &str) -> Result<(), EditError>;
}

/// Writes the whole of a new report: every field, so that later edits from
/// any device address the same objects. `new` has passed
/// [`super::validate::validate_new`], which gave `tags`.
pub(super) fn write_new<W: LayoutWriter>(
    w: &mut W,
    creator: &DeviceId,
    new: &NewReport,
    tags: &[String],
    now: &DateTime<FixedOffset>,
) -> Result<(), EditError> {
    let root = w.root();
    w.scalar(&root, SCHEMA_VERSION_KEY, SCHEMA_VERSION.into())?;
    w.scalar(&root, ID, new.id.as_str().into())?;
    w.scalar(&root, CASE, new.case.as_str().into())?;
    w.scalar(&root, CREATED_BY, creator.as_str().into())?;
    w.scalar(&root, CREATED_AT, rfc3339(now).into())?;
    w.scalar(&root, OCCURRED_AT, rfc3339(&new.occurred_at).into())?;
    w.scalar(&root, APPROXIMATE, new.approximate.into())?;
    w.scalar(&root, TITLE, new.title.as_str().into())?;
    let place = w.object(&root, PLACE, ObjType::Map)?;
    let description = w.object(&root, DESCRIPTION, ObjType::Text)?;
    let people = w.object(&root, PEOPLE, ObjType::List)?;
    let tags_map = w.object(&root, TAGS, ObjType::Map)?;
    let timeline = w.object(&root, TIMELINE, ObjType::List)?;
    let review = w.object(&root, REVIEW, ObjType::Map)?;
    w.scalar(&review, STATUS, ReviewStatus::Unverified.as_str().into())?;
    w.object(&root, ATTACHMENTS, ObjType::List)?;

    write_place(w, &place, &new.place)?;
    w.fill_text(&description, &new.description)?;
    for person in &new.people {
        write_person(w, &people, person)?;
    }
    for tag in tags {
        w.scalar(&tags_map, tag, true.into())?;
    }
    for entry in &new.timeline {
        write_timeline_entry(w, &timeline, entry)?;
    }
    Ok(())
}

/// Writes `place` into the place map `obj`.
pub(super) fn write_place<W: LayoutWriter>(
    w: &mut W,
    obj: &W::Obj,
    place: &Place,
) -> Result<(), EditError> {
    w.scalar(obj, NAME, place.name.as_str().into())?;
    w.scalar(obj, LAT, optional_f64(place.lat))?;
    w.scalar(obj, LON, optional_f64(place.lon))
}

/// Appends `person` to the people list `list`.
pub(super) fn write_person<W: LayoutWriter>(
    w: &mut W,
    list: &W::Obj,
    person: &Person,
) -> Result<(), EditError> {
    let obj = w.push_map(list)?;
    w.scalar(&obj, NAME, person.name.as_str().into())?;
    w.scalar(&obj, ROLE, person.role.as_str().into())?;
    w.scalar(&obj, NOTE, person.note.as_str().into())
}

/// Appends `entry` to the timeline list `list`.
pub(super) fn write_timeline_entry<W: LayoutWriter>(
    w: &mut W,
    list: &W::Obj,
    entry: &TimelineEntry,
) -> Result<(), EditError> {
    let obj = w.push_map(list)?;
    w.scalar(&obj, AT, rfc3339(&entry.at).into())?;
    w.scalar(&obj, TEXT, entry.text.as_str().into())?;
    w.scalar(&obj, APPROXIMATE, entry.approximate.into())
}

/// Writes a review into the review map `obj`.
pub(super) fn write_review<W: LayoutWriter>(
    w: &mut W,
    obj: &W::Obj,
    status: ReviewStatus,
    note: &str,
    reviewer: &str,
    at: &DateTime<FixedOffset>,
) -> Result<(), EditError> {
    w.scalar(obj, STATUS, status.as_str().into())?;
    w.scalar(obj, NOTE, note.into())?;
    w.scalar(obj, REVIEWER, reviewer.into())?;
    w.scalar(obj, REVIEWED_AT, rfc3339(at).into())
}

/// Appends `attachment` to the attachments list `list`.
pub(super) fn write_attachment<W: LayoutWriter>(
    w: &mut W,
    list: &W::Obj,
    attachment: &AttachmentRef,
) -> Result<(), EditError> {
    let obj = w.push_map(list)?;
    w.scalar(&obj, ID, attachment.id.as_str().into())?;
    w.scalar(&obj, BLOB, attachment.blob.as_str().into())?;
    w.scalar(&obj, SIZE, attachment.size.into())?;
    w.scalar(&obj, HEADER, attachment.header.as_str().into())?;
    w.scalar(&obj, KEY_EPOCH, attachment.key_epoch.into())
}
