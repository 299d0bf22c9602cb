//! A Redis to test and benchmark against: the one already running, or a private one.
//!
//! Tests hit a real Redis (STYLE habit 9), and must not depend on the machine's setup:
//! [`shared_url`] uses `REDIS_URL` or a local Redis on the standard port when one
//! answers, and otherwise starts one private `redis-server` for the whole test process.
//! [`PrivateRedis`] is a server a test owns outright, so it can stop it and see how the
//! cache behaves when Redis is lost mid-run.
//!
//! A private server must never outlive the process that started it, even one killed with
//! `kill -9`, or CI machines fill up with orphaned servers. On Linux the kernel sees to
//! it (`PR_SET_PDEATHSIG`); since that signal fires when the *thread* that spawned the
//! child ends, and test threads end all the time, every server is spawned from one
//! thread that lives as long as the process.

use std::fs::File;
use std::io::{self, Read, Seek};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use redis::{Client, Connection, IntoConnectionInfo, RedisResult};

/// The Redis most machines have: tried after `REDIS_URL`.
const LOCAL_URL: &str = "redis://127.0.0.1:6379";

/// How long a Redis that is already running gets to answer a PING before it is passed
/// over. A local or CI-service Redis answers in a millisecond; a wrong address should
/// not slow every test run down.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);

/// How long a new server gets to start answering. It is ready in tens of milliseconds;
/// five seconds absorbs a machine loaded by a parallel test run.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(5);

/// Ports picked at random can be taken by another process between the pick and Redis
/// binding it; this many tries makes that a non-issue.
const PORT_ATTEMPTS: usize = 5;

/// The URL of a Redis for tests and benchmarks, the same for the whole process.
///
/// The first that answers PING among `REDIS_URL` (if set) and `redis://127.0.0.1:6379`;
/// otherwise a private `redis-server` started once for this process (no persistence),
/// which dies with the process.
///
/// # Panics
/// When no Redis answers and `redis-server` cannot be started, e.g. it is not installed.
pub fn shared_url() -> String {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(find_or_start_shared).clone()
}

fn find_or_start_shared() -> String {
    let from_env = std::env::var("REDIS_URL")
        .ok()
        .filter(|url| !url.trim().is_empty());
    let candidates: Vec<String> = from_env
        .iter()
        .cloned()
        .chain([LOCAL_URL.to_string()])
        .collect();
    for url in &candidates {
        if answers_ping(url, PROBE_TIMEOUT) {
            return url.clone();
        }
    }
    if let Some(url) = &from_env {
        eprintln!(
            "REDIS_URL={} does not answer; using a private redis-server",
            redact_url(url)
        );
    }
    // Kept in a static, which is never dropped: the server lives until the process
    // ends, and the kernel kills it then.
    static SHARED: OnceLock<PrivateRedis> = OnceLock::new();
    let tried = candidates
        .iter()
        .map(|url| redact_url(url))
        .collect::<Vec<_>>()
        .join(" and ");
    let server = SHARED.get_or_init(|| match PrivateRedis::start() {
        Ok(server) => server,
        Err(err) if err.kind() == io::ErrorKind::NotFound => panic!(
            "no Redis answers at {tried}, and redis-server is not installed to start a \
             private one: install it: apt-get install redis-server (or set REDIS_URL)"
        ),
        Err(err) => panic!("no Redis answers at {tried}, and starting redis-server failed: {err}"),
    });
    server.url().to_string()
}

/// A `redis-server` owned by this process: on a free port of 127.0.0.1, without
/// persistence (`--save "" --appendonly no`), killed by [`PrivateRedis::stop`], on drop,
/// and by the kernel if this process dies first (Linux).
#[derive(Debug)]
pub struct PrivateRedis {
    child: Child,
    url: String,
    port: u16,
    /// What else it does: persist, or speak TLS.
    setup: Setup,
    /// Once the child is reaped its pid may belong to another process: never signal it.
    stopped: bool,
}

impl PrivateRedis {
    /// Starts a server and waits (at most 5 s) until it answers PING.
    ///
    /// Fails with [`io::ErrorKind::NotFound`] when `redis-server` is not installed
    /// (install it: `apt-get install redis-server`), or with the server's own log when it
    /// does not come up.
    pub fn start() -> io::Result<PrivateRedis> {
        start_trying_ports(free_port, Setup::Plain)
    }

    /// Starts a server that also speaks TLS on a second port, with a certificate for
    /// 127.0.0.1 issued by `authority` (clients are not asked for one): see
    /// [`PrivateRedis::tls_url`]. The plain port stays, for the readiness check.
    pub fn start_tls(authority: &crate::SiteAuthority) -> io::Result<PrivateRedis> {
        let dir = tempfile::tempdir()?;
        let (certificate, key) = authority.issue_loopback()?;
        std::fs::write(dir.path().join("redis.pem"), certificate)?;
        std::fs::write(dir.path().join("redis.key"), key)?;
        std::fs::write(dir.path().join("ca.pem"), authority.pem())?;
        let setup = Setup::Tls {
            dir: std::sync::Arc::new(dir),
            port: free_port()?,
        };
        start_trying_ports(free_port, setup)
    }

