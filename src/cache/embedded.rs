//! The default cache: a crash-safe file on this machine, no server to run.
//!
//! The store is an append-only log of commits with an index in memory. Each commit is one
//! block: its records (a 16-byte [`CacheKey`], recorded or forgotten, and the
//! fingerprint), then a checksum of the block; it is written at the end of the file and
//! `fdatasync`ed before the commit returns, so a `kill -9` or a power cut loses no
//! committed pair. A crash during a write leaves a torn last block: the next open finds
//! its checksum wrong, cuts it off and goes on without it. Its pairs are not in the cache,
//! so the next run looks them up on their devices (found: `unchanged`), and nobody is
//! written twice. Opening reads the whole log into a sorted index (24 bytes a pair; a
//! million pairs read in well under a second; a run's own records are not added to it,
//! as the run never looks them up) and rewrites the file compacted when
//! overwritten and forgotten records outnumber the live ones. An exclusive `flock` keeps
//! a second catraca run from using the same file at once.
//!
//! Why not a B-tree: the store was redb until issue 14. Cache keys are keyed hashes,
//! uniformly random, so every commit of a few thousand keys rewrote most leaves of a
//! copy-on-write B-tree: with commits of 10,000 sorted keys, a million pairs still cost
//! 3.4 s of CPU in redb alone (and a single commit of all million, 1.0 s), against a
//! whole W2 run of 1.2 s without a cache. An append costs what it writes, 25 bytes a
//! pair. The price is memory: the index holds every pair the file had when opened
//! (24 MB for a million), where redb read pages on demand. The file keeps its name, `cache.redb`, so
//! that paths in settings files stay valid; a store still in redb's format is converted
//! on its first open.

use std::fmt::Display;
use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::{Cache, CacheConnection, CacheError, CacheKey};

/// The first 16 bytes of every store: what it is and the version of its format.
const MAGIC: &[u8; 16] = b"catraca pairs v1";

/// The first bytes of a redb database: a store written before issue 14.
const REDB_MAGIC: &[u8; 9] = b"redb\x1A\x0A\xA9\x0D\x0A";

/// One record: key (16 bytes), kind (1: recorded, 0: forgotten), fingerprint (8, LE).
const RECORD_BYTES: usize = 25;

/// redb's page cache while an old store is converted: 16 MiB instead of redb's default
/// 1 GiB. The conversion reads each page once, in order, so a cache buys nothing, and a
/// store of a million pairs (about 60 MB in redb) would otherwise sit in memory whole.
const CONVERT_CACHE_BYTES: usize = 16 << 20;

/// A block claiming more records than this is not a block (a torn or damaged tail): no
/// commit is larger than the store's whole content, and 100 million pairs is far beyond
/// any site (100,000 people on 1,000 devices).
const MAX_BLOCK_RECORDS: u32 = 100_000_000;

/// Rewrite the log compacted at open when it holds this many records more than twice
/// its live pairs. Below that the waste is a few megabytes and a few milliseconds of
/// reading; a site that re-enrolls everyone daily with changed data would otherwise grow
/// the file by its whole size every day.
const COMPACT_SLACK: u64 = 100_000;

/// A cache in a local log file; cheap to share between threads (it is one `Arc`).
pub struct EmbeddedCache {
    store: Arc<Mutex<Store>>,
    path: PathBuf,
}

impl EmbeddedCache {
    /// Opens the store at `path`, creating the file and its parent directories if needed.
    ///
    /// Fails, naming the path, when another catraca run has the file open (one process
    /// at a time) or when the file is not a catraca cache.
    pub fn open(path: &Path) -> Result<EmbeddedCache, CacheError> {
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|err| store_error(path, "cannot create its directory", err))?;
        }
        if !path.exists() {
            create_atomically(path, &[])?;
        }
        let store = Store::open(path)?;
        Ok(EmbeddedCache {
            store: Arc::new(Mutex::new(store)),
            path: path.to_path_buf(),
        })
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
        let mut store = self.store.lock().expect("store lock");
        Ok(store.index()?.sorted.len() as u64)
    }

    /// Whether the store holds no pair at all.
    pub fn is_empty(&self) -> Result<bool, CacheError> {
        Ok(self.len()? == 0)
    }

    fn connection(&self) -> EmbeddedConnection {
        EmbeddedConnection {
            store: Arc::clone(&self.store),
        }
    }
}

