//! The cache's keys: a keyed hash of a device and a registration, never the registration.
//!
//! Registrations can be CPF numbers, which are personal data, and there are only about
//! 10^9 of them: a plain SHA-256 of a CPF is reversed by trying them all in minutes. So a
//! [`CacheKey`] is an HMAC-SHA256 under a [`KeySecret`] that lives only on the operator's
//! machines: someone holding a copy of the cache (a Redis dump, a stolen laptop's
//! `cache.redb`) without the secret cannot tell whose pairs it holds. The secret is a
//! file made on first use (mode 0600), or `CATRACA_CACHE_KEY` when several machines share
//! one Redis and must compute the same keys to share its hits.

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::CacheError;

/// The secret under which cache keys are computed: 32 random bytes.
///
/// Its `Debug` shows nothing of the bytes, so it may sit in structs that get logged.
#[derive(Clone)]
pub struct KeySecret([u8; 32]);

impl KeySecret {
    /// A fresh secret from the operating system's randomness (through `rand`'s CSPRNG).
    pub fn random() -> KeySecret {
        KeySecret(rand::random())
    }

    /// Where the key file lives unless told otherwise:
    /// `<config dir>/catraca/cache.key` (`~/.config/catraca/cache.key` on Linux),
    /// or `./.catraca-cache.key` on a system without a config directory.
    ///
    /// Next to the configuration, not the cache: clearing `~/.cache` must not silently
    /// change every key and make a shared Redis useless for this machine.
    pub fn default_path() -> PathBuf {
        match dirs::config_dir() {
            Some(dir) => dir.join("catraca").join("cache.key"),
            None => PathBuf::from(".catraca-cache.key"),
        }
    }

    /// Reads the secret from `path` (64 hex digits), or makes a new random one there if
    /// the file does not exist, creating its parent directories.
    ///
    /// A new file is written with mode 0600 and appears complete or not at all, so two
    /// runs starting together end up with the same secret. An existing file that group
    /// or others can read is refused: whoever reads it can test CPFs against the cache.
    pub fn load_or_create(path: &Path) -> Result<KeySecret, CacheError> {
        match fs::read_to_string(path) {
            Ok(text) => {
                refuse_if_readable_by_others(path)?;
                KeySecret::from_hex(&text).map_err(|_| CacheError::Key {
                    origin: path.display().to_string(),
                    message: "is not 64 hex digits: delete it and catraca makes a new key \
                              (pairs cached under the old key are then sent again)"
                        .to_string(),
                })
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => create(path),
            Err(err) => Err(key_file_error(path, "cannot be read", err)),
        }
    }

    /// Parses a secret written as 64 hex digits (the format of the key file), as given in
    /// `CATRACA_CACHE_KEY`. Surrounding whitespace is ignored.
    pub fn from_hex(text: &str) -> Result<KeySecret, CacheError> {
        let invalid = || CacheError::Key {
            origin: "CATRACA_CACHE_KEY".to_string(),
            message: "must be exactly 64 hex digits (32 bytes), e.g. the content of another \
                      machine's cache.key"
                .to_string(),
        };
        let text = text.trim().as_bytes();
        if text.len() != 64 {
            return Err(invalid());
        }
        let mut bytes = [0u8; 32];
        for (byte, pair) in bytes.iter_mut().zip(text.chunks_exact(2)) {
            let high = hex_digit(pair[0]).ok_or_else(invalid)?;
            let low = hex_digit(pair[1]).ok_or_else(invalid)?;
            *byte = high << 4 | low;
        }
        Ok(KeySecret(bytes))
    }

    fn to_hex(&self) -> String {
        hex(&self.0)
    }
}

impl fmt::Debug for KeySecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeySecret(..)")
    }
}

impl KeySecret {
    /// A stand-in for a registration in logs that must not hold it (registrations can be
    /// CPF numbers): the first 16 bytes of HMAC-SHA256(secret, `registration` 0x00
    /// `registration`), as 32 hex digits. The same person has the same hash on every
    /// device and in every run sharing the key; without the key it reveals nothing. The
    /// domain prefix keeps it apart from every cache key.
    pub fn registration_hash(&self, registration: &str) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC accepts keys of any length");
        mac.update(b"registration");
        mac.update(&[0]);
        mac.update(registration.as_bytes());
        hex(&mac.finalize().into_bytes()[..16])
    }
}

/// The cache key of one person-on-device pair.
///
/// `Debug` shows only its first 4 bytes: enough to tell keys apart in a log, and like
/// the whole key, worthless without the secret.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CacheKey(pub [u8; 16]);