    /// `rediss://127.0.0.1:<tls port>` for a server started with
    /// [`PrivateRedis::start_tls`].
    pub fn tls_url(&self) -> Option<String> {
        match &self.setup {
            Setup::Tls { port, .. } => Some(format!("rediss://127.0.0.1:{port}")),
            _ => None,
        }
    }

    /// Starts a server that persists every write before answering it (`appendonly yes`,
    /// `appendfsync always`, in a directory of its own), so that
    /// [`PrivateRedis::restart`] brings back everything it acknowledged: the setup the
    /// README asks of a central Redis whose queue must survive a restart.
    pub fn start_persistent() -> io::Result<PrivateRedis> {
        let data = std::sync::Arc::new(tempfile::tempdir()?);
        start_trying_ports(free_port, Setup::Persistent(data))
    }

    /// Kills the server (SIGKILL: no chance to save anything more) and starts it again
    /// on the same port, with the same data: a Redis restarted under its clients.
    pub fn restart(&mut self) -> io::Result<()> {
        self.stop();
        let port = self.port;
        let setup = self.setup.clone();
        let fresh = start_trying_ports(move || Ok(port), setup)?;
        let mut old = std::mem::replace(self, fresh);
        // The old handle is already stopped; dropping it must not signal anything.
        old.stopped = true;
        Ok(())
    }

    /// The server's URL, `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Freezes the server (SIGSTOP): connections stay open and nothing answers, as with a
    /// hung Redis or a network that drops packets. Undone by [`PrivateRedis::resume`].
    #[cfg(unix)]
    pub fn pause(&self) {
        self.signal(libc::SIGSTOP);
    }

    /// Lets a paused server run again (SIGCONT).
    #[cfg(unix)]
    pub fn resume(&self) {
        self.signal(libc::SIGCONT);
    }

    #[cfg(unix)]
    fn signal(&self, signal: libc::c_int) {
        assert!(!self.stopped, "redis-server at {} was stopped", self.url);
        // SAFETY: kill has no memory effects, and the pid is our own child, not yet
        // reaped (only stop reaps it, and it is not stopped).
        let result = unsafe { libc::kill(self.child.id() as libc::pid_t, signal) };
        assert_eq!(
            result,
            0,
            "cannot signal redis-server: {}",
            io::Error::last_os_error()
        );
    }

