//! What a bundle takes from a replica and what it gives to one: the whole
//! change history (with signatures) of every report that has something the
//! server has not acknowledged, and the sealed attachments still waiting
//! for upload. Applying a bundle is one transaction; applying it twice, or
//! after the same changes came by sync, adds nothing.

use std::path::Path;

use rusqlite::TransactionBehavior;

use super::error::{OutboxError, ReplicaError};
use super::rounds::{absorb_update, RoundReport};
use super::store::{insert_row, load_document, Replica};
use crate::bundle::{BundleAttachment, BundleDoc};
use crate::protocol::DocUpdate;
use crate::signed_change::SignedChange;

/// What applying a bundle's reports did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct BundleApplied {
    pub reports: usize,
    pub new_reports: usize,
    pub new_changes: usize,
}

impl Replica {
    /// The reports and attachments a bundle of this device must carry.
    pub fn bundle_contents(&self) -> Result<(Vec<BundleDoc>, Vec<BundleAttachment>), ReplicaError> {
        let mut docs = Vec::new();
        for id in self.dirty_ids()? {
            let Some(mut stored) = load_document(&self.conn, &id)? else {
                continue;
            };
            let mut changes = Vec::new();
            for change in stored.doc.get_changes(&[]) {
                let signature = self.signature(&id, &change.hash())?.ok_or_else(|| {
                    ReplicaError::Corrupt(format!(
                        "no signature stored for change {} of report {id}",
                        change.hash()
                    ))
                })?;
                changes.push(SignedChange {
                    bytes: change.raw_bytes().to_vec(),
                    signature,
                });
            }
            docs.push(BundleDoc { id, changes });
        }
        let attachments = self
            .outbox()?
            .into_iter()
            .map(|e| BundleAttachment {
                blob: e.blob,
                report: e.report,
                attachment_id: e.attachment_id,
                size: e.size,
            })
            .collect();
        Ok((docs, attachments))
    }

    /// Applies a verified bundle's reports. Every change is checked against
    /// its author's signature; the new ones become this device's to relay.
    pub fn apply_bundle(&mut self, docs: &[BundleDoc]) -> Result<BundleApplied, ReplicaError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut round = RoundReport::default();
        for doc in docs {
            let update = DocUpdate {
                id: doc.id.clone(),
                changes: doc.changes.clone(),
                heads: Vec::new(),
                complete: false,
                refused: Vec::new(),
            };
            absorb_update(&tx, &update, &mut round)?;
        }
        tx.commit()?;
        Ok(BundleApplied {
            reports: docs.len(),
            new_reports: round.new_reports,
            new_changes: round.received,
        })
    }

    /// Takes a sealed attachment received in a bundle (already checked
    /// against its blob id, in `sealed`) into the outbox, to be uploaded on
    /// the next sync. Returns false when it was already waiting here.
    pub fn receive_attachment(
        &mut self,
        attachment: &BundleAttachment,
        sealed: &Path,
    ) -> Result<bool, ReplicaError> {
        if self.outbox_file(&attachment.blob)?.is_some() {
            let _ = std::fs::remove_file(sealed);
            return Ok(false);
        }
        let dir = self.outbox_dir()?;
        let target = dir.join(&attachment.blob);
        crate::private_fs::create_dir_all(&dir)
            .and_then(|()| std::fs::rename(sealed, &target))
            .map_err(|source| OutboxError::Write {
                path: target.clone(),
                source,
            })?;
        insert_row(
            &self.conn,
            &attachment.blob,
            &attachment.report,
            &attachment.attachment_id,
            attachment.size,
        )?;
        Ok(true)
    }
}
