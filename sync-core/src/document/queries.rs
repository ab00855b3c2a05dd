//! Questions about a document and the changes to it, answered in the
//! layout's terms: which fields a change writes (the server's policy, the
//! review page's history) and which fields concurrent writes left with more
//! than one value (the review page).

use automerge::legacy::{Key, ObjectId, Op, OpId, OpType};
use automerge::{ActorId, Automerge, Change, ObjId, ReadDoc, ScalarValue, Value, ROOT};

use super::layout::{Field, APPROXIMATE, NAME, NOTE, OCCURRED_AT, PLACE, REVIEW, STATUS, TITLE};

/// Where a change writes: one field and how deep in it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Touch {
    pub field: TouchedField,
    pub depth: Depth,
}

/// A root key a change writes, as this build knows it or not.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TouchedField {
    Layout(Field),
    /// A key this build does not know: kept by readers, never interpreted.
    Other(String),
}

impl TouchedField {
    /// The root key.
    pub fn key(&self) -> &str {
        match self {
            TouchedField::Layout(field) => field.key(),
            TouchedField::Other(key) => key,
        }
    }

    fn of(key: &str) -> TouchedField {
        Field::from_key(key)
            .map_or_else(|| TouchedField::Other(key.to_owned()), TouchedField::Layout)
    }
}

/// How deep in its field an operation writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Depth {
    /// The root key itself: the field is set, replaced or deleted.
    Key,
    /// A key or element of the object the field holds now (one of its
    /// values, when concurrent writes left several): a review's status, a
    /// place's name, a character of the description.
    Member,
    /// Further down (a person's name in `people`), or in an object the
    /// field no longer holds, found through the object's ancestry.
    Below,
}

/// What `change` writes, read against `doc`, the document it applies to
/// (before it, for a check; after it, for a history): one [`Touch`] for each
/// field and depth, first write first. Operations on objects `doc` does not
/// hold (made by this same change) count only through the operation that
/// made them.
pub fn fields_touched(doc: &Automerge, change: &Change) -> Vec<Touch> {
    FieldIndex::new(doc).touched(doc, &change.decode().operations)
}

/// A document's root fields by the objects they hold, for reading which
/// fields many changes touch: the root is scanned once, not once per
/// change, and each object below it is traced to its field once.
///
/// The server checks a batch of changes against the stored document before
/// applying any of them: [`FieldIndex::made`] records the objects an
/// admitted change made, so that a later change of the batch that writes
/// into one is read against the field it lies in. An object made at a root
/// key counts as that field's member even if a later change of the batch
/// replaced it, and a member of the stored document stays one even if the
/// batch replaced it: where checking one change at a time would see a
/// replaced object as further down, the batch sees a member, which the
/// policy holds to the stricter rule.
pub struct FieldIndex {
    /// Each root key's current values: a few, so a scan is cheaper than a
    /// map. Scalars stay in: an operation that names one as its object is
    /// still aimed at that field.
    members: Vec<(ObjId, TouchedField)>,
    /// Objects further down, traced to their root key (or to none).
    below: Vec<(ObjectId, Option<TouchedField>)>,
    /// Objects made by changes [`FieldIndex::made`] recorded, with the
    /// touch an operation on them makes.
    made: Vec<(ObjectId, Touch)>,
}

impl FieldIndex {
    pub fn new(doc: &Automerge) -> Self {
        let members = doc
            .keys(ROOT)
            .flat_map(|key| {
                let field = TouchedField::of(&key);
                doc.get_all(ROOT, key.as_str())
                    .unwrap_or_default()
                    .into_iter()
                    .map(move |(_, id)| (id, field.clone()))
            })
            .collect();
        Self {
            members,
            below: Vec::new(),
            made: Vec::new(),
        }
    }

    /// What the operations of one change (decoded) write, as
    /// [`fields_touched`] says.
    pub fn touched(&mut self, doc: &Automerge, ops: &[Op]) -> Vec<Touch> {
        let mut touched: Vec<Touch> = Vec::new();
        for op in ops {
            if let Some(touch) = self.touch(doc, op) {
                if !touched.contains(&touch) {
                    touched.push(touch);
                }
            }
        }
        touched
    }

    fn touch(&mut self, doc: &Automerge, op: &Op) -> Option<Touch> {
        match (&op.obj, &op.key) {
            (ObjectId::Root, Key::Map(key)) => Some(Touch {
                field: TouchedField::of(key),
                depth: Depth::Key,
            }),
            (ObjectId::Root, Key::Seq(_)) => None,
            (ObjectId::Id(_), _) => {
                if let Some((_, field)) =
                    self.members.iter().find(|(id, _)| same_object(id, &op.obj))
                {
                    return Some(Touch {
                        field: field.clone(),
                        depth: Depth::Member,
                    });
                }
                if let Some((_, touch)) = self.made.iter().find(|(obj, _)| obj == &op.obj) {
                    return Some(touch.clone());
                }
                let field = match self.below.iter().find(|(obj, _)| obj == &op.obj) {
                    Some((_, field)) => field.clone(),
                    None => {
                        let field = ancestor_field(doc, &op.obj);
                        self.below.push((op.obj.clone(), field.clone()));
                        field
                    }
                };
                field.map(|field| Touch {
                    field,
                    depth: Depth::Below,
                })
            }
        }
    }