impl Cache for EmbeddedCache {
    fn describe(&self) -> String {
        format!("embedded ({})", self.path.display())
    }

    fn connect(&self) -> Result<Box<dyn CacheConnection>, CacheError> {
        Ok(Box::new(self.connection()))
    }

    fn known_empty(&self) -> bool {
        self.len().is_ok_and(|pairs| pairs == 0)
    }
}

/// The open file, where the next commit goes, and the index.
struct Store {
    file: File,
    path: PathBuf,
    /// The end of the last whole commit: the next one is written here. A failed write
    /// may leave bytes beyond it; the next commit overwrites them, and what it does not
    /// overwrite is a torn tail that the next open cuts off.
    end: u64,
    /// The pairs of the file as it was when last read.
    index: Index,
    /// Whether commits were made since: a run records without looking up, so the index
    /// is read again only if a lookup comes after a commit (it never does in a run, only
    /// in tests). Records are not kept in memory: W2's million pairs would cost 24 MB.
    stale: bool,
}

/// Every pair of the file: `sorted` by key, one value each; `recent` holds changes read
/// from the file and not yet folded in, in order.
#[derive(Default)]
struct Index {
    sorted: Vec<([u8; 16], u64)>,
    recent: Vec<([u8; 16], Option<u64>)>,
    /// Where each bucket (the first two bytes of a key) starts in `sorted`, and its end
    /// last: a lookup searches about 15 neighbouring pairs of a million instead of
    /// the whole array. A binary search over 24 MB misses the processor's caches on
    /// nearly every one of its 20 steps: W3 (a million lookups) spent 69% of its CPU
    /// there (`perf record`). Cache keys are keyed hashes, so buckets fill evenly.
    /// Empty until `sorted` is first settled. 256 KB.
    starts: Vec<u32>,
}

/// The bucket of a key in [`Index::starts`]: its first two bytes, in sort order.
fn bucket_of(key: &[u8; 16]) -> usize {
    usize::from(u16::from_be_bytes([key[0], key[1]]))
}

impl Index {
    /// Folds `recent` into `sorted`: the last change of a key wins, a forget removes it.
    fn settle(&mut self) {
        if self.recent.is_empty() {
            return;
        }
        let mut recent = std::mem::take(&mut self.recent);
        // Stable, so that of several changes of one key the last stays last.
        recent.sort_by_key(|(key, _)| *key);
        let mut merged = Vec::with_capacity(self.sorted.len() + recent.len());
        let mut old = std::mem::take(&mut self.sorted).into_iter().peekable();
        let mut new = recent.into_iter().peekable();
        while let Some(&(key, change)) = new.peek() {
            new.next();
            // Only the last change of this key counts.
            if new.peek().is_some_and(|(next, _)| *next == key) {
                continue;
            }
            while let Some(&(before, value)) = old.peek() {
                if before > key {
                    break;
                }
                old.next();
                if before < key {
                    merged.push((before, value));
                }
            }
            if let Some(value) = change {
                merged.push((key, value));
            }
        }
        merged.extend(old);
        self.sorted = merged;
        self.starts = bucket_starts(&self.sorted);
    }

    fn get(&self, key: &[u8; 16]) -> Option<u64> {
        let (from, to) = match self.starts.is_empty() {
            true => (0, self.sorted.len()),
            false => {
                let bucket = bucket_of(key);
                (
                    self.starts[bucket] as usize,
                    self.starts[bucket + 1] as usize,
                )
            }
        };
        let bucket = &self.sorted[from..to];
        bucket
            .binary_search_by_key(key, |(k, _)| *k)
            .ok()
            .map(|at| bucket[at].1)
    }
}

