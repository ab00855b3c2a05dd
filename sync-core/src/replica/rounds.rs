//! The device side of a sync round: which changes are pending, the next
//! bounded request, and absorbing the server's answer in one transaction.

use std::collections::{HashMap, HashSet};

use automerge::{AutoCommit, ChangeHash};
use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};

use super::error::ReplicaError;
use super::store::{
    append_changes, format_heads, heads_differ, is_dirty, load_document, now, parse_heads,
    read_chunks, store_signature, Replica, StoredChunks,
};
use crate::change_limits::{self, ChangeHeader};
use crate::ids::ReportId;
use crate::protocol::{DocUpdate, RefusedChange, SyncRequest, SyncResponse};
use crate::signed_change::SignedChange;
use crate::sync::device::{absorb, pending_hashes, PendingDoc, RequestBuilder, RequestPlan};

/// What one sync round did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoundReport {
    /// Changes this device sent.
    pub sent: usize,
    /// Changes received that the device did not have.
    pub received: usize,
    /// Reports this device had never seen before.
    pub new_reports: usize,
    /// Changes the server refused in this round, with reasons.
    pub refused: Vec<(ReportId, RefusedChange)>,
    /// Another round is needed.
    pub more: bool,
}

/// What a whole sync (all rounds) did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct SyncSummary {
    pub rounds: usize,
    pub sent: usize,
    pub received: usize,
    pub new_reports: usize,
    pub refused: Vec<RefusedReport>,
}

/// A refused change, for the user.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RefusedReport {
    pub report: ReportId,
    pub change: String,
    pub reason: crate::protocol::Refusal,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SyncFailure<E: std::error::Error + 'static> {
    #[error("{0}")]
    Transport(#[source] E),
    #[error(transparent)]
    Replica(#[from] ReplicaError),
    #[error(
        "the server answered without taking or sending anything; nothing was lost, try again later"
    )]
    NoProgress,
}

impl Replica {
    /// Number of changes not yet acknowledged by the server (refused ones excluded).
    pub fn pending_change_count(&self) -> Result<usize, ReplicaError> {
        let mut count = 0;
        for pending in self.pending_docs()? {
            count += pending.changes.len();
        }
        Ok(count)
    }

    /// Changes the server refused, newest last.
    pub fn refused(&self) -> Result<Vec<RefusedReport>, ReplicaError> {
        let mut stmt = self.conn.prepare(
            "SELECT doc_id, hash, reason, message FROM refused ORDER BY refused_at, doc_id, hash",
        )?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter()
            .map(|(doc, hash, reason, message)| {
                Ok(RefusedReport {
                    report: doc
                        .parse()
                        .map_err(|e| ReplicaError::Corrupt(format!("{e}")))?,
                    change: hash,
                    reason: serde_json::from_value(serde_json::Value::String(reason.clone()))
                        .map_err(|_| ReplicaError::Corrupt(format!("refusal reason {reason:?}")))?,
                    message,
                })
            })
            .collect()
    }

    pub(super) fn pending_docs(&self) -> Result<Vec<PendingDoc>, ReplicaError> {
        let mut out = Vec::new();
        for id in self.dirty_ids()? {
            if let Some(pending) = self.pending_doc(&id)? {
                out.push(pending);
            }
        }
        Ok(out)
    }

    pub(super) fn dirty_ids(&self) -> Result<Vec<ReportId>, ReplicaError> {
        self.query_ids("SELECT id FROM documents WHERE dirty = 1 ORDER BY updated_at, id")
    }

