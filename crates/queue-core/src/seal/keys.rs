//! Key sets for signing and encryption: ids, parsing, and wiping on drop.

use std::fmt;

use base64::Engine as _;
use zeroize::Zeroizing;

use crate::{Error, Result};

/// The length of every key, in bytes (HMAC-SHA256 and XChaCha20-Poly1305 keys alike).
pub const KEY_LEN: usize = 32;

/// One secret key with its id. The bytes are wiped when the key is dropped and never printed.
#[derive(Clone)]
pub(crate) struct Key {
    pub(crate) id: String,
    pub(crate) bytes: Zeroizing<[u8; KEY_LEN]>,
}

/// A set of keys, newest first: the newest signs or encrypts, every one verifies or decrypts.
///
/// Keys have ids (1 to 64 bytes of `A-Za-z0-9_.-`) so that a stored task names the key that
/// sealed it, and a key can be rotated: put the new key first, keep the old ones until no task
/// sealed with them is left, then drop them. Each key is 32 bytes, given in base64.
///
/// The bytes are wiped from memory when the set is dropped, and `Debug` shows only the ids.
///
/// # Examples
///
/// ```
/// use queue_core::seal::Keyring;
///
/// // Newest first: `k2` seals, `k1` still opens what it sealed before the rotation.
/// let keys = Keyring::parse(
///     "k2:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=,k1:ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=",
/// )?;
/// assert_eq!(keys.ids().collect::<Vec<_>>(), ["k2", "k1"]);
/// assert_eq!(format!("{keys:?}"), r#"Keyring(["k2", "k1"])"#);
///
/// // A key of the wrong length is refused, and the error does not repeat it.
/// let err = Keyring::parse("k1:c2hvcnQ=").unwrap_err();
/// assert!(err.to_string().contains("32 bytes"));
/// assert!(!err.to_string().contains("c2hvcnQ"));
/// # Ok::<(), queue_core::Error>(())
/// ```
#[derive(Clone)]
pub struct Keyring {
    keys: Vec<Key>,
}

impl Keyring {
    /// A key set from `(id, 32-byte key)` pairs, newest first.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] when the set is empty, an id is malformed or repeated, or a key
    /// is not 32 bytes.
    pub fn new<I, S>(keys: I) -> Result<Self>
    where
        I: IntoIterator<Item = (S, Vec<u8>)>,
        S: Into<String>,
    {
        let mut out: Vec<Key> = Vec::new();
        for (id, bytes) in keys {
            let bytes = Zeroizing::new(bytes);
            let id = id.into();
            check_id(&id)?;
            if out.iter().any(|k| k.id == id) {
                return Err(Error::InvalidInput(format!("key id `{id}` appears twice")));
            }
            let mut key = Zeroizing::new([0u8; KEY_LEN]);
            if bytes.len() != KEY_LEN {
                return Err(Error::InvalidInput(format!(
                    "key `{id}` is {} bytes; keys are {KEY_LEN} bytes (e.g. `openssl rand -base64 32`)",
                    bytes.len()
                )));
            }
            key.copy_from_slice(&bytes);
            out.push(Key { id, bytes: key });
        }
        if out.is_empty() {
            return Err(Error::InvalidInput(
                "a key set needs at least one key".into(),
            ));
        }
        Ok(Self { keys: out })
    }

    /// Parses `id:base64key,id:base64key`, newest first (the form of `SKIFF_SIGNING_KEYS`
    /// and `SKIFF_ENCRYPTION_KEYS`). Spaces around entries are ignored.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`], naming the key id but never the key.
    pub fn parse(spec: &str) -> Result<Self> {
        let mut keys = Vec::new();
        for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (id, encoded) = entry.split_once(':').ok_or_else(|| {
                Error::InvalidInput(
                    "a key entry must be `id:base64key` (entries separated by commas)".into(),
                )
            })?;
            let id = id.trim();
            check_id(id)?;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .map_err(|_| Error::InvalidInput(format!("key `{id}` is not valid base64")))?;
            keys.push((id.to_owned(), bytes));
        }
        Self::new(keys)
    }

    /// Reads a key set from the environment variable `var`; `None` when it is unset or empty.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] naming the variable when its value does not parse.
    pub fn from_env(var: &str) -> Result<Option<Self>> {
        match std::env::var(var) {
            Ok(v) if !v.trim().is_empty() => Self::parse(&v)
                .map(Some)
                .map_err(|e| Error::InvalidInput(format!("{var}: {e}"))),
            Ok(_) | Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => {
                Err(Error::InvalidInput(format!("{var} is not valid UTF-8")))
            }
        }
    }

    /// The key ids, newest first.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|k| k.id.as_str())
    }

    /// The key that seals: the newest.
    pub(crate) fn newest(&self) -> &Key {
        // `new` refuses an empty set.
        &self.keys[0]
    }

    /// The key with this id.
    pub(crate) fn get(&self, id: &str) -> Option<&Key> {
        self.keys.iter().find(|k| k.id == id)
    }
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Keyring")
            .field(&self.ids().collect::<Vec<_>>())
            .finish()
    }
}

fn check_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        // Not repeated: an entry written backwards (`key:id`) would print the key.
        Err(Error::InvalidInput(
            "a key id must be 1 to 64 characters of A-Z, a-z, 0-9, `_`, `.` and `-` (entries are `id:base64key`)".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked_and_unique() {
        assert!(Keyring::new([("", vec![0; 32])]).is_err());
        assert!(Keyring::new([("a b", vec![0; 32])]).is_err());
        assert!(Keyring::new([("a", vec![0; 32]), ("a", vec![1; 32])]).is_err());
        assert!(Keyring::new(Vec::<(String, Vec<u8>)>::new()).is_err());
        let keys = Keyring::new([("new", vec![1; 32]), ("old", vec![0; 32])]).unwrap();
        assert_eq!(keys.newest().id, "new");
        assert_eq!(keys.get("old").map(|k| k.bytes[0]), Some(0));
        assert!(keys.get("other").is_none());
    }

    #[test]
    fn parse_errors_never_show_the_key() {
        // The last one is written backwards: the key where the id goes.
        for spec in [
            "k1",
            "k1:!!!!",
            "k1:c2VjcmV0LXRvby1zaG9ydA==",
            "",
            "c2VjcmV0LXRvby1zaG9ydA==:k1",
        ] {
            let err = Keyring::parse(spec).unwrap_err().to_string();
            assert!(!err.contains("c2VjcmV0"), "{err}");
            assert!(!err.contains("secret"), "{err}");
        }
    }
}
