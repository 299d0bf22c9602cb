//! The default cache: a crash-safe file on this machine, no server to run.
//!
//! The store is a redb database with one table from [`CacheKey`] to fingerprint. redb
//! gives us what the cache promises: a commit is on disk when it returns (a `kill -9` or
//! a power cut loses no confirmed pair), readers never block, and a file lock keeps a
//! second catraca run from writing the same store at once. Every worker thread gets a
//! handle on one shared [`Database`]: transactions, not connections, isolate them.

use std::fmt::Display;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{Database, DatabaseError, Durability, ReadableDatabase, ReadableTableMetadata};
use redb::{StorageError, TableDefinition};

use super::{Cache, CacheConnection, CacheError, CacheKey};

/// Cache key -> fingerprint of the data the device confirmed for that pair.
const PAIRS: TableDefinition<[u8; 16], u64> = TableDefinition::new("pairs");

/// A cache in a local redb file; cheap to share between threads (it is one `Arc`).
pub struct EmbeddedCache {
    db: Arc<Database>,
    path: PathBuf,
}

impl EmbeddedCache {
    /// Opens the store at `path`, creating the file and its parent directories if needed.
    ///
    /// Fails, naming the path, when another catraca run has the file open (redb allows
    /// one process at a time) or when the file is not a catraca cache or is damaged.
    pub fn open(path: &Path) -> Result<EmbeddedCache, CacheError> {
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|err| store_error(path, "cannot create its directory", err))?;
        }
        if !path.exists() {
            create_atomically(path)?;
        }
        let db = Database::create(path).map_err(|err| open_error(path, err))?;
        let cache = EmbeddedCache {
            db: Arc::new(db),
            path: path.to_path_buf(),
        };
        // Created up front so that lookups in a brand-new store find an empty table
        // instead of failing on a missing one.
        cache.write(|_| Ok(()))?;
        Ok(cache)
    }

    /// Where the store lives unless told otherwise: `<cache dir>/catraca/cache.redb`
    /// (`~/.cache/catraca/cache.redb` on Linux), or `./.catraca-cache.redb` on a system
    /// without a cache directory.
    pub fn default_path() -> PathBuf {
        match dirs::cache_dir() {
            Some(dir) => dir.join("catraca").join("cache.redb"),
            None => PathBuf::from(".catraca-cache.redb"),
        }
    }

    /// The number of pairs in the store.
    pub fn len(&self) -> Result<u64, CacheError> {
        self.connection().len()
    }

    /// Whether the store holds no pair at all.
    pub fn is_empty(&self) -> Result<bool, CacheError> {
        Ok(self.len()? == 0)
    }

    fn connection(&self) -> EmbeddedConnection {
        EmbeddedConnection {
            db: Arc::clone(&self.db),
            path: self.path.clone(),
        }
    }

    fn write(
        &self,
        change: impl FnOnce(&mut redb::Table<[u8; 16], u64>) -> Result<(), StorageError>,
    ) -> Result<(), CacheError> {
        self.connection().write(change)
    }
}

impl Cache for EmbeddedCache {
    fn describe(&self) -> String {
        format!("embedded ({})", self.path.display())
    }

    fn connect(&self) -> Result<Box<dyn CacheConnection>, CacheError> {
        Ok(Box::new(self.connection()))
    }
}

/// One thread's handle on the shared database.
struct EmbeddedConnection {
    db: Arc<Database>,
    path: PathBuf,
}

impl EmbeddedConnection {
    fn len(&self) -> Result<u64, CacheError> {
        let path = &self.path;
        let read = self
            .db
            .begin_read()
            .map_err(|err| store_error(path, "cannot read", err))?;
        let table = read
            .open_table(PAIRS)
            .map_err(|err| store_error(path, "cannot read", err))?;
        table
            .len()
            .map_err(|err| store_error(path, "cannot read", err))
    }

