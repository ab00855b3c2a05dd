//! The machinery behind a home's passphrase: the derivation's record,
//! the key-encryption key, and sealing and opening the keys it wraps (see
//! `secrets/` for what the replica does with it).

use std::cell::RefCell;

use argon2::{Algorithm, Argon2, Params, Version};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use rusqlite::{Connection, OptionalExtension};
use zeroize::Zeroizing;

use super::error::{ReplicaError, SecretsError, MIN_PASSPHRASE_CHARS};

/// The `meta` row that holds the derivation's parameters; its presence means
/// the home has a passphrase.
pub(super) const META_KEY: &str = "passphrase";
pub(super) const WRAP_VERSION: u8 = 1;
pub(super) const TAG_LEN: usize = 16;
pub(super) const AAD_PREFIX: &[u8] = b"fieldsync wrapped key v1\0";
pub(super) const CHECK_PLAINTEXT: &[u8] = b"fieldsync passphrase check";
pub(super) const SALT_LEN: usize = 16;

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

    pub(super) fn bytes(&self) -> &[u8] {
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
    pub(super) fn check(&self) -> Result<(), SecretsError> {
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
    pub(super) fn parse(text: &str) -> Result<Self, SecretsError> {
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

    pub(super) fn salt(&self) -> Result<Vec<u8>, SecretsError> {
        let salt = STANDARD
            .decode(&self.salt)
            .map_err(|_| SecretsError::BadRecord("salt".into()))?;
        if !(SALT_LEN..=64).contains(&salt.len()) {
            return Err(SecretsError::BadRecord("salt length".into()));
        }
        Ok(salt)
    }

    /// A fresh record for `passphrase` (new salt), and the key it derives.
    pub(super) fn create(
        passphrase: &Passphrase,
        cost: KdfCost,
    ) -> Result<(Self, Kek), SecretsError> {
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

    pub(super) fn derive(&self, passphrase: &Passphrase) -> Result<Kek, SecretsError> {
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
    pub(super) fn open(&self, passphrase: &Passphrase) -> Result<Kek, SecretsError> {
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

pub(super) type Kek = Zeroizing<[u8; 32]>;

/// What a wrapped value is; it names the value in the associated data.
pub(crate) enum Wrapped<'a> {
    DeviceKey,
    CaseKey { case: &'a str, epoch: u32 },
    Check,
}

impl Wrapped<'_> {
    pub(super) fn aad(&self) -> Vec<u8> {
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

    pub(super) fn label(&self) -> String {
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

pub(super) fn aead(kek: &Kek) -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, kek.as_ref()).expect("a 32-byte key"))
}

/// The replica's hold on its passphrase: how to ask for it, and the key it
/// derived once asked.
#[derive(Default)]
pub(crate) struct Vault {
    pub(super) source: RefCell<Option<PassphraseSource>>,
    pub(super) unlocked: RefCell<Option<Unlocked>>,
}

pub(super) struct Unlocked {
    /// The record the key was derived under; another one (a change by
    /// another process) means asking again.
    pub(super) record: String,
    pub(super) kek: Kek,
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

    pub(super) fn ask(&self) -> Result<Passphrase, SecretsError> {
        let mut source = self.source.borrow_mut();
        let source = source.as_mut().ok_or_else(|| {
            SecretsError::NoPassphrase("this program gave no way to ask for it".into())
        })?;
        source().map_err(SecretsError::NoPassphrase)
    }
}

pub(super) fn read_record(conn: &Connection) -> Result<Option<String>, ReplicaError> {
    Ok(conn
        .query_row("SELECT value FROM meta WHERE key = ?1", [META_KEY], |r| {
            r.get(0)
        })
        .optional()?)
}
