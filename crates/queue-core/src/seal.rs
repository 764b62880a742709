//! Payload signing and encryption with key rotation.
//!
//! Whoever can write to the store can enqueue any task with any arguments, and whoever can
//! read it sees every argument and result. [`Sealing`] closes both, per store or per queue:
//!
//! * **Signing** ([`Sealing::signing`]): producers put an HMAC-SHA256 over each envelope's
//!   identity and content (id, queue, task name, arguments, options, follow-ups, chord
//!   members; not the counters and eta that the store itself updates). A consumer with
//!   signing on dead-letters an unsigned or badly signed task with
//!   [`FailureKind::BadSignature`] and never runs it.
//! * **Encryption** ([`Sealing::encryption`]): arguments and results are sealed with
//!   XChaCha20-Poly1305, a fresh random 192-bit nonce per message, and the task id (and, for
//!   arguments, the task name) as associated data, so a sealed payload cannot be moved to
//!   another task.
//! * **Rotation**: keys have ids ([`Keyring`]); the newest seals, every one opens; a task
//!   sealed with a key the consumer does not have is dead-lettered with
//!   [`FailureKind::UnknownKey`], naming the key id.
//!
//! Both take effect through [`Queue::with_sealing`](crate::Queue::with_sealing): every write
//! the queue and the consumers built from it make is sealed, every read opened. The same key
//! sets must be given to producers, consumers and admin tools; `skiff::worker`, the `skiff`
//! CLI, the web example and the soak harness read them from `SKIFF_SIGNING_KEYS` and
//! `SKIFF_ENCRYPTION_KEYS` ([`Sealing::from_env`]).
//!
//! What it does not protect: see the README's threat model. In short, task names, queues,
//! ids, priorities, times, unique keys and failure messages stay readable; a signed task can
//! be stored again by someone who copied it (it is the same task, with the same id); and a
//! consumer without signing runs whatever it is given.
//!
//! # Examples
//!
//! ```
//! use queue_core::seal::{Keyring, Sealing};
//! use queue_core::{Envelope, FailureKind, Queue};
//!
//! let keys = Keyring::parse("k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")?;
//! let sealing = Sealing::new().signing(keys.clone()).encryption(keys);
//!
//! let mut env = Envelope::new("default", "send_email", rmp_serde::to_vec(&("a@example.com",)).unwrap(), chrono::Utc::now());
//! sealing.seal(&mut env)?;
//! assert!(queue_core::seal::sealed_key_id(&env.args) == Some("k1")); // unreadable in the store
//!
//! // A consumer with the same keys opens it...
//! let mut delivered = env.clone();
//! sealing.open(&mut delivered).map_err(|f| queue_core::Error::InvalidInput(f.message))?;
//! assert_eq!(delivered.args, rmp_serde::to_vec(&("a@example.com",)).unwrap());
//!
//! // ...and refuses one whose content was changed in the store.
//! let mut forged = env.clone();
//! forged.task = "delete_account".into();
//! assert_eq!(sealing.open(&mut forged).unwrap_err().kind, FailureKind::BadSignature);
//!
//! // Producers and consumers get it through their queue.
//! let queue = Queue::memory().with_sealing(sealing);
//! assert!(queue.sealing().is_some());
//! # Ok::<(), queue_core::Error>(())
//! ```

use std::collections::BTreeSet;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::XChaCha20Poly1305;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::{Envelope, Error, FailureKind, FollowUp, Result, RetryPolicy, TaskFailure, TaskId};

mod keys;
mod storage;

pub use keys::{Keyring, KEY_LEN};
pub use storage::SealedStorage;

/// The environment variable with the signing keys (`id:base64key,…`, newest first).
pub const SIGNING_KEYS_ENV: &str = "SKIFF_SIGNING_KEYS";
/// The environment variable with the encryption keys (`id:base64key,…`, newest first).
pub const ENCRYPTION_KEYS_ENV: &str = "SKIFF_ENCRYPTION_KEYS";