    fn write(
        &self,
        change: impl FnOnce(&mut redb::Table<[u8; 16], u64>) -> Result<(), StorageError>,
    ) -> Result<(), CacheError> {
        let path = &self.path;
        let mut write = self
            .db
            .begin_write()
            .map_err(|err| store_error(path, "cannot write", err))?;
        // Immediate is redb's default; it is spelled out because the cache's promise
        // ("recorded means it survives a crash") rests on it.
        write
            .set_durability(Durability::Immediate)
            .map_err(|err| store_error(path, "cannot write", err))?;
        {
            let mut table = write
                .open_table(PAIRS)
                .map_err(|err| store_error(path, "cannot write", err))?;
            change(&mut table).map_err(|err| store_error(path, "cannot write", err))?;
        }
        write
            .commit()
            .map_err(|err| store_error(path, "cannot write", err))
    }
}

impl CacheConnection for EmbeddedConnection {
    fn lookup(&mut self, keys: &[CacheKey]) -> Result<Vec<Option<u64>>, CacheError> {
        let path = &self.path;
        let read = self
            .db
            .begin_read()
            .map_err(|err| store_error(path, "cannot read", err))?;
        let table = read
            .open_table(PAIRS)
            .map_err(|err| store_error(path, "cannot read", err))?;
        keys.iter()
            .map(|key| {
                table
                    .get(key.0)
                    .map(|found| found.map(|guard| guard.value()))
                    .map_err(|err| store_error(path, "cannot read", err))
            })
            .collect()
    }

    fn record(&mut self, entries: &[(CacheKey, u64)]) -> Result<(), CacheError> {
        if entries.is_empty() {
            return Ok(());
        }
        self.write(|table| {
            for (key, fingerprint) in entries {
                table.insert(key.0, fingerprint)?;
            }
            Ok(())
        })
    }

    fn forget(&mut self, keys: &[CacheKey]) -> Result<(), CacheError> {
        if keys.is_empty() {
            return Ok(());
        }
        self.write(|table| {
            for key in keys {
                table.remove(key.0)?;
            }
            Ok(())
        })
    }
}

/// Creates a new, empty store beside `path` and renames it into place, so that a run
/// killed while creating its first cache (`kill -9`, power cut) leaves either no file or
/// a complete one, never a half-written file that the next run would refuse.
fn create_atomically(path: &Path) -> Result<(), CacheError> {
    let dir = path
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let fresh = tempfile::Builder::new()
        .prefix(".catraca-cache-")
        .tempfile_in(dir)
        .map_err(|err| store_error(path, "cannot create it", err))?;
    {
        let db = Database::create(fresh.path()).map_err(|err| open_error(path, err))?;
        let txn = db
            .begin_write()
            .map_err(|err| store_error(path, "cannot create it", err))?;
        txn.open_table(PAIRS)
            .map_err(|err| store_error(path, "cannot create it", err))?;
        txn.commit()
            .map_err(|err| store_error(path, "cannot create it", err))?;
    }
    match fresh.persist_noclobber(path) {
        Ok(_) => Ok(()),
        // Another run created it meanwhile: theirs is as good as ours.
        Err(err) if path.exists() => {
            drop(err);
            Ok(())
        }
        Err(err) => Err(store_error(path, "cannot create it", err.error)),
    }
}

fn open_error(path: &Path, err: DatabaseError) -> CacheError {
    let message = match err {
        DatabaseError::DatabaseAlreadyOpen => "is in use by another catraca run (one run at a \
             time per cache file): wait for it to finish, or give this run another cache file"
            .to_string(),
        DatabaseError::UpgradeRequired(version) => format!(
            "was written by an incompatible store format (version {version}): delete it; the \
             next run sends every pair again and rebuilds it"
        ),
        DatabaseError::Storage(StorageError::Io(err))
            if err.kind() != io::ErrorKind::InvalidData =>
        {
            format!("cannot be opened: {err}")
        }
        other => format!(
            "is damaged or is not a catraca cache ({other}): delete it; the next run sends \
             every pair again and rebuilds it"
        ),
    };
    CacheError::Embedded {
        path: path.display().to_string(),
        message,
    }
}

