//! What to run: the library's errors say what is wrong; here the CLI adds
//! the command that mends it when it prints one.

use fieldsync_core::device::{DeviceError, TransferError};
use fieldsync_core::envelope::EnvelopeError;
use fieldsync_core::replica::case_keys::CaseKeyStoreError;
use fieldsync_core::replica::{ReplicaError, SecretsError};
use fieldsync_server::store::StoreError;

/// Said after a refused upload whose sealed copy is damaged.
pub const REATTACH: &str =
    "; attach the original file again with `fieldsync edit REPORT_ID --attach FILE`";

/// Said after an import's refusal of a date without a year.
pub const YEAR: &str = " (--year YEAR)";

/// `e` as `{e:#}` prints it, with what to run when the CLI knows it.
pub fn with_hint(e: &anyhow::Error) -> String {
    let hint = e.chain().find_map(|cause| {
        if let Some(e) = cause.downcast_ref::<DeviceError>() {
            return device(e);
        }
        if let Some(e) = cause.downcast_ref::<ReplicaError>() {
            return replica(e);
        }
        if let Some(e) = cause.downcast_ref::<CaseKeyStoreError>() {
            return case_keys(e);
        }
        if let Some(e) = cause.downcast_ref::<SecretsError>() {
            return secrets(e);
        }
        if let Some(TransferError::LocalDamaged) = cause.downcast_ref::<TransferError>() {
            return Some(REATTACH.to_owned());
        }
        if let Some(EnvelopeError::UnknownEpoch(_)) = cause.downcast_ref::<EnvelopeError>() {
            return Some("; add it with `fieldsync key add`".to_owned());
        }
        if let Some(StoreError::UnknownCase(name)) = cause.downcast_ref::<StoreError>() {
            return Some(format!(
                "; create it with `fieldsync admin case create {name}`"
            ));
        }
        None
    });
    format!("{e:#}{}", hint.unwrap_or_default())
}

fn device(e: &DeviceError) -> Option<String> {
    Some(match e {
        DeviceError::NotEnrolled => "; run `fieldsync device enroll --server URL --token TOKEN` with a token from your coordinator".into(),
        DeviceError::AlreadyEnrolled(_) => "; a device belongs to one case, use another --home for another".into(),
        DeviceError::NoImportSalt => "; run `fieldsync sync` once while connected, then import again".into(),
        DeviceError::SyncFailed { .. } => " and go out on the next `fieldsync sync`".into(),
        DeviceError::Replica(e) => return replica(e),
        DeviceError::BadEnrollment(_) | DeviceError::OtherCase { .. } => return None,
    })
}

fn replica(e: &ReplicaError) -> Option<String> {
    match e {
        ReplicaError::NoIdentity => Some("; run `fieldsync device init` first".into()),
        ReplicaError::CaseKey(e) => case_keys(e),
        ReplicaError::Secrets(e) => secrets(e),
        _ => None,
    }
}

fn case_keys(e: &CaseKeyStoreError) -> Option<String> {
    match e {
        CaseKeyStoreError::AlreadyHasKey { case, .. } => Some(format!(
            "; to make a new one use `fieldsync key rotate --case {case}`"
        )),
        CaseKeyStoreError::NoKey(case) => Some(format!(
            "; on a coordinator's device make one with `fieldsync key new --case {case}`; a reporter's device receives the case's public key when it enrolls or syncs (`fieldsync sync`)"
        )),
        _ => None,
    }
}

fn secrets(e: &SecretsError) -> Option<String> {
    match e {
        SecretsError::AlreadySet => {
            Some("; change it with `fieldsync device passphrase change`".into())
        }
        SecretsError::ScrubBusy => Some(
            "; close other fieldsync processes on it and run `fieldsync device passphrase change` (or `set`) again"
                .into(),
        ),
        _ => None,
    }
}