/// The first bytes of a sealed payload. `0xC1` is never used by msgpack, so a sealed payload
/// can never be mistaken for plain arguments or a plain result.
const MAGIC: [u8; 3] = [0xC1, b'S', 1];
/// The first bytes of a signed (not encrypted) result: `MAGIC_MAC | id_len | key id | HMAC |
/// the plain result`.
const MAGIC_MAC: [u8; 3] = [0xC1, b'M', 1];
const MAC_LEN: usize = 32;
const NONCE_LEN: usize = 24;

/// A signature stored in an envelope: the id of the key that made it and the HMAC-SHA256.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    /// The id of the signing key.
    pub key: String,
    /// The HMAC-SHA256 of the envelope's signed content.
    #[serde(with = "serde_bytes")]
    pub mac: Vec<u8>,
}

/// What to sign and encrypt, and with which keys. See the [module docs](self).
///
/// Off by default ([`Sealing::new`]): nothing is signed or encrypted until key sets are given.
#[derive(Clone, Debug, Default)]
pub struct Sealing {
    signing: Option<Keyring>,
    encryption: Option<Keyring>,
    queues: Option<BTreeSet<String>>,
}

impl Sealing {
    /// Nothing signed or encrypted.
    pub fn new() -> Self {
        Self::default()
    }

    /// The key sets in `SKIFF_SIGNING_KEYS` and `SKIFF_ENCRYPTION_KEYS` (each optional).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] naming the variable whose value does not parse (never the key).
    pub fn from_env() -> Result<Self> {
        Ok(Self {
            signing: Keyring::from_env(SIGNING_KEYS_ENV)?,
            encryption: Keyring::from_env(ENCRYPTION_KEYS_ENV)?,
            queues: None,
        })
    }

    /// Signs with the newest of `keys`; verifies with any of them.
    pub fn signing(mut self, keys: Keyring) -> Self {
        self.signing = Some(keys);
        self
    }

    /// Encrypts with the newest of `keys`; decrypts with any of them.
    pub fn encryption(mut self, keys: Keyring) -> Self {
        self.encryption = Some(keys);
        self
    }

    /// Seals only the tasks of these queues (by default, every queue of the store).
    pub fn only_queues<I, S>(mut self, queues: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.queues = Some(queues.into_iter().map(Into::into).collect());
        self
    }

    /// Whether neither signing nor encryption is on.
    pub fn is_off(&self) -> bool {
        self.signing.is_none() && self.encryption.is_none()
    }

    /// Whether tasks are signed and verified.
    pub fn signs(&self) -> bool {
        self.signing.is_some()
    }

    /// Whether arguments and results are encrypted.
    pub fn encrypts(&self) -> bool {
        self.encryption.is_some()
    }

    /// Whether tasks of `queue` are sealed.
    pub fn applies_to(&self, queue: &str) -> bool {
        !self.is_off() && self.queues.as_ref().is_none_or(|q| q.contains(queue))
    }

    /// Seals an envelope before it is stored: encrypts its arguments (unless they already are)
    /// and signs it, and the same for each follow-up it carries, each by its own queue.
    ///
    /// # Errors
    ///
    /// [`Error::Encode`] when the envelope cannot be encoded for signing.
    pub fn seal(&self, env: &mut Envelope) -> Result<()> {
        for follow_up in &mut env.follow_ups {
            self.seal(&mut follow_up.envelope)?;
        }
        if !self.applies_to(&env.queue) {
            return Ok(());
        }
        if let Some(keys) = &self.encryption {
            if !is_sealed(&env.args) {
                env.args = encrypt(keys, &args_aad(env.id, &env.task), &env.args)?;
            }
        }
        if let Some(keys) = &self.signing {
            let key = keys.newest();
            env.sig = Some(Signature {
                key: key.id.clone(),
                mac: mac(&key.bytes, env)?.finalize().into_bytes().to_vec(),
            });
        }
        Ok(())
    }

