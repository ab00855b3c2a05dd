//! Keys at rest: the one place where the device key and the case keys are
//! wrapped under the home's passphrase, and unwrapped again.
//!
//! Without a passphrase a key is stored as it is. With one, every stored key
//! is `version (1 byte, = 1) ‖ nonce (12) ‖ AES-256-GCM(key)`, under a key
//! derived from the passphrase with Argon2id. The associated data names what
//! is wrapped (`"fieldsync wrapped key v1\0"` ‖ `device key`, or `case key\0`
//! case name `\0` epoch), so a wrapped key moved to another row does not
//! open. The derivation's parameters and its random salt are kept in the
//! replica's `meta` table under `passphrase`, as JSON, with a wrapped check
//! value that tells a wrong passphrase from a damaged key; they can be raised
//! later by `change_passphrase`, which derives anew with the current defaults.
//!
//! Whether a home has a passphrase is that one `meta` row: setting and
//! removing it rewrite every stored key and the row in one transaction, so
//! the keys are never half wrapped. Afterwards the database is vacuumed and
//! its write-ahead log truncated (with `secure_delete` on for every
//! connection), so no plain copy of a key stays in the replica's files.
//!
//! The passphrase is asked for only when a key is first needed (through the
//! source the caller gave, [`Replica::set_passphrase_source`]), so commands
//! that read reports alone never ask. The derived key is kept, zeroed on drop,
//! for the life of the [`Replica`]; unwrapped keys are handed out and dropped
//! by their users.

use std::cell::RefCell;

use argon2::{Algorithm, Argon2, Params, Version};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use zeroize::Zeroizing;

use super::{Replica, ReplicaError};

/// The fewest characters a passphrase may have.
pub const MIN_PASSPHRASE_CHARS: usize = 8;
/// The `meta` row that holds the derivation's parameters; its presence means
/// the home has a passphrase.
const META_KEY: &str = "passphrase";
const WRAP_VERSION: u8 = 1;
const TAG_LEN: usize = 16;
const AAD_PREFIX: &[u8] = b"fieldsync wrapped key v1\0";
const CHECK_PLAINTEXT: &[u8] = b"fieldsync passphrase check";
const SALT_LEN: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("wrong passphrase for this device home; nothing was changed")]
    WrongPassphrase,
    #[error("this device home is protected by a passphrase: {0}")]
    NoPassphrase(String),
    #[error("the passphrase is too short: use at least {MIN_PASSPHRASE_CHARS} characters")]
    TooShort,
    #[error("this device home already has a passphrase")]
    AlreadySet,
    #[error("this device home has no passphrase")]
    NotSet,
    #[error("the stored {0} does not open under this home's passphrase: it was altered, or copied from another home")]
    Tampered(String),
    #[error(
        "the passphrase settings stored in this device home are damaged or out of bounds: {0}"
    )]
    BadRecord(String),
    #[error("another process holds this device home open, so old copies of its keys may remain in its files")]
    ScrubBusy,
    #[error("the system random number generator failed")]
    Random,
    #[error("deriving a key from the passphrase failed: {0}")]
    Kdf(String),
}

/// A passphrase, zeroed when dropped.
pub struct Passphrase(Zeroizing<String>);

impl Passphrase {
    /// Refuses a passphrase shorter than [`MIN_PASSPHRASE_CHARS`].
    pub fn new(text: String) -> Result<Self, SecretsError> {
        let text = Zeroizing::new(text);
        if text.chars().count() < MIN_PASSPHRASE_CHARS {
            return Err(SecretsError::TooShort);
        }
        Ok(Self(text))
    }

    /// A passphrase from a file's contents: one trailing newline (`\n` or
    /// `\r\n`) is not part of it.
    pub fn from_file_contents(contents: Vec<u8>) -> Result<Self, String> {
        let mut contents = Zeroizing::new(contents);
        if contents.ends_with(b"\n") {
            contents.pop();
            if contents.ends_with(b"\r") {
                contents.pop();
            }
        }
        let text = std::str::from_utf8(&contents)
            .map_err(|_| "the passphrase file is not UTF-8 text".to_owned())?;
        Self::new(text.to_owned()).map_err(|e| e.to_string())
    }

