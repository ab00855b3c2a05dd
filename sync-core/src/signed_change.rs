//! An Automerge change with its author's signature beside it.
//!
//! Automerge changes cannot carry a signature inside them, so the signature
//! travels next to the change bytes: in the replica, on the wire and in the
//! server's store. Whoever relays a change relays its signature unchanged, so
//! authorship survives any number of hops.

use std::collections::HashSet;

use automerge::{legacy, Automerge, Change, ChangeHash};
use serde::{Deserialize, Serialize};

use crate::identity::{DeviceKey, Domain, IdentityError, PublicKey, Signature};
use crate::verifying_keys::VerifyingKeys;
use crate::web_login::{
    verify_delegated, LoginCertificate, WebLoginError, DELEGATED_SIGNATURE_LEN,
};
use crate::wire::b64;

/// Change bytes and the author's signature over the change hash, as stored
/// and sent. Not yet checked: call [`SignedChange::verify`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedChange {
    #[serde(with = "b64")]
    pub bytes: Vec<u8>,
    #[serde(with = "b64", rename = "sig")]
    pub signature: Vec<u8>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChangeError {
    #[error("change bytes are not a valid Automerge change: {0}")]
    Malformed(String),
    #[error("change refused before parsing: {0}")]
    OutOfBounds(#[from] crate::change_limits::LimitError),
    #[error("change {hash} has an actor id that is not a fieldsync device key ({len} bytes instead of 32)")]
    ForeignActor { hash: ChangeHash, len: usize },
    #[error("change {hash} was made in a web session: {source}")]
    Session {
        hash: ChangeHash,
        source: WebLoginError,
    },
    #[error("change {hash}: {source}")]
    Signature {
        hash: ChangeHash,
        source: IdentityError,
    },
}

impl SignedChange {
    /// Signs a change the device just made. The device's key must be the
    /// change's actor; [`crate::document::ReportDocument`] guarantees it.
    pub fn sign(change: &Change, key: &DeviceKey) -> Self {
        let signature = key.sign(Domain::Change, &change.hash().0);
        Self {
            bytes: change.raw_bytes().to_vec(),
            signature: signature.as_bytes().to_vec(),
        }
    }

    /// Bounds the change's declared size ([`crate::change_limits`]), parses
    /// it, checks that its actor is an Ed25519 public key and
    /// that the signature over the change hash verifies under that key, or,
    /// for a change made in a web session, that the session's certificate is
    /// signed by a device and the session key signed the change
    /// ([`crate::web_login`]).
    pub fn verify(&self) -> Result<VerifiedChange, ChangeError> {
        self.verify_with(&mut VerifyingKeys::new())
    }

    /// [`SignedChange::verify`], with the keys already decoded by the
    /// caller's earlier checks: a round checks thousands of changes under
    /// one or two keys.
    pub fn verify_with(&self, keys: &mut VerifyingKeys) -> Result<VerifiedChange, ChangeError> {
        // Automerge believes the counts a change declares; bound them first.
        crate::change_limits::check(&self.bytes)?;
        let change = Change::try_from(self.bytes.as_slice())
            .map_err(|e| ChangeError::Malformed(e.to_string()))?;
        let hash = change.hash();
        let actor_bytes = change.actor_id().to_bytes();
        let actor = PublicKey::from_bytes(actor_bytes).map_err(|_| ChangeError::ForeignActor {
            hash,
            len: actor_bytes.len(),
        })?;
        if self.signature.len() == DELEGATED_SIGNATURE_LEN {
            let cert = verify_delegated(
                &self.signature,
                &actor,
                &hash.0,
                change.timestamp().div_euclid(1000),
            )
            .map_err(|source| ChangeError::Session { hash, source })?;
            return Ok(VerifiedChange {
                change,
                signed: self.clone(),
                author: cert.device,
                actor,
                session: Some(cert),
            });
        }
        let signature = Signature::from_bytes(&self.signature)
            .map_err(|source| ChangeError::Signature { hash, source })?;
        keys.verify(&actor, Domain::Change, &hash.0, &signature)
            .map_err(|source| ChangeError::Signature { hash, source })?;
        Ok(VerifiedChange {
            change,
            signed: self.clone(),
            author: actor,
            actor,
            session: None,
        })
    }

    /// Size of this change in the JSON encoding, for bounding requests; an
    /// upper bound on its size in CBOR too (PROTOCOL.md §8.6), where it costs
    /// its bytes, its signature and at most 19 bytes of heads.
    pub fn wire_len(&self) -> usize {
        // {"bytes":"…","sig":"…"}, plus a separating comma
        b64::encoded_len(self.bytes.len()) + b64::encoded_len(self.signature.len()) + 22
    }
}

/// A change whose signature has been checked against its actor.
#[derive(Clone, Debug)]
pub struct VerifiedChange {
    pub change: Change,
    pub signed: SignedChange,
    /// The device answerable for the change: its actor, or the device that
    /// authorised the web session whose key is the actor.
    pub author: PublicKey,
    /// The change's Automerge actor.
    pub actor: PublicKey,
    /// The login certificate, for a change made in a web session.
    pub session: Option<LoginCertificate>,
}

impl VerifiedChange {
    pub fn hash(&self) -> ChangeHash {
        self.change.hash()
    }
}

/// Orders changes so that every change comes after the ones it depends on
/// (among those given), keeping the given order where it is free. Automerge
/// queues a change whose dependencies are missing instead of applying it, and
/// a queued change is not saved, so order matters wherever we apply.
pub fn causal_order(changes: Vec<VerifiedChange>) -> Vec<VerifiedChange> {
    use std::collections::HashMap;
    let in_set: HashSet<ChangeHash> = changes.iter().map(|c| c.hash()).collect();
    let mut placed: HashSet<ChangeHash> = HashSet::with_capacity(changes.len());
    let mut waiting: HashMap<ChangeHash, Vec<usize>> = HashMap::new();
    let mut missing: Vec<usize> = Vec::with_capacity(changes.len());
    for (i, c) in changes.iter().enumerate() {
        missing.push(
            c.change
                .deps()
                .iter()
                .filter(|d| in_set.contains(d) && **d != c.hash())
                .count(),
        );
        for d in c.change.deps() {
            if in_set.contains(d) {
                waiting.entry(*d).or_default().push(i);
            }
        }
    }
    let mut slots: Vec<Option<VerifiedChange>> = changes.into_iter().map(Some).collect();
    let mut out = Vec::with_capacity(slots.len());
    let mut ready: std::collections::VecDeque<usize> =
        (0..slots.len()).filter(|&i| missing[i] == 0).collect();
    while let Some(i) = ready.pop_front() {
        let Some(c) = slots[i].take() else { continue };
        let hash = c.hash();
        if !placed.insert(hash) {
            continue; // a duplicate of a change already placed
        }
        if let Some(children) = waiting.remove(&hash) {
            for child in children {
                missing[child] = missing[child].saturating_sub(1);
                if missing[child] == 0 {
                    ready.push_back(child);
                }
            }
        }
        out.push(c);
    }
    // Whatever is left is in a cycle or waits on a duplicate: keep it at the
    // end, and let the caller's missing-dependency check refuse it.
    out.extend(
        slots
            .into_iter()
            .flatten()
            .filter(|c| !placed.contains(&c.hash())),
    );
    out
}

/// Whether `doc` holds the change `hash`. Cheap, unlike
/// `get_change_by_hash`, which rebuilds the whole change from the op set.
pub fn has_change(doc: &impl automerge::ReadDoc, hash: &ChangeHash) -> bool {
    doc.get_missing_deps(std::slice::from_ref(hash)).is_empty()
}

/// Who answers for a stored change, as far as its signature proves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attribution {
    /// The device answerable for the change; when the signature does not
    /// verify, the device the actor claims to be, if any.
    pub device: Option<PublicKey>,
    /// Made in a web session that `device` authorised.
    pub via_web_session: bool,
    pub signature_verified: bool,
}

