//! Group commit: every confirmed pair of a run reaches the cache through one writer.
//!
//! Workers used to record each write batch themselves: one fsync'd redb transaction (or
//! one Redis round trip) per batch of 250, about 4,000 of them for 1,000,000 pairs,
//! serialised between ten threads. The embedded store paid most: its keys are keyed
//! hashes, uniformly random, so a commit of 250 keys rewrote about 250 different B-tree
//! leaves (docs/perf-notes.md: W2 took 33.7 s with the cache against 3.9 s without).
//! Now workers hand their confirmed pairs to a bounded channel and go on; one thread
//! gathers them and commits when [`COMMIT_WINDOW`] has passed since the oldest waiting
//! pair, when [`COMMIT_PAIRS`] are waiting, at the first Ctrl-C, and at the end of the
//! run. It sorts the keys of a commit, so that neighbouring keys land in the same leaf
//! one after the other: a commit touches each leaf once, in file order.
//!
//! The promise is unchanged: a pair is sent here only after its device confirmed it.
//! What changes is how much a crash can lose: the pairs confirmed since the last commit,
//! at most the last [`COMMIT_WINDOW`] (plus the commit in progress). That is safe
//! because the cache is only a shortcut. A lost pair is not in the cache, so the next
//! run asks its device, finds the person there with the same data and counts it
//! `unchanged`: nobody is written twice, the price is one lookup on the device.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use super::{CacheConnection, CacheKey};
use crate::reporter::Event;
use crate::stop::Stop;

/// The longest a confirmed pair waits for its commit: 100 ms. Ten commits a second at
/// most, so the fsyncs cost nothing next to the devices' work (W2 made 4,000 commits
/// before, and now about 10 per second of run), and a crash loses at most a tenth of a
/// second of work, which the next run finds on the devices and does not write again.
pub const COMMIT_WINDOW: Duration = Duration::from_millis(100);

/// Commit as soon as this many pairs wait, whatever the time: 10,000. A commit of
/// 10,000 sorted random keys touches most leaves of a store of a million pairs once, so
/// larger commits save little, and bounds the writer's memory (10,000 x 24 bytes).
pub const COMMIT_PAIRS: usize = 10_000;

/// Batches of confirmed pairs that may wait for the writer: 256, up to 64,000 pairs at
/// the default batch of 250 (1.5 MB). Enough that a worker never waits while a commit
/// is on disk; when the store cannot keep up, workers wait here instead of memory
/// growing without bound.
const QUEUE_BATCHES: usize = 256;

/// Test hook: `CATRACA_TEST_COMMIT_WINDOW_MS` stretches the commit window (never the
/// size limit, Ctrl-C or the end of the run), so that a test can kill a run while pairs
/// its devices confirmed are still waiting for their commit. Not for production: a
/// longer window only means more pairs to look up again after a crash.
pub const WINDOW_ENV: &str = "CATRACA_TEST_COMMIT_WINDOW_MS";

/// The commit window of this process: [`COMMIT_WINDOW`], unless [`WINDOW_ENV`] says
/// otherwise.
pub fn commit_window() -> Duration {
    std::env::var(WINDOW_ENV)
        .ok()
        .and_then(|ms| ms.trim().parse().ok())
        .map_or(COMMIT_WINDOW, Duration::from_millis)
}

/// Where workers hand the pairs their devices confirmed. Cheap to share by reference.
pub struct RecordQueue {
    sender: Sender<Vec<(CacheKey, u64)>>,
}

impl RecordQueue {
    /// Hands `entries` to the writer. Returns them back if the writer is gone (it
    /// cannot be, short of a bug), so that the caller counts them as not cached.
    pub fn record(&self, entries: Vec<(CacheKey, u64)>) -> Result<(), Vec<(CacheKey, u64)>> {
        if entries.is_empty() {
            return Ok(());
        }
        self.sender.send(entries).map_err(|err| err.0)
    }
}