    fn bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl std::fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Passphrase(..)")
    }
}

/// Where the replica gets the passphrase when it first needs a key: a file,
/// a prompt. An `Err` says why there is none and how to give it.
pub type PassphraseSource = Box<dyn FnMut() -> Result<Passphrase, String> + Send>;

/// The cost of the Argon2id derivation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KdfCost {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl KdfCost {
    /// 64 MiB, 3 passes, 1 lane: RFC 9106's second recommended setting
    /// (with one lane, as the `argon2` crate computes lanes one after the
    /// other anyway). About a third of a second on a laptop, once per
    /// command; each guess costs an attacker as much, and 64 MiB per guess
    /// makes a GPU farm far less effective.
    pub const DEFAULT: KdfCost = KdfCost {
        memory_kib: 64 * 1024,
        iterations: 3,
        parallelism: 1,
    };

    /// Bounds on what a stored record may ask for, so a damaged or hostile
    /// home cannot make opening it take all memory or forever.
    fn check(&self) -> Result<(), SecretsError> {
        let ok = (1..=16).contains(&self.parallelism)
            && (8 * self.parallelism..=4 * 1024 * 1024).contains(&self.memory_kib)
            && (1..=64).contains(&self.iterations);
        if ok {
            Ok(())
        } else {
            Err(SecretsError::BadRecord(format!("{self:?}")))
        }
    }
}

/// What the home records about its passphrase (the `meta` row, as JSON).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PassphraseRecord {
    /// Always `argon2id`.
    pub kdf: String,
    /// Argon2 version, 19 (0x13).
    pub version: u32,
    #[serde(flatten)]
    pub cost: KdfCost,
    /// Base64 of the random salt.
    pub salt: String,
    /// Base64 of [`CHECK_PLAINTEXT`] wrapped under the derived key.
    check: String,
}

impl PassphraseRecord {
    fn parse(text: &str) -> Result<Self, SecretsError> {
        let record: Self =
            serde_json::from_str(text).map_err(|e| SecretsError::BadRecord(e.to_string()))?;
        if record.kdf != "argon2id" || record.version != 0x13 {
            return Err(SecretsError::BadRecord(format!(
                "{} version {}",
                record.kdf, record.version
            )));
        }
        record.cost.check()?;
        record.salt()?;
        Ok(record)
    }

    fn salt(&self) -> Result<Vec<u8>, SecretsError> {
        let salt = STANDARD
            .decode(&self.salt)
            .map_err(|_| SecretsError::BadRecord("salt".into()))?;
        if !(SALT_LEN..=64).contains(&salt.len()) {
            return Err(SecretsError::BadRecord("salt length".into()));
        }
        Ok(salt)
    }

    /// A fresh record for `passphrase` (new salt), and the key it derives.
    fn create(passphrase: &Passphrase, cost: KdfCost) -> Result<(Self, Kek), SecretsError> {
        cost.check()?;
        let mut salt = [0u8; SALT_LEN];
        SystemRandom::new()
            .fill(&mut salt)
            .map_err(|_| SecretsError::Random)?;
        let mut record = Self {
            kdf: "argon2id".into(),
            version: 0x13,
            cost,
            salt: STANDARD.encode(salt),
            check: String::new(),
        };
        let kek = record.derive(passphrase)?;
        let check = Sealer::Wrapped(kek.clone()).wrap(&Wrapped::Check, CHECK_PLAINTEXT)?;
        record.check = STANDARD.encode(check);
        Ok((record, kek))
    }