    /// Checks and opens a delivered envelope: verifies its signature (signing on) and decrypts
    /// its arguments (when they are sealed). Follow-ups stay sealed until they are delivered.
    ///
    /// # Errors
    ///
    /// The failure to dead-letter the task with: [`FailureKind::BadSignature`] (unsigned, a
    /// signature that does not match, arguments that do not authenticate) or
    /// [`FailureKind::UnknownKey`] (sealed with a key id this set does not have).
    pub fn open(&self, env: &mut Envelope) -> std::result::Result<(), TaskFailure> {
        if !self.applies_to(&env.queue) {
            return Ok(());
        }
        let attempts = env.attempt;
        let fail = |kind, message: String| TaskFailure::new(kind, message, attempts);
        if let Some(keys) = &self.signing {
            let Some(sig) = &env.sig else {
                return Err(fail(
                    FailureKind::BadSignature,
                    "the task is not signed, and this consumer requires signed tasks".into(),
                ));
            };
            let Some(key) = keys.get(&sig.key) else {
                return Err(fail(
                    FailureKind::UnknownKey,
                    format!(
                        "signed with key `{}`, which this consumer does not have",
                        sig.key
                    ),
                ));
            };
            let verified = mac(&key.bytes, env).is_ok_and(|m| m.verify_slice(&sig.mac).is_ok());
            if !verified {
                return Err(fail(
                    FailureKind::BadSignature,
                    format!(
                        "the signature (key `{}`) does not match the task's content",
                        sig.key
                    ),
                ));
            }
        }
        if is_sealed(&env.args) {
            let key_id = sealed_key_id(&env.args).unwrap_or("?");
            let opened = match &self.encryption {
                None => Err(fail(
                    FailureKind::UnknownKey,
                    format!("the arguments are encrypted with key `{key_id}`, and this consumer has no encryption keys"),
                )),
                Some(keys) => decrypt(keys, &args_aad(env.id, &env.task), &env.args).map_err(
                    |e| match e {
                        OpenError::UnknownKey(id) => fail(
                            FailureKind::UnknownKey,
                            format!("the arguments are encrypted with key `{id}`, which this consumer does not have"),
                        ),
                        OpenError::Forged => fail(
                            FailureKind::BadSignature,
                            "the encrypted arguments do not authenticate (changed in the store, or sealed for another task)".into(),
                        ),
                    },
                ),
            };
            env.args = opened?;
        }
        Ok(())
    }

    /// Seals a task's output before it is stored: encrypted (encryption on, which also
    /// authenticates it), else signed (signing on), else plain.
    ///
    /// # Errors
    ///
    /// [`Error::Encode`] if the cipher fails (it does not for inputs under 256 GiB).
    pub fn seal_result(&self, id: TaskId, output: Vec<u8>) -> Result<Vec<u8>> {
        if is_sealed(&output) || is_signed_result(&output) {
            return Ok(output);
        }
        if let Some(keys) = &self.encryption {
            return encrypt(keys, &result_aad(id), &output);
        }
        let Some(keys) = &self.signing else {
            return Ok(output);
        };
        let key = keys.newest();
        let tag = result_mac(&key.bytes, id, &output)?;
        let id_len = u8::try_from(key.id.len()).map_err(|e| Error::encode("key id", e))?;
        let mut out =
            Vec::with_capacity(MAGIC_MAC.len() + 1 + key.id.len() + MAC_LEN + output.len());
        out.extend_from_slice(&MAGIC_MAC);
        out.push(id_len);
        out.extend_from_slice(key.id.as_bytes());
        out.extend_from_slice(&tag);
        out.extend_from_slice(&output);
        Ok(out)
    }