    /// Kills the server and waits until it is gone. Stopping twice is harmless.
    pub fn stop(&mut self) {
        // Errors only say the server is already dead and reaped: what we want anyway.
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.stopped = true;
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What a private server does besides answering on its port.
#[derive(Debug, Clone)]
enum Setup {
    /// Nothing: no persistence, plain TCP.
    Plain,
    /// Persists every write in an append-only file in this directory.
    Persistent(std::sync::Arc<tempfile::TempDir>),
    /// Also speaks TLS on `port`, with the certificate, key and authority in `dir`.
    Tls {
        dir: std::sync::Arc<tempfile::TempDir>,
        port: u16,
    },
}

fn start_trying_ports(
    mut next_port: impl FnMut() -> io::Result<u16>,
    setup: Setup,
) -> io::Result<PrivateRedis> {
    let mut last_error = None;
    for _ in 0..PORT_ATTEMPTS {
        match start_on(next_port()?, setup.clone()) {
            Ok(server) => return Ok(server),
            Err(StartError::PortTaken(err)) => last_error = Some(err),
            Err(StartError::Failed(err)) => return Err(err),
        }
    }
    Err(last_error.expect("at least one attempt was made"))
}

enum StartError {
    PortTaken(io::Error),
    Failed(io::Error),
}

fn start_on(port: u16, setup: Setup) -> Result<PrivateRedis, StartError> {
    // The server's output goes to an anonymous file: nothing to clean up, and still
    // readable to explain a failed start.
    let mut log = tempfile::tempfile().map_err(StartError::Failed)?;
    let mut command = Command::new("redis-server");
    command.args(["--port", &port.to_string(), "--bind", "127.0.0.1"]);
    match &setup {
        Setup::Plain => command
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(std::env::temp_dir()),
        Setup::Persistent(dir) => command
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ])
            .arg("--dir")
            .arg(dir.path()),
        Setup::Tls { dir, port } => command
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(std::env::temp_dir())
            .args(["--tls-port", &port.to_string()])
            .arg("--tls-cert-file")
            .arg(dir.path().join("redis.pem"))
            .arg("--tls-key-file")
            .arg(dir.path().join("redis.key"))
            .arg("--tls-ca-cert-file")
            .arg(dir.path().join("ca.pem"))
            .args(["--tls-auth-clients", "no"]),
    };
    command
        .args(["--daemonize", "no", "--loglevel", "warning"])
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(StartError::Failed)?)
        .stderr(log.try_clone().map_err(StartError::Failed)?);
    die_with_this_process(&mut command);
    let child = spawn_from_lasting_thread(command).map_err(|err| {
        if err.kind() == io::ErrorKind::NotFound {
            StartError::Failed(io::Error::new(
                io::ErrorKind::NotFound,
                "redis-server is not installed: install it: apt-get install redis-server",
            ))
        } else {
            StartError::Failed(io::Error::new(
                err.kind(),
                format!("cannot run redis-server: {err}"),
            ))
        }
    })?;
    let mut server = PrivateRedis {
        child,
        url: format!("redis://127.0.0.1:{port}"),
        port,
        setup,
        stopped: false,
    };
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    loop {
        if served_by(&server.url, server.child.id()) {
            return Ok(server);
        }
        let exited = server.child.try_wait().map_err(StartError::Failed)?;
        if exited.is_some() || Instant::now() >= deadline {
            server.stop();
            let output = read_all(&mut log);
            let what = match exited {
                Some(status) => format!("redis-server on port {port} exited ({status})"),
                None => format!("redis-server on port {port} did not answer within 5 s"),
            };
            let err = io::Error::other(format!("{what}; its output:\n{}", output.trim_end()));
            return Err(if output.contains("Address already in use") {
                StartError::PortTaken(err)
            } else {
                StartError::Failed(err)
            });
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// A client that does not send `CLIENT SETINFO` (older servers answer it with an error).
fn client_for(url: &str) -> RedisResult<Client> {
    let info = url.into_connection_info()?;
    let settings = info.redis_settings().clone().set_skip_set_lib_name();
    Client::open(info.set_redis_settings(settings))
}

/// Connects within `timeout`, and sets the read and write timeouts redis-rs leaves at
/// "block forever", so a probe of a stopped server cannot hang a test.
fn connect_with_timeouts(
    client: &Client,
    connect: Duration,
    read_write: Duration,
) -> RedisResult<Connection> {
    let connection = client.get_connection_with_timeout(connect)?;
    connection.set_read_timeout(Some(read_write))?;
    connection.set_write_timeout(Some(read_write))?;
    Ok(connection)
}

/// `url` fit for a message: any user info (a password) and query (`?password=`) left
/// out, so a test log never shows a credential.
fn redact_url(url: &str) -> String {
    let after_scheme = url.find("://").map_or(0, |at| at + 3);
    let (scheme, rest) = url.split_at(after_scheme);
    let rest = rest.split_once('?').map_or(rest, |(path, _)| path);
    match rest.rfind('@') {
        Some(at) => format!("{scheme}***{}", &rest[at..]),
        None => format!("{scheme}{rest}"),
    }
}

/// Whether a Redis at `url` answers PING within `timeout`.
fn answers_ping(url: &str, timeout: Duration) -> bool {
    let Ok(client) = client_for(url) else {
        return false;
    };
    connect_with_timeouts(&client, timeout, timeout)
        .and_then(|mut connection| redis::cmd("PING").query::<String>(&mut connection))
        .is_ok()
}

/// Whether the Redis at `url` is the process `pid`: another process may take a port
/// between our pick and our bind, and its Redis would answer PING as well as ours.
fn served_by(url: &str, pid: u32) -> bool {
    let timeout = Duration::from_millis(200);
    let Ok(client) = client_for(url) else {
        return false;
    };
    let info = connect_with_timeouts(&client, timeout, timeout).and_then(|mut connection| {
        redis::cmd("INFO")
            .arg("server")
            .query::<String>(&mut connection)
    });
    let expected = format!("process_id:{pid}");
    info.is_ok_and(|info| info.lines().any(|line| line.trim() == expected))
}

/// A port nobody listens on right now (the kernel's pick).
fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind(("127.0.0.1", 0))?.local_addr()?.port())
}

fn read_all(log: &mut File) -> String {
    let mut text = String::new();
    let _ = log.rewind().and_then(|()| log.read_to_string(&mut text));
    text
}