    fn derive(&self, passphrase: &Passphrase) -> Result<Kek, SecretsError> {
        let params = Params::new(
            self.cost.memory_kib,
            self.cost.iterations,
            self.cost.parallelism,
            Some(32),
        )
        .map_err(|e| SecretsError::Kdf(e.to_string()))?;
        let mut kek = Zeroizing::new([0u8; 32]);
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password_into(passphrase.bytes(), &self.salt()?, kek.as_mut())
            .map_err(|e| SecretsError::Kdf(e.to_string()))?;
        Ok(kek)
    }

    /// The key `passphrase` derives, if it is this record's passphrase.
    fn open(&self, passphrase: &Passphrase) -> Result<Kek, SecretsError> {
        let kek = self.derive(passphrase)?;
        let check = STANDARD
            .decode(&self.check)
            .map_err(|_| SecretsError::BadRecord("check".into()))?;
        match Sealer::Wrapped(kek.clone()).unwrap(&Wrapped::Check, &check) {
            Ok(_) => Ok(kek),
            Err(_) => Err(SecretsError::WrongPassphrase),
        }
    }
}

type Kek = Zeroizing<[u8; 32]>;

/// What a wrapped value is; it names the value in the associated data.
pub(crate) enum Wrapped<'a> {
    DeviceKey,
    CaseKey { case: &'a str, epoch: u32 },
    Check,
}

impl Wrapped<'_> {
    fn aad(&self) -> Vec<u8> {
        let mut aad = AAD_PREFIX.to_vec();
        match self {
            Wrapped::DeviceKey => aad.extend_from_slice(b"device key"),
            Wrapped::CaseKey { case, epoch } => {
                aad.extend_from_slice(b"case key\0");
                aad.extend_from_slice(case.as_bytes());
                aad.push(0);
                aad.extend_from_slice(epoch.to_string().as_bytes());
            }
            Wrapped::Check => aad.extend_from_slice(b"passphrase check"),
        }
        aad
    }

    fn label(&self) -> String {
        match self {
            Wrapped::DeviceKey => "device key".into(),
            Wrapped::CaseKey { case, epoch } => format!("key of case {case:?} epoch {epoch}"),
            Wrapped::Check => "passphrase check".into(),
        }
    }
}

/// How keys are stored in a home: as they are, or wrapped.
#[derive(Clone)]
pub(crate) enum Sealer {
    Plain,
    Wrapped(Kek),
}

impl Sealer {
    /// The bytes to store for `plain`.
    pub(crate) fn wrap(&self, what: &Wrapped<'_>, plain: &[u8]) -> Result<Vec<u8>, SecretsError> {
        let Sealer::Wrapped(kek) = self else {
            return Ok(plain.to_vec());
        };
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| SecretsError::Random)?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + plain.len() + TAG_LEN);
        out.push(WRAP_VERSION);
        out.extend_from_slice(&nonce);
        let start = out.len();
        out.extend_from_slice(plain);
        let tag = aead(kek)
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(what.aad()),
                &mut out[start..],
            )
            .map_err(|_| SecretsError::Random)?;
        out.extend_from_slice(tag.as_ref());
        Ok(out)
    }

    /// The plain bytes of a stored value.
    pub(crate) fn unwrap(
        &self,
        what: &Wrapped<'_>,
        stored: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, SecretsError> {
        let Sealer::Wrapped(kek) = self else {
            return Ok(Zeroizing::new(stored.to_vec()));
        };
        let tampered = || SecretsError::Tampered(what.label());
        if stored.len() < 1 + NONCE_LEN + TAG_LEN || stored[0] != WRAP_VERSION {
            return Err(tampered());
        }
        let nonce: [u8; NONCE_LEN] = stored[1..1 + NONCE_LEN]
            .try_into()
            .map_err(|_| tampered())?;
        let mut buf = Zeroizing::new(stored[1 + NONCE_LEN..].to_vec());
        let len = aead(kek)
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(what.aad()),
                &mut buf,
            )
            .map_err(|_| tampered())?
            .len();
        buf.truncate(len);
        Ok(buf)
    }
}