/// The start of each bucket in `sorted` (sorted by key), then its length.
fn bucket_starts(sorted: &[([u8; 16], u64)]) -> Vec<u32> {
    let buckets = usize::from(u16::MAX) + 1;
    let mut starts = Vec::with_capacity(buckets + 1);
    let mut at = 0;
    for bucket in 0..buckets {
        while at < sorted.len() && bucket_of(&sorted[at].0) < bucket {
            at += 1;
        }
        starts.push(at as u32);
    }
    starts.push(sorted.len() as u32);
    starts
}

impl Store {
    fn open(path: &Path) -> Result<Store, CacheError> {
        let mut file = open_locked(path)?;
        let mut magic = [0u8; 16];
        let read = read_up_to(&mut file, &mut magic)
            .map_err(|err| store_error(path, "cannot be read", err))?;
        if read >= REDB_MAGIC.len() && magic.starts_with(REDB_MAGIC) {
            drop(file);
            convert_from_redb(path)?;
            file = open_locked(path)?;
        } else if read < MAGIC.len() || &magic != MAGIC {
            return Err(damaged(path, "it does not start as one"));
        }
        let (index, end, records) = read_log(&file, path)?;
        let length = file
            .metadata()
            .map_err(|err| store_error(path, "cannot be read", err))?
            .len();
        let mut store = Store {
            file,
            path: path.to_path_buf(),
            end,
            index,
            stale: false,
        };
        if length > end {
            // A torn last commit (a crash while writing it): its pairs were never
            // confirmed as recorded, and the devices still have them.
            log::warn!(
                "cache store {}: dropping an unfinished commit at its end ({} bytes) left by an interrupted run; those pairs will be checked on the devices",
                path.display(),
                length - end
            );
            store
                .file
                .set_len(end)
                .and_then(|()| store.file.sync_data())
                .map_err(|err| store_error(path, "cannot write", err))?;
        }
        let live = store.index.sorted.len() as u64;
        if records > 2 * live + COMPACT_SLACK {
            store.compact()?;
        }
        Ok(store)
    }

    /// Appends one commit and waits for it to be on disk.
    fn commit(&mut self, records: &[([u8; 16], Option<u64>)]) -> Result<(), CacheError> {
        if records.is_empty() {
            return Ok(());
        }
        let block = block(records);
        self.file
            .write_all_at(&block, self.end)
            .and_then(|()| self.file.sync_data())
            .map_err(|err| store_error(&self.path, "cannot write", err))?;
        self.end += block.len() as u64;
        self.stale = true;
        Ok(())
    }

    /// The index of the file as it is now.
    fn index(&mut self) -> Result<&Index, CacheError> {
        if self.stale {
            let (index, _, _) = read_log(&self.file, &self.path)?;
            self.index = index;
            self.stale = false;
        }
        Ok(&self.index)
    }

    /// Rewrites the file as one commit of its live pairs, beside it and then renamed
    /// over it, so that a crash leaves the old file or the new one, both whole.
    fn compact(&mut self) -> Result<(), CacheError> {
        let live: Vec<([u8; 16], Option<u64>)> = self
            .index()?
            .sorted
            .iter()
            .map(|&(key, value)| (key, Some(value)))
            .collect();
        let file = create_atomically_over(&self.path, &live)?;
        self.end = MAGIC.len() as u64
            + if live.is_empty() {
                0
            } else {
                block_len(live.len())
            };
        self.file = file;
        Ok(())
    }
}

/// One thread's handle on the shared store.
struct EmbeddedConnection {
    store: Arc<Mutex<Store>>,
}

impl CacheConnection for EmbeddedConnection {
    fn lookup(&mut self, keys: &[CacheKey]) -> Result<Vec<Option<u64>>, CacheError> {
        let mut store = self.store.lock().expect("store lock");
        let index = store.index()?;
        Ok(keys.iter().map(|key| index.get(&key.0)).collect())
    }

    fn record(&mut self, entries: &[(CacheKey, u64)]) -> Result<(), CacheError> {
        let records: Vec<([u8; 16], Option<u64>)> = entries
            .iter()
            .map(|(key, fingerprint)| (key.0, Some(*fingerprint)))
            .collect();
        self.store.lock().expect("store lock").commit(&records)
    }

    fn forget(&mut self, keys: &[CacheKey]) -> Result<(), CacheError> {
        let records: Vec<([u8; 16], Option<u64>)> = keys.iter().map(|key| (key.0, None)).collect();
        self.store.lock().expect("store lock").commit(&records)
    }
}