impl CacheKey {
    /// The first 16 bytes of HMAC-SHA256(secret, `device_id` 0x00 `registration`).
    ///
    /// This formula is a contract: every machine and every version of catraca must
    /// compute the same key, or a shared or upgraded cache stops hitting.
    pub fn for_pair(secret: &KeySecret, device_id: &str, registration: &str) -> CacheKey {
        DeviceKeys::new(secret, device_id).key(registration)
    }

    /// The key as 32 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }
}

/// The keys of one device's pairs: [`CacheKey::for_pair`] with the secret and the device
/// already absorbed, so each key costs two SHA-256 blocks instead of four or more (a
/// million pairs are a million keys when everything is cached).
#[derive(Clone)]
pub struct DeviceKeys(Hmac<Sha256>);

impl DeviceKeys {
    pub fn new(secret: &KeySecret, device_id: &str) -> DeviceKeys {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&secret.0).expect("HMAC accepts keys of any length");
        mac.update(device_id.as_bytes());
        mac.update(&[0]);
        DeviceKeys(mac)
    }

    /// The key of `registration` on this device, equal to [`CacheKey::for_pair`]'s.
    pub fn key(&self, registration: &str) -> CacheKey {
        let mut mac = self.0.clone();
        mac.update(registration.as_bytes());
        let digest = mac.finalize().into_bytes();
        let mut key = [0u8; 16];
        key.copy_from_slice(&digest[..16]);
        CacheKey(key)
    }
}

impl fmt::Debug for DeviceKeys {
    /// Shows nothing of the keyed state, which is derived from the secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DeviceKeys(..)")
    }
}

impl fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CacheKey({}..)", hex(&self.0[..4]))
    }
}

fn create(path: &Path) -> Result<KeySecret, CacheError> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    create_private_dir(dir).map_err(|err| {
        key_file_error(path, "cannot be created (making its directory failed)", err)
    })?;
    let secret = KeySecret::random();
    // Written to a temporary file in the same directory, then linked into place without
    // replacing anything: a run starting at the same moment never reads a half-written
    // key, and if it won the race we adopt its key instead of overwriting it.
    let mut builder = tempfile::Builder::new();
    builder.prefix(".cache-key-");
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600));
    let mut file = builder
        .tempfile_in(dir)
        .map_err(|err| key_file_error(path, "cannot be created", err))?;
    writeln!(file, "{}", secret.to_hex())
        .and_then(|()| file.as_file().sync_all())
        .map_err(|err| key_file_error(path, "cannot be written", err))?;
    match file.persist_noclobber(path) {
        Ok(_) => {
            log::info!("made a new cache key in {}", path.display());
            Ok(secret)
        }
        Err(err) if err.error.kind() == io::ErrorKind::AlreadyExists => {
            KeySecret::load_or_create(path)
        }
        Err(err) => Err(key_file_error(path, "cannot be created", err.error)),
    }
}

/// Creates `dir` and its missing parents, readable only by this user: they hold the key.
fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

