//! The shared cache: Redis, so that several machines enrolling the same devices (as the
//! system we replace did) skip each other's work.
//!
//! Each pair is a plain string key `catraca:pair:<32 hex digits of the CacheKey>` holding
//! the fingerprint in decimal, readable with `redis-cli` and independent of catraca's
//! version. Work is batched so the network is crossed once per batch, not once per key:
//! lookups are MGETs of 1,000 keys sent together in one pipeline, records one pipeline of
//! SETs. Every worker thread has its own connection (redis-rs connections are not
//! `Sync`), with read and write timeouts, since redis-rs would otherwise block forever
//! on a Redis that stopped answering; and a batch gives up at its first timeout, so a
//! hung Redis costs a worker 5 s per batch, whatever the batch size.

use std::collections::HashSet;
use std::time::Duration;

use redis::{Client, Connection, IntoConnectionInfo, RedisError, Value};

use super::{Cache, CacheConnection, CacheError, CacheKey};

/// How long to wait for a TCP connection. A Redis on the LAN accepts in milliseconds;
/// two seconds tells "down or unreachable" from "slow" without making a run whose cache
/// is gone wait long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// How long one round trip may take once connected. The largest we send (100,000 keys)
/// takes well under a second; a Redis silent for five is stuck, and the run should hear
/// about it rather than hang.
const READ_WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Keys per MGET. Redis runs one command at a time: a single MGET of 100,000 keys would
/// make every other client (other catraca machines) wait for it.
const KEYS_PER_MGET: usize = 1_000;

/// Keys per round trip (a pipeline of MGETs or SETs): bounds the memory one request takes
/// on both ends. 100,000 keys are about 5 MB each way and well under a second of work.
const KEYS_PER_ROUND_TRIP: usize = 100_000;

const KEY_PREFIX: &str = "catraca:pair:";

/// A cache in Redis. Holds no connection itself: each [`Cache::connect`] opens one.
pub struct RedisCache {
    client: Client,
    /// The URL as given, password replaced by `***`: the only form that reaches messages.
    url: String,
}

impl RedisCache {
    /// Checks `url` (`redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]`), connects (2 s
    /// timeout) and sends PING, so a wrong address or password is reported before any
    /// work starts. Errors name the URL with its password replaced by `***`.
    pub fn open(url: &str) -> Result<RedisCache, CacheError> {
        let redacted = redact_url(url);
        let client = client_for(url).map_err(|err| CacheError::Redis {
            url: redacted.clone(),
            message: format!(
                "is not a usable Redis URL ({err}): expected \
                 redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]"
            ),
        })?;
        let cache = RedisCache {
            client,
            url: redacted,
        };
        // The PING too gets only the connect timeout: a Redis that accepts connections
        // and never answers is as unusable as one that refuses them, and open says so fast.
        let mut connection = cache.open_connection(CONNECT_TIMEOUT)?;
        redis::cmd("PING")
            .query::<String>(&mut connection)
            .map_err(|err| redis_error(&cache.url, &err))?;
        Ok(cache)
    }

    /// The number of `catraca:pair:*` keys in the database, found with SCAN (which, unlike
    /// KEYS, does not block the server). Meant for tests and reports: it reads every key.
    pub fn count_keys(&self) -> Result<u64, CacheError> {
        let mut connection = self.open_connection(READ_WRITE_TIMEOUT)?;
        let pattern = format!("{KEY_PREFIX}*");
        // SCAN may return a key twice (when Redis resizes its table mid-scan): count a set.
        let mut seen: HashSet<Vec<u8>> = HashSet::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(KEYS_PER_MGET)
                .query(&mut connection)
                .map_err(|err| redis_error(&self.url, &err))?;
            seen.extend(keys);
            if next == 0 {
                return Ok(seen.len() as u64);
            }
            cursor = next;
        }
    }

    fn open_connection(&self, read_write: Duration) -> Result<Connection, CacheError> {
        connect_with_timeouts(&self.client, CONNECT_TIMEOUT, read_write)
            .map_err(|err| redis_error(&self.url, &err))
    }
}