/// The bytes of one commit: the number of records (u32 LE), the records, and the
/// FNV-1a 64 checksum of everything before it (u64 LE). FNV is no defence against
/// tampering (whoever can write the file can write any pair); it tells a whole block
/// from a torn one, at a few milliseconds per million records.
fn block(records: &[([u8; 16], Option<u64>)]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(block_len(records.len()) as usize);
    bytes.extend_from_slice(&(records.len() as u32).to_le_bytes());
    for (key, value) in records {
        bytes.extend_from_slice(key);
        bytes.push(u8::from(value.is_some()));
        bytes.extend_from_slice(&value.unwrap_or(0).to_le_bytes());
    }
    let checksum = fnv1a(FNV_OFFSET, &bytes);
    bytes.extend_from_slice(&checksum.to_le_bytes());
    bytes
}

fn block_len(records: usize) -> u64 {
    4 + (records * RECORD_BYTES) as u64 + 8
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

fn fnv1a(mut hash: u64, bytes: &[u8]) -> u64 {
    for &byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// Reads every whole commit after the header: the index, where the last whole commit
/// ends, and how many records the file holds (live or not). Stops at the first block
/// that is cut short or whose checksum is wrong: only the last commit can be torn (each
/// is written after the one before it is on disk), and a cache that lost its end is
/// still right, only less complete.
fn read_log(file: &File, path: &Path) -> Result<(Index, u64, u64), CacheError> {
    let mut reader = BufReader::with_capacity(1 << 20, file);
    reader
        .seek(SeekFrom::Start(MAGIC.len() as u64))
        .map_err(|err| store_error(path, "cannot be read", err))?;
    let mut index = Index::default();
    let mut end = MAGIC.len() as u64;
    let mut records = 0u64;
    let mut record = [0u8; RECORD_BYTES];
    'blocks: loop {
        let mut count = [0u8; 4];
        match read_up_to(&mut reader, &mut count) {
            Ok(4) => {}
            Ok(_) => break,
            Err(err) => return Err(store_error(path, "cannot be read", err)),
        }
        let count_value = u32::from_le_bytes(count);
        if count_value == 0 || count_value > MAX_BLOCK_RECORDS {
            break;
        }
        let mut hash = fnv1a(FNV_OFFSET, &count);
        let mark = index.recent.len();
        for _ in 0..count_value {
            match read_up_to(&mut reader, &mut record) {
                Ok(RECORD_BYTES) => {}
                Ok(_) => {
                    index.recent.truncate(mark);
                    break 'blocks;
                }
                Err(err) => return Err(store_error(path, "cannot be read", err)),
            }
            hash = fnv1a(hash, &record);
            let key: [u8; 16] = record[..16].try_into().expect("16 bytes");
            let value = u64::from_le_bytes(record[17..].try_into().expect("8 bytes"));
            index.recent.push((key, (record[16] == 1).then_some(value)));
        }
        let mut checksum = [0u8; 8];
        let whole = matches!(read_up_to(&mut reader, &mut checksum), Ok(8))
            && u64::from_le_bytes(checksum) == hash;
        if !whole {
            index.recent.truncate(mark);
            break;
        }
        records += u64::from(count_value);
        end += block_len(count_value as usize);
        // Folded block by block would sort a million pairs a hundred times; at the end
        // once, and at most a block's worth beyond the live pairs meanwhile.
        if index.recent.len() > 4 * index.sorted.len().max(1_000_000) {
            index.settle();
        }
    }
    index.settle();
    index.recent.shrink_to_fit();
    Ok((index, end, records))
}

/// Reads until `buffer` is full or the end of the input; returns how much it read.
fn read_up_to(reader: &mut impl Read, buffer: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match reader.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(filled)
}

/// Opens the store for reading and writing and takes its exclusive lock, or says that
/// another run holds it.
fn open_locked(path: &Path) -> Result<File, CacheError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|err| store_error(path, "cannot be opened", err))?;
    lock(&file, path)?;
    Ok(file)
}