    /// Opens a stored output that [`seal_result`](Self::seal_result) sealed. A plain output is
    /// returned as it is, except when signing is on for the whole store: then it is refused,
    /// since anyone who can write to the store could have written it (a chord callback reads
    /// its members' results as its arguments).
    ///
    /// # Errors
    ///
    /// [`Error::Decode`] when the output is sealed with a key this set does not have, does not
    /// authenticate, or is plain while signing is on for the whole store.
    pub fn open_result(&self, id: TaskId, output: Vec<u8>) -> Result<Vec<u8>> {
        if is_signed_result(&output) {
            return self.verify_result(id, output);
        }
        if !is_sealed(&output) {
            if self.signing.is_some() && self.queues.is_none() {
                return Err(Error::decode(
                    "result",
                    "it is neither signed nor encrypted, and signing is on: it was not written by a worker with the keys",
                ));
            }
            return Ok(output);
        }
        let key_id = sealed_key_id(&output).unwrap_or("?");
        let keys = self.encryption.as_ref().ok_or_else(|| {
            Error::decode(
                "result",
                format!(
                    "it is encrypted with key `{key_id}`; set {ENCRYPTION_KEYS_ENV} to read it"
                ),
            )
        })?;
        decrypt(keys, &result_aad(id), &output).map_err(|e| match e {
            OpenError::UnknownKey(k) => Error::decode(
                "result",
                format!("it is encrypted with key `{k}`, which is not among the encryption keys"),
            ),
            OpenError::Forged => Error::decode(
                "result",
                "the encrypted result does not authenticate (changed in the store, or another task's)",
            ),
        })
    }

    fn verify_result(&self, id: TaskId, output: Vec<u8>) -> Result<Vec<u8>> {
        let forged = || {
            Error::decode(
                "result",
                "its signature does not match (changed in the store, or another task's)",
            )
        };
        let key_id = sealed_key_id_of(&output, &MAGIC_MAC).ok_or_else(forged)?;
        let start = MAGIC_MAC.len() + 1 + key_id.len();
        let (tag, payload) = output
            .get(start..)
            .and_then(|rest| rest.split_at_checked(MAC_LEN))
            .ok_or_else(forged)?;
        let Some(keys) = &self.signing else {
            // Without signing keys, a reader takes the payload as it is (it cannot check it).
            return Ok(payload.to_vec());
        };
        let key = keys.get(key_id).ok_or_else(|| {
            Error::decode(
                "result",
                format!("it is signed with key `{key_id}`, which is not among the signing keys"),
            )
        })?;
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key.bytes.as_ref())
            .map_err(|e| Error::encode("signature", e))?;
        mac.update(&result_aad(id));
        mac.update(payload);
        mac.verify_slice(tag).map_err(|_| forged())?;
        Ok(payload.to_vec())
    }

    /// For display: the output opened when this set can open it, else as stored (shown as
    /// `<encrypted with key …>` by [`msgpack_to_json`](crate::msgpack_to_json)).
    pub fn reveal_result(&self, id: TaskId, output: Vec<u8>) -> Vec<u8> {
        self.open_result(id, output.clone()).unwrap_or(output)
    }

    /// For display: decrypts an envelope's arguments when this set has the key, and leaves
    /// them sealed otherwise (shown as encrypted by [`Envelope::to_json`]). Verifies nothing.
    pub fn reveal(&self, env: &mut Envelope) {
        if let Some(keys) = &self.encryption {
            if let Ok(args) = decrypt(keys, &args_aad(env.id, &env.task), &env.args) {
                env.args = args;
            }
        }
    }
}

/// Whether `bytes` are a sealed payload (arguments or a result encrypted by [`Sealing`]).
pub fn is_sealed(bytes: &[u8]) -> bool {
    bytes.starts_with(&MAGIC)
}

/// Whether `bytes` are a signed result ([`Sealing::seal_result`] with signing only).
pub fn is_signed_result(bytes: &[u8]) -> bool {
    bytes.starts_with(&MAGIC_MAC)
}

/// The id of the key that sealed `bytes`, or `None` when they are not a sealed payload.
pub fn sealed_key_id(bytes: &[u8]) -> Option<&str> {
    sealed_key_id_of(bytes, &MAGIC)
}

/// The payload of a signed result, unchecked (for display).
pub fn signed_result_payload(bytes: &[u8]) -> Option<&[u8]> {
    let id = sealed_key_id_of(bytes, &MAGIC_MAC)?;
    bytes.get(MAGIC_MAC.len() + 1 + id.len() + MAC_LEN..)
}