    pub(super) fn pending_doc(&self, id: &ReportId) -> Result<Option<PendingDoc>, ReplicaError> {
        let Some(stored) = read_chunks(&self.conn, id)? else {
            return Ok(None);
        };
        let refused = refused_hashes(&self.conn, id)?;
        // A report's changes are usually still the chunks it was stored as
        // (its first change as the snapshot, each later one in the log,
        // until the log is compacted): send those bytes rather than rebuild
        // every change from the op set, which was half of what building a
        // request cost (issue 16).
        let headers = chunk_headers(&stored);
        let written = written_changes(&stored, &headers);
        let mut loaded = None;
        let hashes = match every_change_unsent(&stored.acked, &headers, &refused) {
            Some(hashes) => hashes,
            None => {
                let doc = loaded.insert(stored.load_doc(id)?);
                pending_hashes(doc, &stored.acked, &refused)
            }
        };
        if hashes.is_empty() {
            return Ok(None);
        }
        let mut signed = Vec::with_capacity(hashes.len());
        for hash in hashes {
            let signature = self.signature(id, &hash)?.ok_or_else(|| {
                ReplicaError::Corrupt(format!(
                    "no signature stored for change {hash} of report {id}"
                ))
            })?;
            let bytes = match written.get(&hash) {
                Some(range) => stored.bytes[range.clone()].to_vec(),
                None => {
                    let doc = match &mut loaded {
                        Some(doc) => doc,
                        None => loaded.insert(stored.load_doc(id)?),
                    };
                    doc.get_change_by_hash(&hash)
                        .ok_or_else(|| {
                            ReplicaError::Corrupt(format!("report {id} lost its change {hash}"))
                        })?
                        .raw_bytes()
                        .to_vec()
                }
            };
            signed.push(SignedChange { bytes, signature });
        }
        Ok(Some(PendingDoc {
            id: id.clone(),
            base_heads: stored.acked,
            changes: signed,
        }))
    }

    /// Builds the next sync request, at most `max_bytes` long.
    pub fn prepare_sync(&self, max_bytes: usize) -> Result<RequestPlan, ReplicaError> {
        // One read transaction for every query below: outside one, SQLite
        // takes and drops its file locks for each of them, a quarter of
        // what building a request cost (issue 16).
        let read = self.conn.unchecked_transaction()?;
        let mut builder = RequestBuilder::new(self.cursor()?, max_bytes);
        // Load documents one at a time and stop once the request is full:
        // a device with thousands of pending reports sends a few per round.
        for id in self.dirty_ids()? {
            if let Some(pending) = self.pending_doc(&id)? {
                if !builder.offer(pending) {
                    break;
                }
            }
        }
        read.finish()?;
        Ok(builder.finish())
    }

    /// Absorbs the server's answer to `request`, in one transaction.
    pub fn complete_sync(
        &mut self,
        request: &SyncRequest,
        response: &SyncResponse,
    ) -> Result<RoundReport, ReplicaError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut report = RoundReport {
            sent: request.docs.iter().map(|d| d.changes.len()).sum(),
            more: response.more,
            ..RoundReport::default()
        };
        for update in &response.docs {
            absorb_update(&tx, update, &mut report)?;
        }
        let cursor: u64 = tx
            .query_row("SELECT value FROM meta WHERE key = 'cursor'", [], |r| {
                r.get::<_, String>(0)
            })
            .optional()?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('cursor', ?1)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [cursor.max(response.cursor).to_string()],
        )?;
        tx.commit()?;
        Ok(report)
    }

    /// Syncs until nothing is pending and the feed is drained, one bounded
    /// request per round. `send` carries a request to the server and back.
    /// Whatever happens, nothing recorded is lost: each round commits on its
    /// own, and an error leaves the replica as the last good round left it.
    pub fn sync<E, F>(
        &mut self,
        max_request_bytes: usize,
        mut send: F,
        mut on_round: impl FnMut(&RoundReport),
    ) -> Result<SyncSummary, SyncFailure<E>>
    where
        E: std::error::Error + 'static,
        F: FnMut(&SyncRequest) -> Result<SyncResponse, E>,
    {
        let mut summary = SyncSummary::default();
        loop {
            let plan = self.prepare_sync(max_request_bytes)?;
            let cursor_before = plan.request.cursor;
            let response = send(&plan.request).map_err(SyncFailure::Transport)?;
            let round = self.complete_sync(&plan.request, &response)?;
            on_round(&round);
            summary.rounds += 1;
            summary.sent += round.sent;
            summary.received += round.received;
            summary.new_reports += round.new_reports;
            summary
                .refused
                .extend(round.refused.iter().map(|(report, r)| RefusedReport {
                    report: report.clone(),
                    change: r.hash.to_string(),
                    reason: r.reason,
                    message: r.message.clone(),
                }));
            let more = round.more || !plan.complete;
            if !more {
                return Ok(summary);
            }
            let progressed =
                round.sent > 0 || round.received > 0 || response.cursor > cursor_before;
            if !progressed {
                return Err(SyncFailure::NoProgress);
            }
        }
    }
}

/// Each stored chunk's header, in stored order: `None` for a chunk that is
/// not one whole change (a saved document, a compressed change).
fn chunk_headers(stored: &StoredChunks) -> Vec<Option<ChangeHeader>> {
    stored
        .chunks
        .iter()
        .map(|range| change_limits::change_header(&stored.bytes[range.clone()]).ok())
        .collect()
}