impl Cache for RedisCache {
    fn describe(&self) -> String {
        format!("redis ({})", self.url)
    }

    fn connect(&self) -> Result<Box<dyn CacheConnection>, CacheError> {
        Ok(Box::new(RedisConnection {
            connection: Some(self.open_connection(READ_WRITE_TIMEOUT)?),
            client: self.client.clone(),
            url: self.url.clone(),
        }))
    }
}

/// One thread's connection. After any failed request it is dropped and the next call
/// reconnects: a Redis restarted mid-run costs the failed batch, not the rest of the run,
/// and replies still in flight from the failed request can never be read as answers to
/// the next one.
struct RedisConnection {
    connection: Option<Connection>,
    client: Client,
    url: String,
}

impl RedisConnection {
    fn run<T>(
        &mut self,
        request: impl FnOnce(&mut Connection) -> redis::RedisResult<T>,
    ) -> Result<T, CacheError> {
        let connection = match &mut self.connection {
            Some(connection) => connection,
            None => self.connection.insert(
                connect_with_timeouts(&self.client, CONNECT_TIMEOUT, READ_WRITE_TIMEOUT)
                    .map_err(|err| redis_error(&self.url, &err))?,
            ),
        };
        request(connection).map_err(|err| {
            self.connection = None;
            redis_error(&self.url, &err)
        })
    }
}

impl CacheConnection for RedisConnection {
    fn lookup(&mut self, keys: &[CacheKey]) -> Result<Vec<Option<u64>>, CacheError> {
        let mut found = Vec::with_capacity(keys.len());
        for round_trip in keys.chunks(KEYS_PER_ROUND_TRIP) {
            let mut pipeline = redis::pipe();
            for chunk in round_trip.chunks(KEYS_PER_MGET) {
                let names: Vec<String> = chunk.iter().map(redis_key).collect();
                // MGET, not the typed `mget` helper: that one turns a single key into GET,
                // whose reply has a different shape.
                pipeline.cmd("MGET").arg(names);
            }
            let replies = self.run(|c| send_pipeline(c, &pipeline))?;
            let mut values: Vec<Option<String>> = Vec::with_capacity(round_trip.len());
            for reply in replies {
                let chunk: Vec<Option<String>> = redis::from_redis_value(reply)
                    .map_err(|err| redis_error(&self.url, &err.into()))?;
                values.extend(chunk);
            }
            // A miscount would pair fingerprints with the wrong people: refuse it.
            if values.len() != round_trip.len() {
                self.connection = None;
                return Err(CacheError::Redis {
                    url: self.url.clone(),
                    message: format!(
                        "answered {} values for {} keys: is this a Redis server?",
                        values.len(),
                        round_trip.len()
                    ),
                });
            }
            found.extend(
                values
                    .iter()
                    .map(|value| value.as_deref().and_then(parse_fingerprint)),
            );
        }
        Ok(found)
    }

    fn record(&mut self, entries: &[(CacheKey, u64)]) -> Result<(), CacheError> {
        for round_trip in entries.chunks(KEYS_PER_ROUND_TRIP) {
            // MSETs of 1,000 pairs written straight in the protocol: one reply per
            // thousand pairs instead of one per pair, and no command object per pair
            // (a SET each cost W2 more CPU than the whole run without a cache).
            let mut packed = Vec::with_capacity(round_trip.len() * 80);
            let mut commands = 0;
            for chunk in round_trip.chunks(KEYS_PER_MGET) {
                pack_mset(&mut packed, chunk);
                commands += 1;
            }
            self.run(|c| send_packed(c, &packed, commands))?;
        }
        Ok(())
    }

