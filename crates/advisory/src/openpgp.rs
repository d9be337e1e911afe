//! The PSIRT's OpenPGP signing key (rPGP, pure Rust): ASCII-armored detached signatures of
//! the CSAF documents (CSAF 2.0 section 7.1.19) and the public key the provider metadata
//! lists (section 7.1.20).
//!
//! A key is accepted only when it can sign now: it parses as one transferable secret key,
//! its self-signatures verify, the primary key is neither revoked nor expired, a component
//! with the signing flag (the primary key or a subkey, the newest one as GnuPG picks it) is
//! neither revoked nor expired, the passphrase (if any) unlocks it, and a probe signature
//! verifies. The secret material is unlocked once, at load, and kept in memory only.

use std::fmt;
use std::io::Read as _;
use std::path::Path;
use std::sync::Arc;

use pgp::composed::{
    ArmorOptions, Deserializable, DetachedSignature, SignedPublicKey, SignedSecretKey, SignedSecretSubKey,
};
use pgp::packet::{Signature, SignatureType};
use pgp::types::{KeyDetails, Password, SigningKey as _};
use time::OffsetDateTime;

/// Largest key file read (an armored RSA-4096 key with a few subkeys is ~20 KiB).
pub const MAX_KEY_FILE_BYTES: u64 = 1024 * 1024;
/// Largest passphrase file read.
pub const MAX_PASSPHRASE_FILE_BYTES: u64 = 4096;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("failed to read {}: {source}", path.display())]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is larger than {limit} bytes", path.display())]
    TooLarge { path: std::path::PathBuf, limit: u64 },
    #[error("not an ASCII-armored OpenPGP secret key: {0}")]
    Parse(String),
    #[error("the key's self-signatures do not verify: {0}")]
    Bindings(String),
    #[error("the key {0} is revoked")]
    Revoked(String),
    #[error("the key {fingerprint} expired at {at}")]
    Expired { fingerprint: String, at: String },
    #[error(
        "the key {0} has no usable signing key (no unexpired, unrevoked primary key or subkey with the signing flag)"
    )]
    CannotSign(String),
    #[error("the passphrase does not unlock the signing key {0}: {1}")]
    Passphrase(String, String),
    #[error("signing failed: {0}")]
    Sign(String),
}

/// A loaded signing key. Cheap to clone; never prints secret material.
#[derive(Clone)]
pub struct SigningKey(Arc<Inner>);

struct Inner {
    secret: SignedSecretKey,
    /// `None`: the primary key signs; else the index in `secret.secret_subkeys`.
    subkey: Option<usize>,
    fingerprint: String,
    signer_fingerprint: String,
    public_armored: String,
    expires_at: Option<OffsetDateTime>,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("fingerprint", &self.0.fingerprint)
            .field("signer", &self.0.signer_fingerprint)
            .field("expires_at", &self.0.expires_at)
            .finish_non_exhaustive()
    }
}

fn read_limited(path: &Path, limit: u64) -> Result<Vec<u8>, KeyError> {
    let io = |source| KeyError::Io { path: path.to_path_buf(), source };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut bytes = Vec::new();
    file.take(limit + 1).read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() as u64 > limit {
        return Err(KeyError::TooLarge { path: path.to_path_buf(), limit });
    }
    Ok(bytes)
}

fn at(t: OffsetDateTime) -> String {
    crate::timestamp(t)
}

fn from_secs(secs: u64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp(i64::try_from(secs).ok()?).ok()
}

/// The newest signature of the given types (by creation time).
fn newest<'a>(
    sigs: impl IntoIterator<Item = &'a Signature>,
    types: &[SignatureType],
) -> Option<&'a Signature> {
    sigs.into_iter()
        .filter(|s| s.typ().is_some_and(|t| types.contains(&t)))
        .max_by_key(|s| s.created().map(pgp::types::Timestamp::as_secs))
}