fn aead(kek: &Kek) -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, kek.as_ref()).expect("a 32-byte key"))
}

/// The replica's hold on its passphrase: how to ask for it, and the key it
/// derived once asked.
#[derive(Default)]
pub(crate) struct Vault {
    source: RefCell<Option<PassphraseSource>>,
    unlocked: RefCell<Option<Unlocked>>,
}

struct Unlocked {
    /// The record the key was derived under; another one (a change by
    /// another process) means asking again.
    record: String,
    kek: Kek,
}

impl Vault {
    /// How keys are stored in the home `conn` reads, asking for the
    /// passphrase if it is needed and not yet known.
    pub(crate) fn sealer(&self, conn: &Connection) -> Result<Sealer, ReplicaError> {
        let Some(text) = read_record(conn)? else {
            return Ok(Sealer::Plain);
        };
        if let Some(unlocked) = &*self.unlocked.borrow() {
            if unlocked.record == text {
                return Ok(Sealer::Wrapped(unlocked.kek.clone()));
            }
        }
        let record = PassphraseRecord::parse(&text)?;
        let passphrase = self.ask()?;
        let kek = record.open(&passphrase)?;
        *self.unlocked.borrow_mut() = Some(Unlocked {
            record: text,
            kek: kek.clone(),
        });
        Ok(Sealer::Wrapped(kek))
    }

    fn ask(&self) -> Result<Passphrase, SecretsError> {
        let mut source = self.source.borrow_mut();
        let source = source.as_mut().ok_or_else(|| {
            SecretsError::NoPassphrase("this program gave no way to ask for it".into())
        })?;
        source().map_err(SecretsError::NoPassphrase)
    }
}

fn read_record(conn: &Connection) -> Result<Option<String>, ReplicaError> {
    Ok(conn
        .query_row("SELECT value FROM meta WHERE key = ?1", [META_KEY], |r| {
            r.get(0)
        })
        .optional()?)
}

impl Replica {
    /// Where to get the passphrase when a key is first needed in a home
    /// that has one. Without a source such a home's keys cannot be read.
    pub fn set_passphrase_source(
        &mut self,
        source: impl FnMut() -> Result<Passphrase, String> + Send + 'static,
    ) {
        *self.vault.source.borrow_mut() = Some(Box::new(source));
    }

    /// The derivation's parameters if this home has a passphrase.
    pub fn passphrase(&self) -> Result<Option<PassphraseRecord>, ReplicaError> {
        read_record(&self.conn)?
            .map(|text| PassphraseRecord::parse(&text).map_err(ReplicaError::from))
            .transpose()
    }

    /// Asks for the passphrase now, if the home has one and it was not given
    /// yet: before a write that will need a key, so that no transaction
    /// waits on a person typing.
    pub fn unlock(&self) -> Result<(), ReplicaError> {
        self.vault.sealer(&self.conn).map(drop)
    }

    /// Wraps every key of the home under `new`. Refuses if the home has a
    /// passphrase already.
    pub fn set_passphrase(&mut self, new: &Passphrase, cost: KdfCost) -> Result<(), ReplicaError> {
        if read_record(&self.conn)?.is_some() {
            return Err(SecretsError::AlreadySet.into());
        }
        let (record, kek) = PassphraseRecord::create(new, cost)?;
        self.rewrite(Sealer::Plain, Some((record, kek)))
    }

    /// Rewraps every key under `new`, with a fresh salt and `cost`, after
    /// the current passphrase (from the source) opened them.
    pub fn change_passphrase(
        &mut self,
        new: &Passphrase,
        cost: KdfCost,
    ) -> Result<(), ReplicaError> {
        let current = self.vault.sealer(&self.conn)?;
        if matches!(current, Sealer::Plain) {
            return Err(SecretsError::NotSet.into());
        }
        let (record, kek) = PassphraseRecord::create(new, cost)?;
        self.rewrite(current, Some((record, kek)))
    }