/// Where in a report's stored bytes each change stored as its own chunk
/// lies, by hash: its bytes, byte for byte, are the change with that hash,
/// found at a twentieth of the cost of parsing them.
fn written_changes(
    stored: &StoredChunks,
    headers: &[Option<ChangeHeader>],
) -> HashMap<ChangeHash, std::ops::Range<usize>> {
    stored
        .chunks
        .iter()
        .zip(headers)
        .filter_map(|(range, header)| Some((header.as_ref()?.hash, range.clone())))
        .collect()
}

/// A report's pending changes without loading it, when that is certain:
/// the server never acknowledged any of it and refused none, and every
/// stored chunk is one change, each after the changes it depends on. Then
/// what [`pending_hashes`] would find in the loaded report is every chunk,
/// and their stored order is a causal one. `None` when any of that does
/// not hold: load the report and ask it. Loading was a third of what
/// building a request cost a device back from the field with new reports
/// (issue 16).
fn every_change_unsent(
    acked: &[ChangeHash],
    headers: &[Option<ChangeHeader>],
    refused: &HashSet<ChangeHash>,
) -> Option<Vec<ChangeHash>> {
    if !acked.is_empty() || !refused.is_empty() {
        return None;
    }
    let mut seen: HashSet<ChangeHash> = HashSet::with_capacity(headers.len());
    let mut order = Vec::with_capacity(headers.len());
    for header in headers {
        let header = header.as_ref()?;
        if !header.deps.iter().all(|d| seen.contains(d)) || !seen.insert(header.hash) {
            return None;
        }
        order.push(header.hash);
    }
    Some(order)
}