    /// Records the objects that a change (decoded; its first op is
    /// `start_op`, by `actor`) makes, once it is admitted but before it is
    /// applied to `doc`.
    pub fn made(&mut self, doc: &Automerge, start_op: u64, actor: &ActorId, ops: &[Op]) {
        for (i, op) in ops.iter().enumerate() {
            if !matches!(op.action, OpType::Make(_)) {
                continue;
            }
            let inside = match (&op.obj, &op.key) {
                (ObjectId::Root, Key::Map(key)) => Some(Touch {
                    field: TouchedField::of(key),
                    depth: Depth::Member,
                }),
                (ObjectId::Root, Key::Seq(_)) => None,
                (ObjectId::Id(_), _) => self.touch(doc, op).map(|t| Touch {
                    field: t.field,
                    depth: Depth::Below,
                }),
            };
            if let Some(touch) = inside {
                let id = ObjectId::Id(OpId::new(start_op + i as u64, actor));
                self.made.push((id, touch));
            }
        }
    }
}

/// The root key under which `obj` lies, visible or not.
fn ancestor_field(doc: &Automerge, obj: &ObjectId) -> Option<TouchedField> {
    let ObjectId::Id(id) = obj else {
        return None;
    };
    let (obj, _) = doc
        .import(&format!("{}@{}", id.counter(), id.actor()))
        .ok()?;
    match doc.parents(obj).ok()?.last()?.prop {
        automerge::Prop::Map(key) => Some(TouchedField::of(&key)),
        automerge::Prop::Seq(_) => None,
    }
}

fn same_object(obj: &ObjId, legacy: &ObjectId) -> bool {
    match (obj, legacy) {
        (ObjId::Root, ObjectId::Root) => true,
        (ObjId::Id(counter, actor, _), ObjectId::Id(op)) => {
            *counter == op.counter() && actor == op.actor()
        }
        _ => false,
    }
}

/// A single-valued field that concurrent writes can leave with several
/// values, all of which the review page shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ConflictField {
    Title,
    OccurredAt,
    Approximate,
    PlaceName,
    ReviewStatus,
    ReviewNote,
}

impl ConflictField {
    /// The field's name as the review page shows it.
    pub fn label(self) -> &'static str {
        match self {
            ConflictField::Title => "title",
            ConflictField::OccurredAt => "occurred_at",
            ConflictField::Approximate => "approximate",
            ConflictField::PlaceName => "place.name",
            ConflictField::ReviewStatus => "review.status",
            ConflictField::ReviewNote => "review.note",
        }
    }
}

/// A field holding more than one value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    pub field: ConflictField,
    /// Every value, as text: a string as itself, another scalar as
    /// Automerge prints it, an object as its type in parentheses.
    pub values: Vec<String>,
}

/// The single-valued fields of `doc` that hold more than one value after
/// concurrent writes, in [`ConflictField`] order.
pub fn conflicts(doc: &impl ReadDoc) -> Vec<Conflict> {
    let mut out = Vec::new();
    let mut check = |field: ConflictField, obj: &ObjId, key: &str| {
        let values: Vec<String> = doc
            .get_all(obj, key)
            .unwrap_or_default()
            .into_iter()
            .map(|(v, _)| match v {
                Value::Scalar(s) => match s.as_ref() {
                    ScalarValue::Str(t) => t.to_string(),
                    other => other.to_string(),
                },
                Value::Object(t) => format!("({t})"),
            })
            .collect();
        if values.len() > 1 {
            out.push(Conflict { field, values });
        }
    };
    check(ConflictField::Title, &ROOT, TITLE);
    check(ConflictField::OccurredAt, &ROOT, OCCURRED_AT);
    check(ConflictField::Approximate, &ROOT, APPROXIMATE);
    if let Ok(Some((_, place))) = doc.get(ROOT, PLACE) {
        check(ConflictField::PlaceName, &place, NAME);
    }
    if let Ok(Some((_, review))) = doc.get(ROOT, REVIEW) {
        check(ConflictField::ReviewStatus, &review, STATUS);
        check(ConflictField::ReviewNote, &review, NOTE);
    }
    out
}

/// The objects a review edit writes into (the `review`, `place` and `tags`
/// maps), each with its field: the review page checks that a change it is
/// given to sign writes into these and no other.
pub fn review_edit_objects(doc: &impl ReadDoc) -> Vec<(Field, ObjId)> {
    [Field::Review, Field::Place, Field::Tags]
        .into_iter()
        .filter_map(|field| match doc.get(ROOT, field.key()) {
            Ok(Some((Value::Object(_), id))) => Some((field, id)),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests;