    /// Stores every key plain again, after the current passphrase (from the
    /// source) opened them.
    pub fn remove_passphrase(&mut self) -> Result<(), ReplicaError> {
        let current = self.vault.sealer(&self.conn)?;
        if matches!(current, Sealer::Plain) {
            return Err(SecretsError::NotSet.into());
        }
        self.rewrite(current, None)
    }

    /// Rewrites every stored key from `from` to `to` (plain when `None`) in
    /// one transaction, then scrubs the old copies from the files.
    fn rewrite(
        &mut self,
        from: Sealer,
        to: Option<(PassphraseRecord, Kek)>,
    ) -> Result<(), ReplicaError> {
        let record_text = match &to {
            Some((record, _)) => Some(
                serde_json::to_string(record)
                    .map_err(|e| SecretsError::BadRecord(e.to_string()))?,
            ),
            None => None,
        };
        let to_sealer = match &to {
            Some((_, kek)) => Sealer::Wrapped(kek.clone()),
            None => Sealer::Plain,
        };
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        // Another process may have set or changed the passphrase since
        // `from` was found: then `from` does not open the keys; stop.
        let now_stored = read_record(&tx)?;
        let expected = match (&from, &*self.vault.unlocked.borrow()) {
            (Sealer::Plain, _) => None,
            (Sealer::Wrapped(_), Some(unlocked)) => Some(unlocked.record.clone()),
            (Sealer::Wrapped(_), None) => return Err(SecretsError::WrongPassphrase.into()),
        };
        if now_stored != expected {
            return Err(SecretsError::BadRecord(
                "the passphrase was changed by another process meanwhile; try again".into(),
            )
            .into());
        }
        let identity: Option<Vec<u8>> = tx
            .query_row("SELECT pkcs8 FROM identity WHERE only = 1", [], |r| {
                r.get(0)
            })
            .optional()?;
        if let Some(stored) = identity {
            let plain = from.unwrap(&Wrapped::DeviceKey, &stored)?;
            tx.execute(
                "UPDATE identity SET pkcs8 = ?1 WHERE only = 1",
                [to_sealer.wrap(&Wrapped::DeviceKey, &plain)?],
            )?;
        }
        let case_keys: Vec<(String, u32, Vec<u8>)> = tx
            .prepare("SELECT case_name, epoch, key FROM case_keys")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<_, _>>()?;
        for (case, epoch, stored) in case_keys {
            let what = Wrapped::CaseKey { case: &case, epoch };
            let plain = from.unwrap(&what, &stored)?;
            tx.execute(
                "UPDATE case_keys SET key = ?1 WHERE case_name = ?2 AND epoch = ?3",
                params![to_sealer.wrap(&what, &plain)?, case, epoch],
            )?;
        }
        match &record_text {
            Some(text) => tx.execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![META_KEY, text],
            )?,
            None => tx.execute("DELETE FROM meta WHERE key = ?1", [META_KEY])?,
        };
        tx.commit()?;
        *self.vault.unlocked.borrow_mut() = match (record_text, to) {
            (Some(record), Some((_, kek))) => Some(Unlocked { record, kek }),
            _ => None,
        };
        scrub(&self.conn)
    }
}

/// Rewrites the database without the pages and log frames that held the
/// keys as they were: `secure_delete` (on for every connection of the
/// replica) zeroes freed cells, VACUUM rebuilds every page, and a truncating
/// checkpoint empties the write-ahead log, which holds old page images.
fn scrub(conn: &Connection) -> Result<(), ReplicaError> {
    conn.execute_batch("VACUUM")?;
    let (busy, _, _): (i64, i64, i64) =
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?;
    if busy != 0 {
        return Err(SecretsError::ScrubBusy.into());
    }
    Ok(())
}

#[cfg(test)]
mod tests;