    fn forget(&mut self, keys: &[CacheKey]) -> Result<(), CacheError> {
        for round_trip in keys.chunks(KEYS_PER_ROUND_TRIP) {
            let mut pipeline = redis::pipe();
            for key in round_trip {
                pipeline.del(redis_key(key));
            }
            self.run(|c| send_pipeline(c, &pipeline))?;
        }
        Ok(())
    }
}

/// Sends `pipeline` in one write, then reads its replies in order and stops at the first
/// failure (a server error is one too).
///
/// Not redis-rs's `Pipeline::query`: after a read times out, that one keeps waiting for
/// every remaining reply, so a Redis gone silent would hold a thread for 5 s per command
/// (over 8 minutes for a pipeline of 100 SETs) instead of 5 s. The caller drops the
/// connection after a failure, with any unread replies.
fn send_pipeline(
    connection: &mut Connection,
    pipeline: &redis::Pipeline,
) -> redis::RedisResult<Vec<Value>> {
    if pipeline.is_empty() {
        return Ok(Vec::new());
    }
    connection.send_packed_command(&pipeline.get_packed_pipeline())?;
    (0..pipeline.len())
        .map(|_| connection.recv_response()?.extract_error())
        .collect()
}

/// Appends `MSET key fingerprint ...` for `entries` to `packed`, in the Redis protocol.
fn pack_mset(packed: &mut Vec<u8>, entries: &[(CacheKey, u64)]) {
    let bulk = |packed: &mut Vec<u8>, text: &[u8]| {
        packed.push(b'$');
        push_decimal(packed, text.len() as u64);
        packed.extend_from_slice(b"\r\n");
        packed.extend_from_slice(text);
        packed.extend_from_slice(b"\r\n");
    };
    packed.push(b'*');
    push_decimal(packed, 1 + 2 * entries.len() as u64);
    packed.extend_from_slice(b"\r\n");
    bulk(packed, b"MSET");
    let mut digits = Vec::with_capacity(20);
    for (key, fingerprint) in entries {
        bulk(packed, redis_key(key).as_bytes());
        digits.clear();
        push_decimal(&mut digits, *fingerprint);
        bulk(packed, &digits);
    }
}

/// `n` in decimal digits, without going through `fmt`.
fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// Sends commands already in the protocol in one write, then reads their `commands`
/// replies and stops at the first failure, as [`send_pipeline`] does.
fn send_packed(
    connection: &mut Connection,
    packed: &[u8],
    commands: usize,
) -> redis::RedisResult<()> {
    if commands == 0 {
        return Ok(());
    }
    connection.send_packed_command(packed)?;
    for _ in 0..commands {
        connection.recv_response()?.extract_error()?;
    }
    Ok(())
}

/// A value that is not a fingerprint (written by something else) counts as a miss: the
/// pair is sent again and its record overwrites the value.
fn parse_fingerprint(text: &str) -> Option<u64> {
    let parsed = text.parse().ok();
    if parsed.is_none() {
        log::warn!("redis cache: ignoring a value that is not a fingerprint: {text:?}");
    }
    parsed
}

fn redis_key(key: &CacheKey) -> String {
    let mut name = String::with_capacity(KEY_PREFIX.len() + 32);
    name.push_str(KEY_PREFIX);
    name.push_str(&key.to_hex());
    name
}

/// A client for `url` that sends no `CLIENT SETINFO` when it connects.
///
/// redis-rs waits one full timeout per handshake command when Redis is silent; its two
/// `CLIENT SETINFO` commands would double the time to notice a hung Redis on every
/// reconnect. What remains is AUTH and SELECT, and only when the URL asks for them.
pub(crate) fn client_for(url: &str) -> redis::RedisResult<Client> {
    let info = url.into_connection_info()?;
    let settings = info.redis_settings().clone().set_skip_set_lib_name();
    Client::open(info.set_redis_settings(settings))
}