/// When a component created at `created` expires under its newest self-signature.
fn expiry(created: u32, sig: Option<&Signature>) -> Option<OffsetDateTime> {
    // Zero means "does not expire", like no subpacket at all.
    let d = sig?.key_expiration_time()?.as_secs();
    if d == 0 {
        return None;
    }
    from_secs(u64::from(created) + u64::from(d))
}

const CERTIFICATIONS: [SignatureType; 5] = [
    SignatureType::CertGeneric,
    SignatureType::CertPersona,
    SignatureType::CertCasual,
    SignatureType::CertPositive,
    SignatureType::Key,
];

impl SigningKey {
    /// Loads the armored secret key file and the optional passphrase file (its first line;
    /// surrounding whitespace is ignored) and checks the key can sign at `now`.
    pub fn load(
        key_file: &Path,
        passphrase_file: Option<&Path>,
        now: OffsetDateTime,
    ) -> Result<Self, KeyError> {
        let key = read_limited(key_file, MAX_KEY_FILE_BYTES)?;
        let key = String::from_utf8(key).map_err(|_| KeyError::Parse("the file is not text".to_owned()))?;
        let passphrase = match passphrase_file {
            Some(path) => {
                let bytes = read_limited(path, MAX_PASSPHRASE_FILE_BYTES)?;
                let text = String::from_utf8(bytes).map_err(|_| {
                    KeyError::Passphrase("-".to_owned(), "the passphrase file is not UTF-8".to_owned())
                })?;
                Some(text.lines().next().unwrap_or_default().trim().to_owned())
            }
            None => None,
        };
        Self::from_armored(&key, passphrase.as_deref(), now)
    }

    /// Parses an ASCII-armored transferable secret key and checks it can sign at `now`.
    pub fn from_armored(
        armored: &str,
        passphrase: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<Self, KeyError> {
        if !armored.trim_start().starts_with("-----BEGIN PGP PRIVATE KEY BLOCK-----") {
            return Err(KeyError::Parse("no -----BEGIN PGP PRIVATE KEY BLOCK----- header".to_owned()));
        }
        let (mut secret, _headers) =
            SignedSecretKey::from_string(armored).map_err(|e| KeyError::Parse(e.to_string()))?;
        secret.verify_bindings().map_err(|e| KeyError::Bindings(e.to_string()))?;
        let fingerprint = hex_upper(&secret.primary_key.fingerprint());
        if !secret.details.revocation_signatures.is_empty() {
            return Err(KeyError::Revoked(fingerprint));
        }
        let primary_sig = newest(
            secret.details.users.iter().flat_map(|u| &u.signatures).chain(&secret.details.direct_signatures),
            &CERTIFICATIONS,
        );
        let primary_created = secret.primary_key.created_at().as_secs();
        let primary_expiry = expiry(primary_created, primary_sig);
        if let Some(t) = primary_expiry.filter(|t| *t <= now) {
            return Err(KeyError::Expired { fingerprint, at: at(t) });
        }

        // The signing component: the newest valid subkey with the signing flag, else the
        // primary key if it carries the flag.
        let mut subkey: Option<(usize, u32, Option<OffsetDateTime>)> = None;
        for (i, sub) in secret.secret_subkeys.iter().enumerate() {
            if sub.signatures.iter().any(|s| s.typ() == Some(SignatureType::SubkeyRevocation)) {
                continue;
            }
            let Some(binding) = newest(&sub.signatures, &[SignatureType::SubkeyBinding]) else { continue };
            if !binding.key_flags().sign() {
                continue;
            }
            let created = sub.key.created_at().as_secs();
            let sub_expiry = expiry(created, Some(binding));
            if sub_expiry.is_some_and(|t| t <= now) {
                continue;
            }
            if subkey.is_none_or(|(_, c, _)| created > c) {
                subkey = Some((i, created, sub_expiry));
            }
        }
        let primary_signs = primary_sig.is_some_and(|s| s.key_flags().sign());
        let (subkey, signer_expiry) = match subkey {
            Some((i, _, e)) => (Some(i), e),
            None if primary_signs => (None, None),
            None => return Err(KeyError::CannotSign(fingerprint)),
        };
        let expires_at = match (primary_expiry, signer_expiry) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };

        // Unlock once; the passphrase is not kept.
        let password = Password::from(passphrase.unwrap_or_default());
        let signer_fingerprint = match subkey {
            None => {
                secret
                    .primary_key
                    .remove_password(&password)
                    .map_err(|e| KeyError::Passphrase(fingerprint.clone(), e.to_string()))?;
                fingerprint.clone()
            }
            Some(i) => {
                let sub: &mut SignedSecretSubKey = &mut secret.secret_subkeys[i];
                sub.key
                    .remove_password(&password)
                    .map_err(|e| KeyError::Passphrase(fingerprint.clone(), e.to_string()))?;
                hex_upper(&sub.key.fingerprint())
            }
        };
        let public = SignedPublicKey::from(secret.clone());
        let public_armored = public
            .to_armored_string(ArmorOptions::default())
            .map_err(|e| KeyError::Parse(format!("cannot export the public key: {e}")))?;
        let key = Self(Arc::new(Inner {
            secret,
            subkey,
            fingerprint,
            signer_fingerprint,
            public_armored,
            expires_at,
        }));
        // A probe proves the unlocked material signs and matches the public key.
        let probe = b"psirt signing key probe";
        let sig = key.sign(probe)?;
        key.verify(probe, &sig)
            .map_err(|e| KeyError::Sign(format!("the probe signature does not verify: {e}")))?;
        Ok(key)
    }