#[cfg(unix)]
fn refuse_if_readable_by_others(path: &Path) -> Result<(), CacheError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(path)
        .map_err(|err| key_file_error(path, "cannot be read", err))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(CacheError::Key {
            origin: path.display().to_string(),
            message: format!(
                "is readable or writable by group or others (mode {:04o}), and whoever reads \
                 it can test CPFs against the cache: run `chmod 600 {}`",
                mode & 0o7777,
                path.display()
            ),
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn refuse_if_readable_by_others(_path: &Path) -> Result<(), CacheError> {
    Ok(())
}

fn key_file_error(path: &Path, what: &str, err: io::Error) -> CacheError {
    CacheError::Key {
        origin: path.display().to_string(),
        message: format!("{what}: {err}"),
    }
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Lowercase hex, a table lookup per digit: Redis keys are written in hex, a million
/// per W2 run, and `format!("{:02x}")` per byte was a tenth of that run's CPU.
fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(DIGITS[usize::from(byte >> 4)] as char);
        text.push(DIGITS[usize::from(byte & 0x0f)] as char);
    }
    text
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn fixed_secret() -> KeySecret {
        KeySecret::from_hex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
            .unwrap()
    }

    #[test]
    fn key_matches_an_independent_hmac_sha256() {
        // Computed with Python's hmac module: if this changes, every cache in the field
        // stops hitting.
        let key = CacheKey::for_pair(&fixed_secret(), "portaria-1", "12345678909");
        assert_eq!(key.to_hex(), "b6abef58a65fcb8f17b3fd8413de4b21");
    }

    #[test]
    fn one_device_keys_gives_every_registration_the_same_key_as_for_pair() {
        let secret = fixed_secret();
        let keys = DeviceKeys::new(&secret, "portaria-1");
        assert_eq!(
            keys.key("12345678909").to_hex(),
            "b6abef58a65fcb8f17b3fd8413de4b21"
        );
        for registration in ["", "1", "A-1001", "12345678909", "João"] {
            assert_eq!(
                keys.key(registration),
                CacheKey::for_pair(&secret, "portaria-1", registration),
                "{registration}"
            );
        }
    }

    #[test]
    fn key_is_stable_and_separates_devices_registrations_and_secrets() {
        let secret = fixed_secret();
        let key = CacheKey::for_pair(&secret, "portaria-1", "12345678909");
        assert_eq!(
            key,
            CacheKey::for_pair(&secret, "portaria-1", "12345678909")
        );
        assert_ne!(
            key,
            CacheKey::for_pair(&secret, "portaria-2", "12345678909")
        );
        assert_ne!(
            key,
            CacheKey::for_pair(&secret, "portaria-1", "12345678910")
        );
        // The separator keeps "a" + "bc" apart from "ab" + "c".
        assert_ne!(
            CacheKey::for_pair(&secret, "a", "bc"),
            CacheKey::for_pair(&secret, "ab", "c")
        );
        let other = KeySecret::random();
        assert_ne!(key, CacheKey::for_pair(&other, "portaria-1", "12345678909"));
    }

    #[test]
    fn debug_output_leaks_neither_secret_nor_registration() {
        let secret = fixed_secret();
        let key = CacheKey::for_pair(&secret, "portaria-1", "12345678909");
        let shown = format!("{secret:?} {key:?}");
        assert_eq!(shown, "KeySecret(..) CacheKey(b6abef58..)");
    }

    #[test]
    fn from_hex_accepts_64_hex_digits_only() {
        let upper = "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F\n";
        let key = CacheKey::for_pair(&KeySecret::from_hex(upper).unwrap(), "d", "r");
        assert_eq!(key, CacheKey::for_pair(&fixed_secret(), "d", "r"));
        for bad in ["", "00", &"0".repeat(63), &"0".repeat(65), &"g".repeat(64)] {
            let err = KeySecret::from_hex(bad).unwrap_err().to_string();
            assert!(err.contains("CATRACA_CACHE_KEY"), "{err}");
            assert!(err.contains("64 hex digits"), "{err}");
        }
    }

    #[test]
    fn key_file_is_created_private_with_its_directories_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config").join("catraca").join("cache.key");
        let first = KeySecret::load_or_create(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let dir_mode = fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(dir_mode & 0o077, 0, "the key's directory is private");
        let again = KeySecret::load_or_create(&path).unwrap();
        assert_eq!(
            CacheKey::for_pair(&first, "d", "r"),
            CacheKey::for_pair(&again, "d", "r")
        );
        // The file is the hex that CATRACA_CACHE_KEY takes, so it can be shared.
        let text = fs::read_to_string(&path).unwrap();
        let shared = KeySecret::from_hex(&text).unwrap();
        assert_eq!(
            CacheKey::for_pair(&first, "d", "r"),
            CacheKey::for_pair(&shared, "d", "r")
        );
        let leftovers: Vec<_> = fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary file is left behind");
    }

    #[test]
    fn runs_starting_together_agree_on_one_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.key");
        let keys: Vec<CacheKey> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    scope.spawn(|| {
                        let secret = KeySecret::load_or_create(&path).unwrap();
                        CacheKey::for_pair(&secret, "d", "r")
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(keys.iter().all(|key| *key == keys[0]));
    }

    #[test]
    fn key_file_readable_by_others_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.key");
        KeySecret::load_or_create(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = KeySecret::load_or_create(&path).unwrap_err().to_string();
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(err.contains("0644"), "{err}");
        assert!(
            err.contains(&format!("chmod 600 {}", path.display())),
            "{err}"
        );
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        KeySecret::load_or_create(&path).unwrap();
    }

    #[test]
    fn damaged_key_file_is_reported_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.key");
        fs::write(&path, "not a key\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        let err = KeySecret::load_or_create(&path).unwrap_err().to_string();
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(err.contains("delete it"), "{err}");
        assert_eq!(fs::read_to_string(&path).unwrap(), "not a key\n");
    }
}