/// Connects with a connect timeout, then sets the read and write timeouts that redis-rs
/// leaves unset ("block forever") on the connection it returns.
pub(crate) fn connect_with_timeouts(
    client: &Client,
    connect: Duration,
    read_write: Duration,
) -> redis::RedisResult<Connection> {
    let connection = client.get_connection_with_timeout(connect)?;
    connection.set_read_timeout(Some(read_write))?;
    connection.set_write_timeout(Some(read_write))?;
    Ok(connection)
}

/// What went wrong, in words that point at the fix.
fn redis_error(url: &str, err: &RedisError) -> CacheError {
    CacheError::Redis {
        url: url.to_string(),
        message: explain(err),
    }
}

/// What a Redis error means for the user, and what to check, on one line (shared with
/// the work queue of `catraca publish` and `agent`, which reaches a Redis too).
pub(crate) fn explain(err: &RedisError) -> String {
    // Some redis-rs messages span lines; an error message is one line.
    let detail = err
        .to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let message = if err.is_connection_refusal() {
        format!("connection refused ({detail}): is Redis running there? Check the host and port")
    } else if err.is_timeout() {
        format!(
            "no answer in time ({detail}): check the host, the port and any firewall between \
             here and Redis"
        )
    } else if err.code() == Some("NOAUTH") {
        "this Redis requires a password: give it in the URL, \
         redis://:PASSWORD@HOST:PORT"
            .to_string()
    } else if err.kind() == redis::ErrorKind::AuthenticationFailed
        || err.code() == Some("WRONGPASS")
    {
        format!("password refused ({detail}): check the user and password in the URL")
    } else if err.is_connection_dropped() {
        format!("lost the connection ({detail}): Redis stopped or the network dropped")
    } else if detail.contains("certificate") {
        format!(
            "its TLS certificate was refused ({detail}): rediss:// trusts the system's \
             certificate authorities; for a private one, point SSL_CERT_FILE at its \
             certificate (PEM)"
        )
    } else if err.is_io_error() {
        format!("cannot reach it ({detail}): check the host and port, and that Redis runs there")
    } else if err.kind() == redis::ErrorKind::Parse {
        format!(
            "what answers there does not speak the Redis protocol ({detail}): check the host \
             and port"
        )
    } else {
        detail
    };
    message
}