fn refused_hashes(conn: &Connection, id: &ReportId) -> Result<HashSet<ChangeHash>, ReplicaError> {
    let mut stmt = conn.prepare_cached("SELECT hash FROM refused WHERE doc_id = ?1")?;
    let hashes = stmt
        .query_map([id.as_str()], |r| r.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    hashes
        .iter()
        .map(|h| {
            h.parse()
                .map_err(|_| ReplicaError::Corrupt(format!("refused hash {h:?}")))
        })
        .collect()
}

pub(super) fn absorb_update(
    tx: &Transaction<'_>,
    update: &DocUpdate,
    report: &mut RoundReport,
) -> Result<(), ReplicaError> {
    if update.changes.is_empty() && acknowledge_without_loading(tx, update)? {
        return record_refusals(tx, update, report);
    }
    let existing = load_document(tx, &update.id)?;
    let is_new = existing.is_none();
    let (mut doc, log_len, acked) = match existing {
        Some(s) => (s.doc, s.log_len, s.acked),
        None if update.changes.is_empty() => return record_refusals(tx, update, report),
        None => (AutoCommit::new(), 0, Vec::new()),
    };
    let absorbed = absorb(&mut doc, update)?;
    let acked = absorbed.acked.unwrap_or(acked);
    if is_new {
        report.new_reports += 1;
        tx.execute(
            "INSERT INTO documents (id, snapshot, log_len, acked_heads, dirty, updated_at, heads)
             VALUES (?1, ?2, 0, ?3, ?4, ?5, ?6)",
            params![
                update.id.as_str(),
                doc.save(),
                format_heads(&acked),
                is_dirty(&mut doc, &acked),
                now().to_rfc3339(),
                format_heads(&doc.get_heads())
            ],
        )?;
    } else {
        let bytes: Vec<Vec<u8>> = absorbed
            .applied
            .iter()
            .map(|v| v.signed.bytes.clone())
            .collect();
        append_changes(tx, &update.id, &mut doc, log_len, &bytes, &acked)?;
    }
    for v in &absorbed.applied {
        store_signature(tx, &update.id, &v.hash(), &v.signed.signature)?;
    }
    report.received += absorbed.applied.len();
    record_refusals(tx, update, report)
}

/// The common answer to what a device sent: no changes, and heads that
/// are the document's own. What [`absorb`] would decide from the loaded
/// report follows from the heads stored beside it, so the report is not
/// loaded. Returns `false`, having written nothing, when the stored heads
/// are unknown (see the schema's `documents_heads_stale`) or the server's
/// heads are not among them; the caller then loads the report.
fn acknowledge_without_loading(
    tx: &Transaction<'_>,
    update: &DocUpdate,
) -> Result<bool, ReplicaError> {
    let row: Option<(Option<String>, String)> = tx
        .prepare_cached("SELECT heads, acked_heads FROM documents WHERE id = ?1")?
        .query_row([update.id.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let Some((Some(heads), acked)) = row else {
        return Ok(false);
    };
    let heads = parse_heads(&heads)?;
    if !update.heads.iter().all(|h| heads.contains(h)) {
        return Ok(false);
    }
    let acked = if update.complete && !update.heads.is_empty() {
        update.heads.clone()
    } else {
        parse_heads(&acked)?
    };
    let formatted = format_heads(&acked);
    tx.prepare_cached(
        "UPDATE documents SET acked_heads = ?2, dirty = ?3, updated_at = ?4 WHERE id = ?1",
    )?
    .execute(params![
        update.id.as_str(),
        formatted,
        heads_differ(heads, acked),
        now().to_rfc3339()
    ])?;
    Ok(true)
}

fn record_refusals(
    tx: &Transaction<'_>,
    update: &DocUpdate,
    report: &mut RoundReport,
) -> Result<(), ReplicaError> {
    for refused in &update.refused {
        let reason = serde_json::to_value(refused.reason)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        tx.execute(
            "INSERT OR IGNORE INTO refused (doc_id, hash, reason, message, refused_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![update.id.as_str(), refused.hash.to_string(), reason, refused.message, now().to_rfc3339()],
        )?;
        report.refused.push((update.id.clone(), refused.clone()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::model::{DeviceRole, Edit};
    use crate::protocol::DEFAULT_MAX_REQUEST_BYTES as MIB;
    use crate::sync::tests::World;

    use super::*;

    /// The device's stored heads, `None` when unknown.
    fn stored_heads(replica: &Replica, id: &ReportId) -> Option<String> {
        replica
            .conn
            .query_row(
                "SELECT heads FROM documents WHERE id = ?1",
                [id.as_str()],
                |r| r.get(0),
            )
            .unwrap()
    }

    #[test]
    fn an_edit_made_while_its_report_was_being_sent_is_sent_next_time() {
        let mut w = World::new(&[DeviceRole::Reporter, DeviceRole::Coordinator]);
        let id = w.record(0, "Checkpoint on the ring road");
        let plan = w.devices[0].replica.prepare_sync(MIB).unwrap();
        let response = w.serve(0, &plan.request);
        // The reporter edits before the answer arrives: the acknowledgement
        // names heads the report has moved past, and must not clear it.
        w.devices[0]
            .replica
            .edit_report(&id, &[Edit::AddTag("checkpoint".into())])
            .unwrap();
        w.devices[0]
            .replica
            .complete_sync(&plan.request, &response)
            .unwrap();
        assert_eq!(w.devices[0].replica.pending_change_count().unwrap(), 1);
        assert_eq!(w.sync(0, MIB).sent, 1);
        w.sync(1, MIB);
        assert_eq!(
            w.devices[1].replica.report(&id).unwrap().tags,
            std::collections::BTreeSet::from(["checkpoint".to_owned()])
        );
    }

    /// A request sends each change as the chunk it was stored as, and
    /// rebuilds from the report only those a compacted log no longer holds:
    /// either way the bytes are the ones Automerge rebuilds.
    #[test]
    fn a_request_sends_stored_chunks_and_rebuilds_only_what_compaction_folded_away() {
        let mut w = World::new(&[DeviceRole::Reporter, DeviceRole::Coordinator]);
        let id = w.record(0, "Roadblock at the river crossing");
        let edits = crate::replica::store::COMPACT_AFTER as usize + 6;
        for n in 0..edits {
            w.devices[0]
                .replica
                .edit_report(&id, &[Edit::AddTag(format!("t{n}"))])
                .unwrap();
        }
        let replica = &w.devices[0].replica;
        let stored = read_chunks(&replica.conn, &id).unwrap().unwrap();
        assert!(
            change_chunk_hash(&stored.bytes[stored.chunks[0].clone()]).is_none(),
            "the log was compacted: the snapshot is a saved document"
        );
        assert!(stored.chunks.len() > 1, "and later changes are in the log");
        let rebuilt: HashMap<ChangeHash, Vec<u8>> = stored
            .load_doc(&id)
            .unwrap()
            .get_changes(&[])
            .into_iter()
            .map(|c| (c.hash(), c.raw_bytes().to_vec()))
            .collect();
        let request = replica.prepare_sync(MIB).unwrap().request;
        let sent = &request.docs[0].changes;
        assert_eq!(sent.len(), edits + 1);
        for change in sent {
            let hash = automerge::Change::try_from(change.bytes.as_slice())
                .unwrap()
                .hash();
            assert_eq!(Some(&change.bytes), rebuilt.get(&hash));
        }
        // A stored change chunk is recognised by its hash; a cut one, two
        // together, or one whose checksum is not its hash's are not.
        let last = stored.chunks.last().unwrap().clone();
        let chunk = &stored.bytes[last];
        let hash = automerge::Change::try_from(chunk).unwrap().hash();
        assert_eq!(change_chunk_hash(chunk), Some(hash));
        assert_eq!(change_chunk_hash(&chunk[..chunk.len() - 1]), None);
        assert_eq!(change_chunk_hash(&[chunk, chunk].concat()), None);
        let mut checksum = chunk.to_vec();
        checksum[4] ^= 1;
        assert_eq!(change_chunk_hash(&checksum), None);
        // And the server takes them all.
        assert_eq!(w.sync(0, MIB).sent, edits + 1);
        w.sync(1, MIB);
        assert_eq!(w.devices[1].replica.report(&id).unwrap().tags.len(), edits);
    }

    /// A report recorded on device 0, then tagged `t0`, `t1`, ... in
    /// `tags` edits.
    fn tagged_report(w: &mut World, title: &str, tags: usize) -> ReportId {
        let id = w.record(0, title);
        for n in 0..tags {
            w.devices[0]
                .replica
                .edit_report(&id, &[Edit::AddTag(format!("t{n}"))])
                .unwrap();
        }
        id
    }

    /// The report's pending changes as read without loading it, if they
    /// can be.
    fn unsent_without_loading(replica: &Replica, id: &ReportId) -> Option<Vec<ChangeHash>> {
        let stored = read_chunks(&replica.conn, id).unwrap().unwrap();
        every_change_unsent(&stored.acked, &chunk_headers(&stored), &HashSet::new())
    }

    /// The hash of a chunk that is one whole uncompressed change.
    fn change_chunk_hash(chunk: &[u8]) -> Option<ChangeHash> {
        change_limits::change_header(chunk).ok().map(|h| h.hash)
    }

    /// The hashes a request offers for report `id`, in the order sent.
    fn offered(replica: &Replica, id: &ReportId) -> Vec<ChangeHash> {
        let request = replica.prepare_sync(MIB).unwrap().request;
        let offer = request.docs.iter().find(|d| &d.id == id).unwrap();
        offer
            .changes
            .iter()
            .map(|c| {
                automerge::Change::try_from(c.bytes.as_slice())
                    .unwrap()
                    .hash()
            })
            .collect()
    }

    /// Whether every change in `order` comes after those it depends on.
    fn causal(doc: &mut AutoCommit, order: &[ChangeHash]) -> bool {
        order.iter().enumerate().all(|(i, hash)| {
            doc.get_change_by_hash(hash)
                .unwrap()
                .deps()
                .iter()
                .all(|d| order[..i].contains(d))
        })
    }

    /// A report the server has never seen, as a device back from the field
    /// holds many: its pending changes are read from the stored chunks
    /// without loading it, and they are the ones loading it finds, each
    /// after its dependencies.
    #[test]
    fn an_unsent_report_is_offered_without_loading_it_and_the_same_changes() {
        let mut w = World::new(&[DeviceRole::Reporter, DeviceRole::Coordinator]);
        let id = tagged_report(&mut w, "Detentions at the market", 5);
        let replica = &w.devices[0].replica;
        let stored = read_chunks(&replica.conn, &id).unwrap().unwrap();
        let fast = unsent_without_loading(replica, &id).expect("read from the chunks");
        let mut doc = stored.load_doc(&id).unwrap();
        let loaded = pending_hashes(&mut doc, &[], &HashSet::new());
        assert_eq!(fast.len(), 6);
        assert_eq!(
            fast.iter().collect::<HashSet<_>>(),
            loaded.iter().collect::<HashSet<_>>()
        );
        assert!(causal(&mut doc, &fast));
        assert_eq!(offered(replica, &id), fast);
        // Anything the server refused, or acknowledged, needs the report.
        let refused = HashSet::from([fast[3]]);
        assert!(every_change_unsent(&stored.acked, &chunk_headers(&stored), &refused).is_none());
        assert_eq!(w.sync(0, MIB).sent, 6);
        w.devices[0]
            .replica
            .edit_report(&id, &[Edit::AddTag("later".into())])
            .unwrap();
        let replica = &w.devices[0].replica;
        assert!(unsent_without_loading(replica, &id).is_none());
        assert_eq!(offered(replica, &id).len(), 1);
        w.sync(0, MIB);
        w.sync(1, MIB);
        assert_eq!(w.devices[1].replica.report(&id).unwrap().tags.len(), 6);
    }

    /// A log whose rows are not in causal order (no device writes one, but
    /// a replica is a file) is not trusted for the order: the report is
    /// loaded, and what is sent is still a causal order the server takes.
    #[test]
    fn a_log_out_of_causal_order_is_offered_from_the_loaded_report() {
        let mut w = World::new(&[DeviceRole::Reporter, DeviceRole::Coordinator]);
        let id = tagged_report(&mut w, "Checkpoint on the ring road", 3);
        let conn = &w.devices[0].replica.conn;
        let seqs: Vec<i64> = conn
            .prepare("SELECT seq FROM change_log WHERE doc_id = ?1 ORDER BY seq")
            .unwrap()
            .query_map([id.as_str()], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(seqs.len(), 3);
        // The second edit before the first, which it depends on.
        conn.execute_batch(&format!(
            "UPDATE change_log SET seq = -1 WHERE seq = {a};
             UPDATE change_log SET seq = {a} WHERE seq = {b};
             UPDATE change_log SET seq = {b} WHERE seq = -1;",
            a = seqs[0],
            b = seqs[1]
        ))
        .unwrap();
        let replica = &w.devices[0].replica;
        assert!(unsent_without_loading(replica, &id).is_none());
        let sent = offered(replica, &id);
        let mut doc = load_document(&replica.conn, &id).unwrap().unwrap().doc;
        assert_eq!(sent.len(), 4);
        assert!(causal(&mut doc, &sent));
        let summary = w.sync(0, MIB);
        assert_eq!(summary.sent, 4);
        assert!(summary.refused.is_empty());
        w.sync(1, MIB);
        assert_eq!(w.devices[1].replica.report(&id).unwrap().tags.len(), 3);
    }

    #[test]
    fn an_acknowledgement_needs_no_stored_heads_and_leaves_them_known() {
        let mut w = World::new(&[DeviceRole::Reporter, DeviceRole::Coordinator]);
        let known = w.record(0, "heads kept");
        let unknown = w.record(0, "heads lost");
        for id in [&known, &unknown] {
            w.devices[0]
                .replica
                .edit_report(id, &[Edit::AppendDescription("more".into())])
                .unwrap();
            assert!(stored_heads(&w.devices[0].replica, id).is_some());
        }
        // As a replica from before the column, or after a write that did not
        // record the heads: the acknowledgement loads the report instead.
        w.devices[0]
            .replica
            .conn
            .execute(
                "UPDATE documents SET heads = NULL WHERE id = ?1",
                [unknown.as_str()],
            )
            .unwrap();
        let summary = w.sync(0, MIB);
        assert_eq!(summary.sent, 4);
        assert_eq!(w.devices[0].replica.pending_change_count().unwrap(), 0);
        let dirty: i64 = w.devices[0]
            .replica
            .conn
            .query_row("SELECT sum(dirty) FROM documents", [], |r| r.get(0))
            .unwrap();
        assert_eq!(dirty, 0);
        assert!(stored_heads(&w.devices[0].replica, &known).is_some());
    }

    #[test]
    fn a_write_to_a_report_that_does_not_record_its_heads_forgets_them() {
        let mut w = World::new(&[DeviceRole::Reporter]);
        let id = w.record(0, "trigger");
        w.devices[0]
            .replica
            .edit_report(&id, &[Edit::AppendDescription("more".into())])
            .unwrap();
        let conn = &w.devices[0].replica.conn;
        conn.execute(
            "UPDATE documents SET log_len = log_len + 0 WHERE id = ?1",
            [id.as_str()],
        )
        .unwrap();
        assert!(
            stored_heads(&w.devices[0].replica, &id).is_some(),
            "an unchanged log keeps the heads"
        );
        w.devices[0]
            .replica
            .conn
            .execute(
                "UPDATE documents SET snapshot = snapshot || x'00' WHERE id = ?1",
                [id.as_str()],
            )
            .unwrap();
        assert_eq!(stored_heads(&w.devices[0].replica, &id), None);
    }
}