/// Starts the writer on a thread of `scope` with its own `connection`. It commits until
/// the returned queue is dropped, then commits what is left and ends. A failed commit
/// is told to `events` as [`Event::NotCached`] with its number of pairs.
pub fn start<'scope>(
    scope: &'scope std::thread::Scope<'scope, '_>,
    connection: Box<dyn CacheConnection>,
    window: Duration,
    stop: &'scope Stop,
    events: &'scope Sender<Event>,
) -> RecordQueue {
    let (sender, received) = crossbeam_channel::bounded(QUEUE_BATCHES);
    std::thread::Builder::new()
        .name("catraca-cache-writer".into())
        .spawn_scoped(scope, move || {
            Writer {
                connection,
                pending: Vec::new(),
                oldest: None,
                window,
                events,
            }
            .run(&received, stop)
        })
        .expect("the cache writer thread starts");
    RecordQueue { sender }
}

struct Writer<'a> {
    connection: Box<dyn CacheConnection>,
    pending: Vec<(CacheKey, u64)>,
    /// When the oldest waiting pair arrived.
    oldest: Option<Instant>,
    window: Duration,
    events: &'a Sender<Event>,
}

impl Writer<'_> {
    fn run(mut self, received: &Receiver<Vec<(CacheKey, u64)>>, stop: &Stop) {
        loop {
            // Wakes up at least every COMMIT_WINDOW to notice a Ctrl-C, even when a test
            // stretched the window.
            let wait = self.oldest.map_or(COMMIT_WINDOW, |oldest| {
                self.window
                    .saturating_sub(oldest.elapsed())
                    .min(COMMIT_WINDOW)
            });
            match received.recv_timeout(wait) {
                Ok(entries) => {
                    self.oldest.get_or_insert_with(Instant::now);
                    self.pending.extend(entries);
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    self.commit();
                    return;
                }
            }
            let due = self.pending.len() >= COMMIT_PAIRS
                || self.oldest.is_some_and(|oldest| oldest.elapsed() >= self.window)
                // Stopped: the jobs in flight end soon, and a second Ctrl-C may end the
                // process at once. Commit what is there now, and each pair as it comes.
                || stop.is_set();
            if due {
                self.commit();
            }
        }
    }

    fn commit(&mut self) {
        self.oldest = None;
        if self.pending.is_empty() {
            return;
        }
        // Stable: were a key ever recorded twice in one commit, the later one wins.
        self.pending.sort_by_key(|(key, _)| key.0);
        let result = catch_unwind(AssertUnwindSafe(|| self.connection.record(&self.pending)));
        let error = match result {
            Ok(Ok(())) => None,
            Ok(Err(err)) => Some(err.to_string()),
            Err(_) => Some("the cache writer panicked".to_string()),
        };
        if let Some(error) = error {
            let _ = self.events.send(Event::NotCached {
                count: self.pending.len(),
                error,
            });
        }
        self.pending.clear();
        // A burst of 10,000 must not keep its capacity for the rest of the run.
        self.pending.shrink_to(COMMIT_PAIRS);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::{CacheError, KeySecret};
    use std::sync::{Arc, Mutex};

    type Commit = Vec<(CacheKey, u64)>;

    /// Remembers every commit it was given, and fails the ones asked to.
    #[derive(Clone, Default)]
    struct Commits {
        seen: Arc<Mutex<Vec<Commit>>>,
        fail: bool,
    }

    impl CacheConnection for Commits {
        fn lookup(&mut self, keys: &[CacheKey]) -> Result<Vec<Option<u64>>, CacheError> {
            Ok(vec![None; keys.len()])
        }
        fn record(&mut self, entries: &[(CacheKey, u64)]) -> Result<(), CacheError> {
            self.seen.lock().unwrap().push(entries.to_vec());
            if self.fail {
                return Err(CacheError::Embedded {
                    path: "x".into(),
                    message: "disk full".into(),
                });
            }
            Ok(())
        }
        fn forget(&mut self, _keys: &[CacheKey]) -> Result<(), CacheError> {
            Ok(())
        }
    }

    fn entries(from: u64, count: u64) -> Vec<(CacheKey, u64)> {
        let secret = KeySecret::random();
        (from..from + count)
            .map(|n| (CacheKey::for_pair(&secret, "d", &n.to_string()), n))
            .collect()
    }

    fn run_writer(
        commits: &Commits,
        window: Duration,
        stop: &Stop,
        feed: impl FnOnce(&RecordQueue),
    ) -> Vec<Event> {
        let (events, received) = crossbeam_channel::unbounded();
        std::thread::scope(|scope| {
            let queue = start(scope, Box::new(commits.clone()), window, stop, &events);
            feed(&queue);
        });
        drop(events);
        received.into_iter().collect()
    }

    #[test]
    fn pairs_from_many_batches_share_a_commit_sorted_by_key() {
        let commits = Commits::default();
        let all = entries(0, 1_000);
        run_writer(&commits, Duration::from_secs(600), &Stop::default(), |q| {
            for batch in all.chunks(100) {
                q.record(batch.to_vec()).unwrap();
            }
        });
        let seen = commits.seen.lock().unwrap();
        assert_eq!(seen.len(), 1, "one commit at the end of the run");
        assert_eq!(seen[0].len(), 1_000);
        assert!(seen[0].windows(2).all(|w| w[0].0 .0 <= w[1].0 .0));
        let mut expected = all.clone();
        expected.sort_by_key(|(k, _)| k.0);
        assert_eq!(seen[0], expected);
    }

    #[test]
    fn ten_thousand_waiting_pairs_are_committed_without_waiting_for_the_window() {
        let commits = Commits::default();
        let seen = commits.seen.clone();
        run_writer(&commits, Duration::from_secs(600), &Stop::default(), |q| {
            for batch in entries(0, COMMIT_PAIRS as u64 + 500).chunks(250) {
                q.record(batch.to_vec()).unwrap();
            }
            // The first commit happens while the queue is still open.
            let started = Instant::now();
            while seen.lock().unwrap().is_empty() {
                assert!(started.elapsed() < Duration::from_secs(10), "no commit");
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        let seen = commits.seen.lock().unwrap();
        assert_eq!(seen.len(), 2);
        assert!(seen[0].len() >= COMMIT_PAIRS);
        assert_eq!(seen[0].len() + seen[1].len(), COMMIT_PAIRS + 500);
    }

    #[test]
    fn the_window_commits_pairs_that_wait_while_the_run_goes_on() {
        let commits = Commits::default();
        let seen = commits.seen.clone();
        run_writer(&commits, Duration::from_millis(50), &Stop::default(), |q| {
            q.record(entries(0, 3)).unwrap();
            let started = Instant::now();
            while seen.lock().unwrap().is_empty() {
                assert!(started.elapsed() < Duration::from_secs(10), "no commit");
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        assert_eq!(commits.seen.lock().unwrap()[0].len(), 3);
    }

    #[test]
    fn a_stop_commits_at_once_whatever_the_window() {
        let commits = Commits::default();
        let seen = commits.seen.clone();
        let stop = Stop::default();
        run_writer(&commits, Duration::from_secs(600), &stop, |q| {
            q.record(entries(0, 7)).unwrap();
            stop.interrupt();
            let started = Instant::now();
            while seen.lock().unwrap().is_empty() {
                assert!(started.elapsed() < Duration::from_secs(10), "no commit");
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        assert_eq!(commits.seen.lock().unwrap()[0].len(), 7);
    }

    #[test]
    fn a_failed_commit_is_counted_as_not_cached() {
        let commits = Commits {
            fail: true,
            ..Commits::default()
        };
        let events = run_writer(&commits, Duration::from_secs(600), &Stop::default(), |q| {
            q.record(entries(0, 40)).unwrap();
            q.record(entries(40, 2)).unwrap();
        });
        let counted: Vec<(usize, String)> = events
            .into_iter()
            .filter_map(|e| match e {
                Event::NotCached { count, error } => Some((count, error)),
                _ => None,
            })
            .collect();
        assert_eq!(counted.len(), 1);
        assert_eq!(counted[0].0, 42);
        assert!(counted[0].1.contains("disk full"), "{}", counted[0].1);
    }
}