/// `url` with any password replaced by `***`, for messages and logs: the password in
/// `redis://user:secret@host` and in a `pass=` or `password=` query parameter
/// (`redis+unix:///run/redis.sock?pass=secret`). Works on malformed URLs too, since
/// those are the ones that end up in error messages.
pub fn redact_url(url: &str) -> String {
    let after_scheme = url.find("://").map_or(0, |at| at + 3);
    let (scheme, rest) = url.split_at(after_scheme);
    let mut redacted = String::with_capacity(url.len());
    redacted.push_str(scheme);
    // The last '@' ends the user info, so a password holding a raw '@' is covered whole.
    let rest = match rest.rfind('@') {
        Some(at) if !rest.starts_with('/') => {
            let (user_info, host_and_on) = rest.split_at(at);
            match user_info.split_once(':') {
                Some((user, _password)) => {
                    redacted.push_str(user);
                    redacted.push_str(":***");
                }
                None => redacted.push_str(user_info),
            }
            host_and_on
        }
        _ => rest,
    };
    match rest.split_once('?') {
        Some((path, query)) => {
            redacted.push_str(path);
            redacted.push('?');
            let parameters: Vec<String> = query
                .split('&')
                .map(|parameter| match parameter.split_once('=') {
                    Some((name, _)) if matches!(name, "pass" | "password") => {
                        format!("{name}=***")
                    }
                    _ => parameter.to_string(),
                })
                .collect();
            redacted.push_str(&parameters.join("&"));
        }
        None => redacted.push_str(rest),
    }
    redacted
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::KeySecret;
    use catraca_sim::redis_server::{shared_url, PrivateRedis};

    /// Deletes the keys a test wrote, even when it fails: the shared Redis may be a
    /// developer's own.
    struct Forget {
        url: String,
        keys: Vec<CacheKey>,
    }

    impl Drop for Forget {
        fn drop(&mut self) {
            let Ok(client) = Client::open(self.url.as_str()) else {
                return;
            };
            let Ok(mut connection) =
                connect_with_timeouts(&client, CONNECT_TIMEOUT, CONNECT_TIMEOUT)
            else {
                return;
            };
            for chunk in self.keys.chunks(KEYS_PER_MGET) {
                let names: Vec<String> = chunk.iter().map(redis_key).collect();
                let _: redis::RedisResult<()> = redis::cmd("DEL").arg(names).query(&mut connection);
            }
        }
    }

    fn keys(count: usize) -> Vec<CacheKey> {
        // A fresh secret per test: tests running at once on one Redis never share a key.
        let secret = KeySecret::random();
        (0..count)
            .map(|n| CacheKey::for_pair(&secret, "portaria-1", &format!("{n:011}")))
            .collect()
    }

    #[test]
    fn recorded_pairs_are_found_by_another_connection() {
        let url = shared_url();
        let keys = keys(3);
        let _forget = Forget {
            url: url.clone(),
            keys: keys.clone(),
        };
        let cache = RedisCache::open(&url).unwrap();
        cache
            .connect()
            .unwrap()
            .record(&[(keys[0], 7), (keys[1], u64::MAX)])
            .unwrap();
        let found = cache.connect().unwrap().lookup(&keys).unwrap();
        assert_eq!(found, vec![Some(7), Some(u64::MAX), None]);
        let mut connection = cache.connect().unwrap();
        assert_eq!(connection.lookup(&[]).unwrap(), vec![]);
        connection.record(&[]).unwrap();
    }

    #[test]
    fn values_are_plain_decimal_under_readable_keys() {
        let url = shared_url();
        let keys = keys(1);
        let _forget = Forget {
            url: url.clone(),
            keys: keys.clone(),
        };
        let cache = RedisCache::open(&url).unwrap();
        cache.connect().unwrap().record(&[(keys[0], 42)]).unwrap();
        let client = Client::open(url.as_str()).unwrap();
        let mut raw = connect_with_timeouts(&client, CONNECT_TIMEOUT, CONNECT_TIMEOUT).unwrap();
        let name = format!("catraca:pair:{}", keys[0].to_hex());
        let value: String = redis::cmd("GET").arg(&name).query(&mut raw).unwrap();
        assert_eq!(value, "42");
        // Something else's value under our key is a miss, not an error.
        let _: () = redis::cmd("SET")
            .arg(&name)
            .arg("garbage")
            .query(&mut raw)
            .unwrap();
        assert_eq!(cache.connect().unwrap().lookup(&keys).unwrap(), vec![None]);
    }

    #[test]
    fn lookups_over_many_mget_chunks_keep_order() {
        let url = shared_url();
        // Not a multiple of the chunk size, so the last MGET is a short one.
        let keys = keys(2 * KEYS_PER_MGET + 345);
        let _forget = Forget {
            url: url.clone(),
            keys: keys.clone(),
        };
        let entries: Vec<(CacheKey, u64)> = keys
            .iter()
            .enumerate()
            .filter(|(n, _)| n % 3 != 0)
            .map(|(n, key)| (*key, n as u64))
            .collect();
        let cache = RedisCache::open(&url).unwrap();
        let mut connection = cache.connect().unwrap();
        connection.record(&entries).unwrap();
        let found = connection.lookup(&keys).unwrap();
        assert_eq!(found.len(), keys.len());
        for (n, value) in found.iter().enumerate() {
            assert_eq!(*value, (n % 3 != 0).then_some(n as u64), "key {n}");
        }
    }

    #[test]
    fn count_keys_sees_only_catraca_pairs() {
        let server = PrivateRedis::start().unwrap();
        let cache = RedisCache::open(server.url()).unwrap();
        assert_eq!(cache.count_keys().unwrap(), 0);
        let keys = keys(2_500);
        let entries: Vec<(CacheKey, u64)> = keys.iter().map(|key| (*key, 1)).collect();
        cache.connect().unwrap().record(&entries).unwrap();
        let client = Client::open(server.url()).unwrap();
        let mut raw = connect_with_timeouts(&client, CONNECT_TIMEOUT, CONNECT_TIMEOUT).unwrap();
        let _: () = redis::cmd("SET")
            .arg("other:key")
            .arg("1")
            .query(&mut raw)
            .unwrap();
        assert_eq!(cache.count_keys().unwrap(), 2_500);
    }

    #[test]
    fn unreachable_redis_is_an_error_naming_the_url() {
        let err = RedisCache::open("redis://127.0.0.1:1").err().unwrap();
        let text = err.to_string();
        assert!(text.contains("redis://127.0.0.1:1"), "{text}");
        assert!(text.contains("connection refused"), "{text}");
        assert!(matches!(err, CacheError::Redis { .. }));
    }

    #[test]
    fn a_server_that_never_answers_does_not_hang_open() {
        // Accepts connections (the kernel does, into the backlog) and never replies.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("redis://{}", silent.local_addr().unwrap());
        let started = std::time::Instant::now();
        let text = RedisCache::open(&url).err().unwrap().to_string();
        assert!(
            started.elapsed() < CONNECT_TIMEOUT + Duration::from_secs(1),
            "{:?} {text}",
            started.elapsed()
        );
        assert!(
            text.contains(&url) && text.contains("no answer in time"),
            "{text}"
        );
    }

    #[test]
    fn a_malformed_url_is_an_error_naming_the_url() {
        let text = RedisCache::open("http://example.com")
            .err()
            .unwrap()
            .to_string();
        assert!(text.contains("http://example.com"), "{text}");
        assert!(text.contains("expected redis://"), "{text}");
    }

    #[test]
    fn the_password_never_reaches_the_error() {
        let text = RedisCache::open("redis://user:hunter2@127.0.0.1:1/0")
            .err()
            .unwrap()
            .to_string();
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("redis://user:***@127.0.0.1:1/0"), "{text}");
    }

    #[test]
    fn a_wrong_password_is_reported_as_such_without_the_password() {
        let server = PrivateRedis::start().unwrap();
        let client = Client::open(server.url()).unwrap();
        let mut raw = connect_with_timeouts(&client, CONNECT_TIMEOUT, CONNECT_TIMEOUT).unwrap();
        let _: () = redis::cmd("CONFIG")
            .arg(&["SET", "requirepass", "right-one"][..])
            .query(&mut raw)
            .unwrap();
        let port = server.url().rsplit(':').next().unwrap();

        let no_password = RedisCache::open(server.url()).err().unwrap().to_string();
        assert!(no_password.contains("requires a password"), "{no_password}");

        let wrong = format!("redis://:wrong-one@127.0.0.1:{port}");
        let text = RedisCache::open(&wrong).err().unwrap().to_string();
        assert!(!text.contains("wrong-one"), "{text}");
        assert!(text.contains("password refused"), "{text}");

        let right = format!("redis://:right-one@127.0.0.1:{port}");
        let cache = RedisCache::open(&right).unwrap();
        assert_eq!(
            cache.describe(),
            format!("redis (redis://:***@127.0.0.1:{port})")
        );
    }

    #[test]
    fn a_stopped_redis_fails_lookups_and_opens_with_the_url() {
        let mut server = PrivateRedis::start().unwrap();
        let url = server.url().to_string();
        let cache = RedisCache::open(&url).unwrap();
        let mut connection = cache.connect().unwrap();
        let keys = keys(10);
        connection.record(&[(keys[0], 1)]).unwrap();
        server.stop();
        let err = connection.lookup(&keys).unwrap_err().to_string();
        assert!(err.contains(&url), "{err}");
        // The next call reconnects, and says the server is gone.
        let err = connection.lookup(&keys).unwrap_err().to_string();
        assert!(err.contains("connection refused"), "{err}");
        let err = RedisCache::open(&url).err().unwrap().to_string();
        assert!(
            err.contains(&url) && err.contains("connection refused"),
            "{err}"
        );
    }

    #[test]
    fn a_redis_gone_silent_fails_a_batch_within_the_timeout_then_recovers() {
        let server = PrivateRedis::start().unwrap();
        let cache = RedisCache::open(server.url()).unwrap();
        let keys = keys(3 * KEYS_PER_MGET);
        let entries: Vec<(CacheKey, u64)> = keys.iter().map(|key| (*key, 5)).collect();
        let mut looking = cache.connect().unwrap();
        let mut recording = cache.connect().unwrap();
        recording.record(&entries).unwrap();

        server.pause();
        // Three MGETs and a hundred SETs in flight: each call must give up after one
        // read timeout, not one per command.
        let (lookup, record) = std::thread::scope(|scope| {
            let lookup = scope.spawn(|| {
                let started = std::time::Instant::now();
                (looking.lookup(&keys).unwrap_err(), started.elapsed())
            });
            let record = scope.spawn(|| {
                let started = std::time::Instant::now();
                (
                    recording.record(&entries[..100]).unwrap_err(),
                    started.elapsed(),
                )
            });
            (lookup.join().unwrap(), record.join().unwrap())
        });
        for (err, elapsed) in [lookup, record] {
            let text = err.to_string();
            assert!(text.contains("no answer in time"), "{text}");
            assert!(
                elapsed < READ_WRITE_TIMEOUT + Duration::from_secs(2),
                "{elapsed:?}"
            );
        }

        server.resume();
        let found = looking.lookup(&keys).unwrap();
        assert!(found.iter().all(|value| *value == Some(5)));
    }

    #[test]
    fn connections_on_many_threads_share_one_cache() {
        let url = shared_url();
        let keys = keys(8 * 200);
        let _forget = Forget {
            url: url.clone(),
            keys: keys.clone(),
        };
        let cache = RedisCache::open(&url).unwrap();
        std::thread::scope(|scope| {
            for (thread, mine) in keys.chunks(200).enumerate() {
                let cache = &cache;
                scope.spawn(move || {
                    let mut connection = cache.connect().unwrap();
                    let entries: Vec<(CacheKey, u64)> =
                        mine.iter().map(|key| (*key, thread as u64)).collect();
                    connection.record(&entries).unwrap();
                });
            }
        });
        let found = cache.connect().unwrap().lookup(&keys).unwrap();
        for (n, value) in found.iter().enumerate() {
            assert_eq!(*value, Some((n / 200) as u64), "key {n}");
        }
    }

    #[test]
    fn redact_url_hides_passwords_and_keeps_the_rest() {
        let cases = [
            ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
            ("redis://:secret@host:6379/2", "redis://:***@host:6379/2"),
            ("redis://user:secret@host", "redis://user:***@host"),
            ("redis://user:p@ss:w/rd@host:1", "redis://user:***@host:1"),
            ("redis://user@host", "redis://user@host"),
            (
                "redis+unix:///run/redis.sock?db=1&pass=secret",
                "redis+unix:///run/redis.sock?db=1&pass=***",
            ),
            (
                "unix:///run/redis.sock?password=secret&db=1",
                "unix:///run/redis.sock?password=***&db=1",
            ),
            ("not a url", "not a url"),
            (":secret@host", ":***@host"),
        ];
        for (url, expected) in cases {
            assert_eq!(redact_url(url), expected, "{url}");
        }
    }
}