fn lock(file: &File, path: &Path) -> Result<(), CacheError> {
    // SAFETY: flock on a descriptor this `File` owns and keeps open; the lock goes with
    // the descriptor when the file is closed.
    let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if locked == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    if err.kind() == io::ErrorKind::WouldBlock {
        return Err(CacheError::Embedded {
            path: path.display().to_string(),
            message: "is in use by another catraca run (one run at a time per cache file): \
                      wait for it to finish, or give this run another cache file"
                .to_string(),
        });
    }
    Err(store_error(path, "cannot be locked", err))
}

/// Creates a store holding `live` beside `path` and renames it into place (which must
/// not exist yet), so that a run killed while creating its first cache (`kill -9`,
/// power cut) leaves either no file or a complete one, never a half-written file.
fn create_atomically(path: &Path, live: &[([u8; 16], Option<u64>)]) -> Result<(), CacheError> {
    let fresh = write_beside(path, live)?;
    match fresh.persist_noclobber(path) {
        Ok(_) => sync_dir(path),
        // Another run created it meanwhile: theirs is as good as ours.
        Err(err) if path.exists() => {
            drop(err);
            Ok(())
        }
        Err(err) => Err(store_error(path, "cannot create it", err.error)),
    }
}

/// Writes a store holding `live` beside `path`, locks it and renames it over `path`:
/// the caller holds the old file's lock until then, and gets the new one locked.
fn create_atomically_over(
    path: &Path,
    live: &[([u8; 16], Option<u64>)],
) -> Result<File, CacheError> {
    let fresh = write_beside(path, live)?;
    lock(fresh.as_file(), path)?;
    let file = fresh
        .persist(path)
        .map_err(|err| store_error(path, "cannot rewrite it", err.error))?;
    sync_dir(path)?;
    Ok(file)
}

fn write_beside(
    path: &Path,
    live: &[([u8; 16], Option<u64>)],
) -> Result<tempfile::NamedTempFile, CacheError> {
    let fresh = tempfile::Builder::new()
        .prefix(".catraca-cache-")
        .tempfile_in(parent_of(path))
        .map_err(|err| store_error(path, "cannot create it", err))?;
    let mut bytes = MAGIC.to_vec();
    if !live.is_empty() {
        bytes.extend_from_slice(&block(live));
    }
    fresh
        .as_file()
        .write_all_at(&bytes, 0)
        .and_then(|()| fresh.as_file().sync_all())
        .map_err(|err| store_error(path, "cannot create it", err))?;
    Ok(fresh)
}

/// Makes a rename in `path`'s directory survive a power cut.
fn sync_dir(path: &Path) -> Result<(), CacheError> {
    File::open(parent_of(path))
        .and_then(|dir| dir.sync_all())
        .map_err(|err| store_error(path, "cannot create it", err))
}