fn sealed_key_id_of<'a>(bytes: &'a [u8], magic: &[u8]) -> Option<&'a str> {
    let rest = bytes.strip_prefix(magic)?;
    let (&len, rest) = rest.split_first()?;
    let id = rest.get(..usize::from(len))?;
    std::str::from_utf8(id).ok()
}

fn result_mac(key: &[u8; keys::KEY_LEN], id: TaskId, output: &[u8]) -> Result<[u8; MAC_LEN]> {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(key).map_err(|e| Error::encode("signature", e))?;
    mac.update(&result_aad(id));
    mac.update(output);
    Ok(mac.finalize().into_bytes().into())
}

enum OpenError {
    UnknownKey(String),
    Forged,
}

fn args_aad(id: TaskId, task: &str) -> Vec<u8> {
    format!("skiff/args\0{id}\0{task}").into_bytes()
}

fn result_aad(id: TaskId) -> Vec<u8> {
    format!("skiff/result\0{id}").into_bytes()
}

fn encrypt(keys: &Keyring, aad: &[u8], plain: &[u8]) -> Result<Vec<u8>> {
    let key = keys.newest();
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut nonce).map_err(|e| Error::encode("a nonce", e))?;
    let cipher = XChaCha20Poly1305::new(key.bytes.as_ref().into());
    let sealed = cipher
        .encrypt(&nonce.into(), Payload { msg: plain, aad })
        .map_err(|e| Error::encode("sealed payload", e))?;
    // `Keyring` ids are at most 64 bytes.
    let id_len = u8::try_from(key.id.len()).map_err(|e| Error::encode("key id", e))?;
    let mut out = Vec::with_capacity(MAGIC.len() + 1 + key.id.len() + NONCE_LEN + sealed.len());
    out.extend_from_slice(&MAGIC);
    out.push(id_len);
    out.extend_from_slice(key.id.as_bytes());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    Ok(out)
}

fn decrypt(keys: &Keyring, aad: &[u8], sealed: &[u8]) -> std::result::Result<Vec<u8>, OpenError> {
    let id = sealed_key_id(sealed).ok_or(OpenError::Forged)?;
    let key = keys
        .get(id)
        .ok_or_else(|| OpenError::UnknownKey(id.to_owned()))?;
    let body = &sealed[MAGIC.len() + 1 + id.len()..];
    let (nonce, ciphertext) = body.split_at_checked(NONCE_LEN).ok_or(OpenError::Forged)?;
    let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| OpenError::Forged)?;
    XChaCha20Poly1305::new(key.bytes.as_ref().into())
        .decrypt(
            &nonce.into(),
            Payload {
                msg: ciphertext,
                aad,
            },
        )
        .map_err(|_| OpenError::Forged)
}

/// What a signature covers: everything that says what runs and how, not what the store
/// updates as the task moves (eta, attempt and delivery counts, trace context).
#[derive(Serialize)]
struct Signed<'a> {
    domain: &'static str,
    version: u16,
    id: TaskId,
    queue: &'a str,
    task: &'a str,
    #[serde(with = "serde_bytes")]
    args: &'a [u8],
    priority: i16,
    enqueued_at: i64,
    expires_at: Option<i64>,
    retry: &'a RetryPolicy,
    timeout_ms: Option<u64>,
    unique_key: Option<&'a str>,
    max_deliveries: u32,
    follow_ups: &'a [FollowUp],
    chord_members: &'a [TaskId],
}