/// Checks a stored change's signature and says whom it attributes the
/// change to, without failing: history views show unverified changes too.
pub fn attribute(change: &Change, signature: &[u8]) -> Attribution {
    let signed = SignedChange {
        bytes: change.raw_bytes().to_vec(),
        signature: signature.to_vec(),
    };
    match signed.verify() {
        Ok(v) => Attribution {
            device: Some(v.author),
            via_web_session: v.session.is_some(),
            signature_verified: true,
        },
        Err(_) => Attribution {
            device: PublicKey::from_bytes(change.actor_id().to_bytes()).ok(),
            via_web_session: false,
            signature_verified: false,
        },
    }
}

/// Objects known to exist for changes about to be applied together:
/// made by an earlier one (the document does not hold them yet), or found
/// in the document already. `(counter, actor)` of each.
pub type PendingObjects = HashSet<(u64, automerge::ActorId)>;

/// Refuses, before Automerge sees it, a change it would panic on rather
/// than refuse: counters past `u32::MAX` (Automerge truncates them) or an
/// op on an object that neither `doc`, nor `pending`, nor an earlier op of
/// the change made. On success adds the change's new objects to `pending`.
pub fn check_applicable(
    doc: &Automerge,
    pending: &mut PendingObjects,
    change: &Change,
) -> Result<(), String> {
    let known = objects_applicable(doc, pending, change, &change.decode().operations)?;
    pending.extend(known);
    Ok(())
}

/// [`check_applicable`] over the change's operations, decoded once by the
/// caller, leaving `pending` as it is: returns the objects the change
/// makes and the objects of `doc` it was found to act on, for the caller
/// to add to `pending` once it admits the change (so that a batch looks
/// each object up in the document once).
pub fn objects_applicable(
    doc: &Automerge,
    pending: &PendingObjects,
    change: &Change,
    ops: &[legacy::Op],
) -> Result<Vec<(u64, automerge::ActorId)>, String> {
    if change.seq() > u64::from(u32::MAX) || change.max_op() > u64::from(u32::MAX) {
        return Err("the change's sequence number or op counter is past 2^32".into());
    }
    let actor = change.actor_id();
    let start = change.start_op().get();
    let mut made = Vec::new();
    // Objects of the document this change's ops were already found to act
    // on: most ops of a change share a few objects, and the lookup in the
    // document parses a formatted id, so each is looked up once.
    let mut found = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        if let legacy::ObjectId::Id(id) = &op.obj {
            let key = (id.counter(), id.actor().clone());
            let known = pending.contains(&key) || made.contains(&key) || found.contains(&key);
            if !known {
                if doc
                    .import(&format!("{}@{}", id.counter(), id.actor()))
                    .is_err()
                {
                    return Err(format!(
                        "op {i} acts on object {}@{}, which does not exist",
                        id.counter(),
                        id.actor()
                    ));
                }
                found.push(key);
            }
        }
        if matches!(op.action, legacy::OpType::Make(_)) {
            made.push((start + i as u64, actor.clone()));
        }
    }
    made.extend(found);
    Ok(made)
}