    /// The primary key's fingerprint, upper-case hex (as GnuPG prints it and the provider
    /// metadata lists it).
    pub fn fingerprint(&self) -> &str {
        &self.0.fingerprint
    }

    /// The fingerprint of the component that makes the signatures (a subkey or the primary).
    pub fn signer_fingerprint(&self) -> &str {
        &self.0.signer_fingerprint
    }

    /// When the key (or its signing subkey) expires, if ever.
    pub fn expires_at(&self) -> Option<OffsetDateTime> {
        self.0.expires_at
    }

    /// The ASCII-armored public key (transferable public key: primary, user ids, subkeys).
    pub fn public_key_armored(&self) -> &str {
        &self.0.public_armored
    }

    /// An ASCII-armored detached signature over `data` (binary signature, RFC 9580 section 10.4).
    pub fn sign(&self, data: &[u8]) -> Result<String, KeyError> {
        let rng = rand08::thread_rng();
        let pw = Password::empty();
        let sig = match self.0.subkey {
            None => {
                let key = &self.0.secret.primary_key;
                DetachedSignature::sign_binary_data(rng, key, &pw, key.hash_alg(), data)
            }
            Some(i) => {
                let key = &self.0.secret.secret_subkeys[i].key;
                DetachedSignature::sign_binary_data(rng, key, &pw, key.hash_alg(), data)
            }
        }
        .map_err(|e| KeyError::Sign(e.to_string()))?;
        sig.to_armored_string(ArmorOptions::default()).map_err(|e| KeyError::Sign(e.to_string()))
    }

    /// Whether `armored` is a detached signature by this key's signing component over `data`.
    pub fn verify(&self, data: &[u8], armored: &str) -> Result<(), KeyError> {
        let (sig, _) = DetachedSignature::from_string(armored).map_err(|e| KeyError::Sign(e.to_string()))?;
        let result = match self.0.subkey {
            None => sig.verify(self.0.secret.primary_key.public_key(), data),
            Some(i) => sig.verify(self.0.secret.secret_subkeys[i].key.public_key(), data),
        };
        result.map_err(|e| KeyError::Sign(e.to_string()))
    }
}

fn hex_upper(fingerprint: &pgp::types::Fingerprint) -> String {
    hex::encode_upper(fingerprint.as_bytes())
}