fn store_error(path: &Path, what: &str, err: impl Display) -> CacheError {
    CacheError::Embedded {
        path: path.display().to_string(),
        message: format!("{what}: {err}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::KeySecret;

    fn keys(secret: &KeySecret, count: usize) -> Vec<CacheKey> {
        (0..count)
            .map(|n| CacheKey::for_pair(secret, "portaria-1", &format!("{n:011}")))
            .collect()
    }

    #[test]
    fn recorded_pairs_are_found_after_reopening_and_unknown_keys_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested").join("cache.redb");
        let secret = KeySecret::random();
        let keys = keys(&secret, 3);
        {
            let cache = EmbeddedCache::open(&path).unwrap();
            assert!(cache.is_empty().unwrap());
            let mut connection = cache.connect().unwrap();
            connection.record(&[(keys[0], 10), (keys[1], 11)]).unwrap();
            // A later record of the same pair replaces the fingerprint.
            connection.record(&[(keys[1], 12)]).unwrap();
        }
        let cache = EmbeddedCache::open(&path).unwrap();
        assert_eq!(cache.len().unwrap(), 2);
        let found = cache.connect().unwrap().lookup(&keys).unwrap();
        assert_eq!(found, vec![Some(10), Some(12), None]);
        assert_eq!(cache.describe(), format!("embedded ({})", path.display()));
    }

    #[test]
    fn lookup_of_nothing_and_record_of_nothing_are_fine_on_a_new_store() {
        let dir = tempfile::tempdir().unwrap();
        let cache = EmbeddedCache::open(&dir.path().join("cache.redb")).unwrap();
        let mut connection = cache.connect().unwrap();
        assert_eq!(connection.lookup(&[]).unwrap(), vec![]);
        connection.record(&[]).unwrap();
        let unknown = keys(&KeySecret::random(), 2);
        assert_eq!(connection.lookup(&unknown).unwrap(), vec![None, None]);
    }

    #[test]
    fn five_thousand_keys_come_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let cache = EmbeddedCache::open(&dir.path().join("cache.redb")).unwrap();
        let keys = keys(&KeySecret::random(), 5_000);
        let entries: Vec<(CacheKey, u64)> = keys
            .iter()
            .enumerate()
            .filter(|(n, _)| n % 2 == 0)
            .map(|(n, key)| (*key, n as u64))
            .collect();
        let mut connection = cache.connect().unwrap();
        connection.record(&entries).unwrap();
        let found = connection.lookup(&keys).unwrap();
        assert_eq!(found.len(), 5_000);
        for (n, value) in found.iter().enumerate() {
            let expected = (n % 2 == 0).then_some(n as u64);
            assert_eq!(*value, expected, "key {n}");
        }
        assert_eq!(cache.len().unwrap(), 2_500);
    }

    #[test]
    fn threads_each_with_a_connection_record_and_see_each_other() {
        let dir = tempfile::tempdir().unwrap();
        let cache = EmbeddedCache::open(&dir.path().join("cache.redb")).unwrap();
        let secret = KeySecret::random();
        std::thread::scope(|scope| {
            for thread in 0..8u64 {
                let (cache, secret) = (&cache, &secret);
                scope.spawn(move || {
                    let mut connection = cache.connect().unwrap();
                    for batch in 0..10u64 {
                        let entries: Vec<(CacheKey, u64)> = (0..50u64)
                            .map(|n| {
                                let registration = format!("{thread}-{batch}-{n}");
                                let key = CacheKey::for_pair(secret, "d", &registration);
                                (key, thread * 1_000_000 + batch * 1_000 + n)
                            })
                            .collect();
                        connection.record(&entries).unwrap();
                        let keys: Vec<CacheKey> = entries.iter().map(|(k, _)| *k).collect();
                        let found = connection.lookup(&keys).unwrap();
                        let expected: Vec<Option<u64>> =
                            entries.iter().map(|(_, v)| Some(*v)).collect();
                        assert_eq!(found, expected);
                    }
                });
            }
        });
        assert_eq!(cache.len().unwrap(), 8 * 10 * 50);
    }

    #[cfg(unix)]
    #[test]
    fn recorded_pairs_survive_kill_9_of_the_recording_process() {
        use std::io::BufRead;
        use std::process::{Command, Stdio};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.redb");
        let secret = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
        // Runs this test binary again as a process that records and then waits, and kills
        // it with SIGKILL as soon as it says the record returned: nothing gets to flush.
        let mut process = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "cache::embedded::tests::record_then_wait_to_be_killed",
            ])
            .args(["--ignored", "--nocapture", "--test-threads=1"])
            .env("CATRACA_TEST_RECORD_INTO", &path)
            .env("CATRACA_TEST_SECRET", secret)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = std::io::BufReader::new(process.stdout.take().unwrap());
        let recorded = stdout
            .lines()
            .map_while(Result::ok)
            .any(|line| line.contains("RECORDED"));
        process.kill().unwrap();
        process.wait().unwrap();
        assert!(recorded, "the helper process did not record");

        let cache = EmbeddedCache::open(&path).unwrap();
        let keys = keys(&KeySecret::from_hex(secret).unwrap(), 1_001);
        let found = cache.connect().unwrap().lookup(&keys).unwrap();
        let kept = (0..1_000).filter(|&n| found[n] == Some(n as u64)).count();
        assert_eq!(
            kept, 1_000,
            "pairs recorded before kill -9 that are still there"
        );
        assert_eq!(found[1_000], None);
    }

    /// Helper process for the test above; does nothing unless that test runs it.
    #[test]
    #[ignore = "run by recorded_pairs_survive_kill_9_of_the_recording_process"]
    fn record_then_wait_to_be_killed() {
        let Some(path) = std::env::var_os("CATRACA_TEST_RECORD_INTO") else {
            return;
        };
        let secret = KeySecret::from_hex(&std::env::var("CATRACA_TEST_SECRET").unwrap());
        let keys = keys(&secret.unwrap(), 1_000);
        let cache = EmbeddedCache::open(Path::new(&path)).unwrap();
        let mut connection = cache.connect().unwrap();
        for (n, key) in keys.iter().enumerate() {
            connection.record(&[(*key, n as u64)]).unwrap();
        }
        println!("RECORDED");
        // Killed long before this ends; the bound keeps a stray helper from lingering.
        std::thread::sleep(std::time::Duration::from_secs(30));
    }

    #[test]
    fn a_store_in_use_is_refused_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.redb");
        let _first = EmbeddedCache::open(&path).unwrap();
        let err = EmbeddedCache::open(&path).err().unwrap().to_string();
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(err.contains("in use by another catraca run"), "{err}");
    }

    #[test]
    fn a_damaged_store_is_refused_naming_the_path_and_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.redb");
        std::fs::write(&path, vec![0x5a; 64 * 1024]).unwrap();
        let err = EmbeddedCache::open(&path).err().unwrap().to_string();
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(err.contains("delete it"), "{err}");
    }

    #[test]
    fn default_path_is_under_the_user_cache_directory() {
        let path = EmbeddedCache::default_path();
        assert!(path.ends_with("catraca/cache.redb") || path.ends_with(".catraca-cache.redb"));
    }
}

#[cfg(test)]
mod creation_tests {
    use super::*;

    #[test]
    fn a_new_store_appears_whole_and_leaves_no_scratch_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.redb");
        let cache = EmbeddedCache::open(&path).unwrap();
        assert!(cache.is_empty().unwrap());
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["cache.redb".to_string()]);
    }
}