/// Makes the kernel kill the child when this process dies (Linux only; elsewhere the
/// server is stopped on drop, and only a killed process leaks it).
#[cfg(target_os = "linux")]
fn die_with_this_process(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the closure runs between fork and exec and calls only async-signal-safe
    // functions (prctl, getppid), allocating nothing.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died before prctl took effect: then nobody would kill us.
            if libc::getppid() != parent {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn die_with_this_process(_command: &mut Command) {}

/// Spawns `command` from a thread that lives as long as the process, so that
/// `PR_SET_PDEATHSIG` (tied to the spawning thread) fires only when the process ends.
fn spawn_from_lasting_thread(command: Command) -> io::Result<Child> {
    type Request = (Command, mpsc::Sender<io::Result<Child>>);
    static SPAWNER: OnceLock<mpsc::Sender<Request>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (requests, incoming) = mpsc::channel::<Request>();
        thread::Builder::new()
            .name("redis-server-spawner".to_string())
            .spawn(move || {
                // Never ends: the sender sits in a static that is never dropped.
                for (mut command, reply) in incoming {
                    let _ = reply.send(command.spawn());
                }
            })
            .expect("cannot start the thread that spawns redis-server");
        requests
    });
    let (reply, response) = mpsc::channel();
    spawner
        .send((command, reply))
        .expect("the redis-server spawner thread lives as long as the process");
    response
        .recv()
        .expect("the redis-server spawner thread always replies")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_in_messages_never_show_a_password() {
        assert_eq!(
            redact_url("redis://127.0.0.1:6379/0"),
            "redis://127.0.0.1:6379/0"
        );
        assert_eq!(
            redact_url("redis://u:p@ss@host:1/2"),
            "redis://***@host:1/2"
        );
        assert_eq!(
            redact_url("redis+unix:///run/r.sock?pass=secret"),
            "redis+unix:///run/r.sock"
        );
    }

    #[test]
    fn private_server_answers_until_stopped() {
        let mut server = PrivateRedis::start().unwrap();
        assert!(server.url().starts_with("redis://127.0.0.1:"));
        assert!(answers_ping(server.url(), Duration::from_secs(1)));
        server.stop();
        assert!(!answers_ping(server.url(), Duration::from_millis(200)));
        server.stop();
    }

    #[test]
    fn a_port_taken_by_another_redis_is_skipped() {
        let first = PrivateRedis::start().unwrap();
        let taken: u16 = first.url().rsplit(':').next().unwrap().parse().unwrap();
        let mut ports = [Ok(taken), free_port()].into_iter();
        let second = start_trying_ports(|| ports.next().unwrap(), Setup::Plain).unwrap();
        assert_ne!(second.url(), first.url());
        assert!(served_by(second.url(), second.child.id()));
    }

    #[test]
    fn private_server_is_gone_after_drop() {
        let url = {
            let server = PrivateRedis::start().unwrap();
            server.url().to_string()
        };
        assert!(!answers_ping(&url, Duration::from_millis(200)));
    }

    #[test]
    fn private_server_outlives_the_thread_that_started_it() {
        // PR_SET_PDEATHSIG follows the spawning thread: a server started from a test
        // thread that ended must still be running.
        let server = thread::spawn(|| PrivateRedis::start().unwrap())
            .join()
            .unwrap();
        thread::sleep(Duration::from_millis(100));
        assert!(answers_ping(server.url(), Duration::from_secs(1)));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn private_server_dies_when_its_process_is_killed() {
        use std::io::BufRead;
        // Runs this test binary again as a process that starts a server and waits, then
        // kills that process with SIGKILL: no Drop runs, only the kernel can clean up.
        let mut process = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "redis_server::tests::hold_a_server_until_killed"])
            .args(["--ignored", "--nocapture", "--test-threads=1"])
            .env("CATRACA_TEST_HOLD_REDIS", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = io::BufReader::new(process.stdout.take().unwrap());
        let url = stdout
            .lines()
            .map(Result::unwrap)
            // libtest prints the test's name on the same line, before the output.
            .find_map(|line| Some(line.split_once("HOLDING ")?.1.trim().to_string()));
        let Some(url) = url else {
            let _ = process.kill();
            panic!("the helper process did not start a server");
        };
        assert!(answers_ping(&url, Duration::from_secs(1)));
        process.kill().unwrap();
        process.wait().unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while answers_ping(&url, Duration::from_millis(200)) {
            assert!(
                Instant::now() < deadline,
                "redis-server at {url} outlived its killed parent"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Helper process for the test above; does nothing unless that test runs it.
    #[test]
    #[ignore = "run by private_server_dies_when_its_process_is_killed"]
    fn hold_a_server_until_killed() {
        if std::env::var_os("CATRACA_TEST_HOLD_REDIS").is_none() {
            return;
        }
        let server = PrivateRedis::start().unwrap();
        println!("HOLDING {}", server.url());
        // Killed long before this ends; the bound keeps a stray helper from lingering.
        thread::sleep(Duration::from_secs(30));
    }

    #[test]
    fn shared_url_answers_and_is_stable() {
        let url = shared_url();
        assert!(answers_ping(&url, Duration::from_secs(1)));
        assert_eq!(url, shared_url());
    }
}