fn parent_of(path: &Path) -> &Path {
    path.parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Converts a store written by redb (catraca before issue 14) in place: its pairs are
/// read and written as one commit of a new store that replaces it.
fn convert_from_redb(path: &Path) -> Result<(), CacheError> {
    use redb::{ReadableDatabase, ReadableTable, TableDefinition};
    const PAIRS: TableDefinition<[u8; 16], u64> = TableDefinition::new("pairs");
    let old = |err: &dyn Display| {
        damaged(
            path,
            &format!("it looks like an older catraca cache that cannot be read ({err})"),
        )
    };
    let live: Vec<([u8; 16], Option<u64>)> = {
        let db = redb::Builder::new()
            .set_cache_size(CONVERT_CACHE_BYTES)
            .open(path)
            .map_err(|err| match err {
                redb::DatabaseError::DatabaseAlreadyOpen => CacheError::Embedded {
                    path: path.display().to_string(),
                    message: "is in use by another catraca run (one run at a time per cache \
                          file): wait for it to finish, or give this run another cache file"
                        .to_string(),
                },
                other => old(&other),
            })?;
        let read = db.begin_read().map_err(|err| old(&err))?;
        let table = read.open_table(PAIRS).map_err(|err| old(&err))?;
        let mut live = Vec::new();
        for entry in table.iter().map_err(|err| old(&err))? {
            let (key, value) = entry.map_err(|err| old(&err))?;
            live.push((key.value(), Some(value.value())));
        }
        live
    };
    log::info!(
        "cache store {}: converting {} pairs from the older format",
        path.display(),
        live.len()
    );
    let fresh = write_beside(path, &live)?;
    fresh
        .persist(path)
        .map_err(|err| store_error(path, "cannot rewrite it", err.error))?;
    sync_dir(path)
}

fn damaged(path: &Path, why: &str) -> CacheError {
    CacheError::Embedded {
        path: path.display().to_string(),
        message: format!(
            "is damaged or is not a catraca cache ({why}): delete it; the next run checks \
             every pair on the devices and rebuilds it"
        ),
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
            assert!(cache.known_empty(), "a new store vouches for nothing");
            let mut connection = cache.connect().unwrap();
            connection.record(&[(keys[0], 10), (keys[1], 11)]).unwrap();
            assert!(!cache.known_empty());
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
mod log_tests {
    use super::*;

    #[test]
    fn the_bucketed_index_finds_every_key_and_no_other() {
        let mut index = Index::default();
        // Keys in the first and last buckets, in one bucket together, and spread.
        let mut keys: Vec<[u8; 16]> = vec![[0; 16], [0xff; 16], [7; 16]];
        keys.extend((1..5_000u32).map(|i| {
            let mut key = [0u8; 16];
            key[..4].copy_from_slice(&i.wrapping_mul(2_654_435_761).to_be_bytes());
            key[4..8].copy_from_slice(&i.to_le_bytes());
            key
        }));
        let mut same_bucket = [7u8; 16];
        same_bucket[15] = 8;
        keys.push(same_bucket);
        index.recent = keys
            .iter()
            .enumerate()
            .map(|(i, k)| (*k, Some(i as u64)))
            .collect();
        index.settle();
        assert_eq!(index.starts.len(), 65_537);
        for (i, key) in keys.iter().enumerate() {
            assert_eq!(index.get(key), Some(i as u64), "{key:?}");
        }
        let mut absent = [7u8; 16];
        absent[15] = 9;
        assert_eq!(index.get(&absent), None);
        assert_eq!(index.get(&[0x80; 16]), None);
        // A forget removes it from its bucket too.
        index.recent.push((same_bucket, None));
        index.settle();
        assert_eq!(index.get(&same_bucket), None);
        assert_eq!(index.get(&[7; 16]), Some(2));
    }
    use crate::cache::KeySecret;

    fn entries(secret: &KeySecret, from: u64, count: u64) -> Vec<(CacheKey, u64)> {
        (from..from + count)
            .map(|n| (CacheKey::for_pair(secret, "d", &n.to_string()), n))
            .collect()
    }

    #[test]
    fn a_torn_last_commit_is_cut_off_and_the_commits_before_it_stay() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.redb");
        let secret = KeySecret::random();
        let (first, second) = (entries(&secret, 0, 100), entries(&secret, 100, 50));
        let whole = {
            let cache = EmbeddedCache::open(&path).unwrap();
            cache.connect().unwrap().record(&first).unwrap();
            let whole = std::fs::metadata(&path).unwrap().len();
            cache.connect().unwrap().record(&second).unwrap();
            whole
        };
        // A crash in the middle of writing the second commit.
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len(whole + 4 + 30 * RECORD_BYTES as u64).unwrap();
        drop(file);
        {
            let cache = EmbeddedCache::open(&path).unwrap();
            assert_eq!(cache.len().unwrap(), 100);
            let keys: Vec<CacheKey> = first.iter().chain(&second).map(|(k, _)| *k).collect();
            let found = cache.connect().unwrap().lookup(&keys).unwrap();
            assert!(found[..100]
                .iter()
                .zip(&first)
                .all(|(f, (_, v))| *f == Some(*v)));
            assert!(found[100..].iter().all(Option::is_none));
            // The torn bytes are gone: what comes next is readable after it.
            cache.connect().unwrap().record(&second[..10]).unwrap();
        }
        assert_eq!(EmbeddedCache::open(&path).unwrap().len().unwrap(), 110);
    }

    #[test]
    fn a_wrong_checksum_at_the_end_counts_as_torn() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.redb");
        let secret = KeySecret::random();
        {
            let cache = EmbeddedCache::open(&path).unwrap();
            cache
                .connect()
                .unwrap()
                .record(&entries(&secret, 0, 10))
                .unwrap();
            cache
                .connect()
                .unwrap()
                .record(&entries(&secret, 10, 10))
                .unwrap();
        }
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 9;
        bytes[last] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(EmbeddedCache::open(&path).unwrap().len().unwrap(), 10);
    }

    #[test]
    fn forgotten_and_rewritten_pairs_read_back_as_their_last_change() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.redb");
        let secret = KeySecret::random();
        let all = entries(&secret, 0, 20);
        let keys: Vec<CacheKey> = all.iter().map(|(k, _)| *k).collect();
        {
            let cache = EmbeddedCache::open(&path).unwrap();
            let mut connection = cache.connect().unwrap();
            connection.record(&all).unwrap();
            connection.forget(&keys[..5]).unwrap();
            connection.record(&[(keys[0], 99), (keys[7], 77)]).unwrap();
            let found = connection.lookup(&keys).unwrap();
            assert_eq!(found[0], Some(99));
            assert_eq!(&found[1..5], &[None; 4]);
            assert_eq!(found[7], Some(77));
        }
        let cache = EmbeddedCache::open(&path).unwrap();
        let found = cache.connect().unwrap().lookup(&keys).unwrap();
        assert_eq!(found[0], Some(99));
        assert_eq!(&found[1..5], &[None; 4]);
        assert_eq!(found[6], Some(6));
        assert_eq!(found[7], Some(77));
        assert_eq!(cache.len().unwrap(), 16);
    }

    #[test]
    fn a_log_mostly_of_dead_records_is_compacted_when_opened() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.redb");
        let secret = KeySecret::random();
        let all = entries(&secret, 0, COMPACT_SLACK + 10);
        let keys: Vec<CacheKey> = all.iter().map(|(k, _)| *k).collect();
        {
            let cache = EmbeddedCache::open(&path).unwrap();
            let mut connection = cache.connect().unwrap();
            connection.record(&all).unwrap();
            connection.forget(&keys[10..]).unwrap();
        }
        let before = std::fs::metadata(&path).unwrap().len();
        let cache = EmbeddedCache::open(&path).unwrap();
        let after = std::fs::metadata(&path).unwrap().len();
        assert_eq!(
            after,
            MAGIC.len() as u64 + block_len(10),
            "{before} -> {after}"
        );
        assert_eq!(cache.len().unwrap(), 10);
        // Still locked, still appendable, still read back whole.
        assert!(EmbeddedCache::open(&path).is_err());
        cache.connect().unwrap().record(&all[10..12]).unwrap();
        drop(cache);
        let cache = EmbeddedCache::open(&path).unwrap();
        let found = cache.connect().unwrap().lookup(&keys[..12]).unwrap();
        assert!(found.iter().enumerate().all(|(n, f)| *f == Some(n as u64)));
    }

    #[test]
    fn a_store_written_by_redb_is_converted_with_its_pairs() {
        use redb::TableDefinition;
        const PAIRS: TableDefinition<[u8; 16], u64> = TableDefinition::new("pairs");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.redb");
        let secret = KeySecret::random();
        let all = entries(&secret, 0, 500);
        {
            let db = redb::Database::create(&path).unwrap();
            let write = db.begin_write().unwrap();
            {
                let mut table = write.open_table(PAIRS).unwrap();
                for (key, value) in &all {
                    table.insert(key.0, value).unwrap();
                }
            }
            write.commit().unwrap();
        }
        let cache = EmbeddedCache::open(&path).unwrap();
        assert_eq!(cache.len().unwrap(), 500);
        let keys: Vec<CacheKey> = all.iter().map(|(k, _)| *k).collect();
        let found = cache.connect().unwrap().lookup(&keys).unwrap();
        assert!(found.iter().enumerate().all(|(n, f)| *f == Some(n as u64)));
        drop(cache);
        assert!(std::fs::read(&path).unwrap().starts_with(MAGIC));
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