fn mac(key: &[u8; keys::KEY_LEN], env: &Envelope) -> Result<Hmac<Sha256>> {
    let signed = Signed {
        domain: "skiff/sig/1",
        version: env.version,
        id: env.id,
        queue: &env.queue,
        task: &env.task,
        args: &env.args,
        priority: env.priority,
        enqueued_at: env.enqueued_at.timestamp_millis(),
        expires_at: env.expires_at.map(|t| t.timestamp_millis()),
        retry: &env.retry,
        // As the envelope stores it (milliseconds, saturating), so a huge timeout verifies.
        timeout_ms: env
            .timeout
            .map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX)),
        unique_key: env.unique_key.as_deref(),
        max_deliveries: env.max_deliveries,
        follow_ups: &env.follow_ups,
        chord_members: &env.chord_members,
    };
    let bytes = rmp_serde::to_vec(&signed).map_err(|e| Error::encode("signed content", e))?;
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(key).map_err(|e| Error::encode("signature", e))?;
    mac.update(&bytes);
    Ok(mac)
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;

    type Change = Box<dyn Fn(&mut Envelope)>;

    fn keys(id: &str, byte: u8) -> Keyring {
        Keyring::new([(id, vec![byte; KEY_LEN])]).unwrap()
    }

    fn envelope() -> Envelope {
        Envelope::new(
            "q",
            "t",
            rmp_serde::to_vec(&(1, "two")).unwrap(),
            Utc::now(),
        )
    }

    fn both(k: &Keyring) -> Sealing {
        Sealing::new().signing(k.clone()).encryption(k.clone())
    }

    #[test]
    fn sealed_round_trip_and_store_side_changes_still_verify() {
        let s = both(&keys("k1", 7));
        let mut env = envelope();
        let plain = env.args.clone();
        s.seal(&mut env).unwrap();
        assert_ne!(env.args, plain);
        // What the store changes as a task moves is not signed.
        env.attempt = 3;
        env.deliveries = 5;
        env.eta = Some(Utc::now());
        env.trace.insert("traceparent".into(), "x".into());
        let stored = Envelope::decode(&env.encode().unwrap()).unwrap();
        let mut opened = stored.clone();
        s.open(&mut opened).unwrap();
        assert_eq!(opened.args, plain);
    }

    #[test]
    fn every_signed_field_is_checked() {
        let s = Sealing::new().signing(keys("k1", 7));
        let mut env = envelope();
        env.follow_ups.push(FollowUp {
            when: crate::FollowUpWhen::Success,
            input: crate::FollowUpInput::Fixed,
            envelope: envelope(),
        });
        s.seal(&mut env).unwrap();
        let changes: [Change; 11] = [
            Box::new(|e| e.task = "other".into()),
            Box::new(|e| e.queue = "other".into()),
            Box::new(|e| e.args.push(0)),
            Box::new(|e| e.id = TaskId::new()),
            Box::new(|e| e.priority = 9),
            Box::new(|e| e.retry.max_retries = 99),
            Box::new(|e| e.timeout = Some(std::time::Duration::from_secs(1))),
            Box::new(|e| e.unique_key = Some("k".into())),
            Box::new(|e| e.follow_ups[0].envelope.task = "other".into()),
            Box::new(|e| e.chord_members.push(TaskId::new())),
            Box::new(|e| e.sig = None),
        ];
        for (i, change) in changes.iter().enumerate() {
            let mut forged = env.clone();
            change(&mut forged);
            // Queue filters aside, a change to the queue must fail like any other.
            let err = s.open(&mut forged).unwrap_err();
            assert_eq!(err.kind, FailureKind::BadSignature, "change {i}: {err:?}");
        }
        // The follow-up was signed too.
        assert!(env.follow_ups[0].envelope.sig.is_some());
    }

    #[test]
    fn rotation_and_unknown_keys() {
        let old = keys("k1", 1);
        let new = Keyring::new([("k2", vec![2; KEY_LEN]), ("k1", vec![1; KEY_LEN])]).unwrap();
        let mut env = envelope();
        both(&old).seal(&mut env).unwrap();
        // A consumer that rotated to k2 still opens what k1 sealed.
        both(&new).open(&mut env.clone()).unwrap();
        // One that only has k2 does not, and says which key was missing.
        let mut env2 = envelope();
        both(&new).seal(&mut env2).unwrap();
        let err = both(&old).open(&mut env2.clone()).unwrap_err();
        assert_eq!(err.kind, FailureKind::UnknownKey);
        assert!(err.message.contains("`k2`"), "{}", err.message);
        // Encryption only: the unknown key is the cipher's.
        let enc_only = Sealing::new().encryption(old.clone());
        let mut env3 = envelope();
        Sealing::new()
            .encryption(keys("k3", 3))
            .seal(&mut env3)
            .unwrap();
        let err = enc_only.open(&mut env3).unwrap_err();
        assert_eq!(err.kind, FailureKind::UnknownKey);
        assert!(err.message.contains("`k3`"), "{}", err.message);
    }

    #[test]
    fn sealed_arguments_are_bound_to_their_task() {
        let s = Sealing::new().encryption(keys("k1", 1));
        let mut a = envelope();
        let mut b = envelope();
        s.seal(&mut a).unwrap();
        s.seal(&mut b).unwrap();
        // Each seal has its own nonce.
        assert_ne!(a.args, b.args);
        b.args.clone_from(&a.args);
        assert_eq!(s.open(&mut b).unwrap_err().kind, FailureKind::BadSignature);
        // Plain arguments pass when only encryption is on: authenticity is signing's job.
        let mut plain = envelope();
        s.open(&mut plain).unwrap();
    }

    #[test]
    fn results_are_bound_to_their_task() {
        let s = Sealing::new().encryption(keys("k1", 1));
        let id = TaskId::new();
        let sealed = s.seal_result(id, b"\x91\x01".to_vec()).unwrap();
        assert_eq!(sealed_key_id(&sealed), Some("k1"));
        assert_eq!(s.open_result(id, sealed.clone()).unwrap(), b"\x91\x01");
        assert!(s.open_result(TaskId::new(), sealed.clone()).is_err());
        let err = Sealing::new()
            .open_result(id, sealed)
            .unwrap_err()
            .to_string();
        assert!(err.contains(ENCRYPTION_KEYS_ENV), "{err}");
        assert_eq!(s.open_result(id, b"\x01".to_vec()).unwrap(), b"\x01");
    }

    #[test]
    fn queue_filters_leave_other_queues_alone() {
        let s = Sealing::new()
            .signing(keys("k1", 1))
            .encryption(keys("k1", 1))
            .only_queues(["payments"]);
        let mut env = envelope();
        let before = env.clone();
        s.seal(&mut env).unwrap();
        assert_eq!(env, before);
        let mut unsigned = envelope();
        s.open(&mut unsigned).unwrap();
        let mut pay = envelope();
        pay.queue = "payments".into();
        s.seal(&mut pay).unwrap();
        assert!(pay.sig.is_some() && sealed_key_id(&pay.args).is_some());
    }

    #[test]
    fn a_huge_timeout_verifies() {
        let s = Sealing::new().signing(keys("k1", 1));
        let mut env = envelope();
        env.timeout = Some(std::time::Duration::MAX);
        s.seal(&mut env).unwrap();
        let mut stored = Envelope::decode(&env.encode().unwrap()).unwrap();
        s.open(&mut stored).unwrap();
    }

    #[test]
    fn debug_output_names_key_ids_only() {
        let keys = Keyring::parse("k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").unwrap();
        let sealing = both(&keys);
        let queue = crate::Queue::memory().with_sealing(sealing.clone());
        for shown in [
            format!("{sealing:?}"),
            format!("{queue:?}"),
            format!("{keys:?}"),
        ] {
            assert!(shown.contains("k1"), "{shown}");
            assert!(!shown.contains("AAECAwQF"), "{shown}");
            // Nor the raw bytes, in any of Debug's number formats.
            assert!(!shown.contains("[0, 1, 2, 3"), "{shown}");
        }
    }

    #[test]
    fn truncated_or_garbled_seals_are_refused() {
        let s = Sealing::new().encryption(keys("k1", 1));
        let mut env = envelope();
        s.seal(&mut env).unwrap();
        for cut in [3, 4, 6, 20, env.args.len() - 1] {
            let mut e = env.clone();
            e.args.truncate(cut);
            let err = s.open(&mut e);
            assert!(err.is_err(), "cut at {cut}");
        }
        let mut e = env.clone();
        e.args[3] = 200; // a key id longer than the payload
        assert!(s.open(&mut e).is_err());
    }
}
