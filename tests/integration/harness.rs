//! The test harness: a scratch directory, participant CSVs and the commands that read
//! them, simulated fleets, and a command runner for the real binary that prints
//! everything when an assertion fails.

use catraca_sim::{Fleet, Kind, SimConfig, SimDevice, SimPerson};
use serde_json::Value;
use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The password the test fleets expect (not the factory default, so tests prove the
/// environment variable is read).
pub const PASSWORD: &str = "s3nha-de-teste";

/// A fleet of `count` simulated devices with the test password and `config`'s behaviour.
pub fn fleet(count: usize, config: SimConfig) -> Fleet {
    let config = SimConfig {
        password: PASSWORD.to_string(),
        ..config
    };
    Fleet::start(count, &config).expect("simulators start")
}

/// A scratch directory that disappears with the test.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
    /// A cache key of this test alone, so tests sharing one Redis never see each other's pairs.
    pub cache_key: String,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        let key: [u8; 32] = rand::random();
        Sandbox {
            dir: tempfile::tempdir().expect("tempdir"),
            cache_key: key.iter().map(|b| format!("{b:02x}")).collect(),
        }
    }

    pub fn write(&self, name: &str, content: impl AsRef<[u8]>) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, content).expect("write file");
        path
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `catraca ARGS` with a clean environment: this sandbox's cache key and embedded
    /// store, the test password, and no cache settings inherited from the machine.
    pub fn catraca(&self, args: &[&str]) -> TestCommand {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_catraca"));
        cmd.args(args)
            .env_remove("REDIS_URL")
            .env_remove("CATRACA_CACHE")
            .env_remove("RUST_LOG")
            .env_remove("LANG")
            .env_remove("LC_ALL")
            .env("CATRACA_CACHE_KEY", &self.cache_key)
            .env("CATRACA_PASSWORD", PASSWORD)
            .current_dir(self.dir.path());
        TestCommand {
            cmd,
            stdin: None,
            cache_path: self.path("cache.redb"),
        }
    }

    /// Writes `rows` to the sandbox's participants CSV, `p.csv` (replacing the last list),
    /// and returns `catraca COMMAND --users <that file>`. It adds no cache flag: each
    /// caller says which cache the run uses (`embedded_cache`, `cache_in`, `--cache none`,
    /// or none on purpose), and adds its devices and other flags.
    pub fn with_users(&self, command: &str, rows: &[Row]) -> TestCommand {
        let users = self.write("p.csv", csv(rows));
        self.catraca(&[command, "--users", users.to_str().expect("a UTF-8 path")])
    }

    /// `catraca enroll --users` on `rows`, the shape of most tests (see
    /// [`Sandbox::with_users`]).
    pub fn enroll(&self, rows: &[Row]) -> TestCommand {
        self.with_users("enroll", rows)
    }
}

pub struct TestCommand {
    pub cmd: Command,
    stdin: Option<Vec<u8>>,
    cache_path: PathBuf,
}

/// What a run of the binary left: exit code, stdout, stderr, and the command line.
pub struct Ran {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub shown: String,
}

impl Ran {
    /// The JSON report printed by `--json`.
    pub fn report(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not a JSON report ({e}):\n{}", self.shown))
    }

    pub fn expect_code(&self, code: i32) -> &Ran {
        assert_eq!(self.code, code, "unexpected exit status\n{}", self.shown);
        self
    }
}

impl TestCommand {
    pub fn args(mut self, args: &[&str]) -> Self {
        self.cmd.args(args);
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.cmd.env(key, value);
        self
    }

    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(bytes.into());
        self
    }

    /// Uses the sandbox's embedded cache file (the default is the user's cache dir).
    pub fn embedded_cache(self) -> Self {
        let path = self.cache_path.display().to_string();
        self.args(&["--cache", "embedded", "--cache-path", &path])
    }

    /// Redis at `url` when given, else the sandbox's embedded store.
    pub fn cache_in(self, redis: Option<&str>) -> Self {
        match redis {
            Some(url) => self.args(&["--cache", url]),
            None => self.embedded_cache(),
        }
    }

    pub fn devices(self, fleet: &Fleet) -> Self {
        let mut cmd = self;
        for url in fleet.urls() {
            cmd = cmd.args(&["--device", &url]);
        }
        cmd
    }

    /// Starts the command without waiting: stdout and stderr are collected as they come,
    /// so a test can act while it runs (load its dashboard, signal or kill it).
    pub fn spawn(mut self) -> Running {
        self.cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = self.cmd.spawn().expect("catraca starts");
        let collect = |pipe: Box<dyn std::io::Read + Send>| {
            let text = Arc::new(Mutex::new(String::new()));
            let sink = Arc::clone(&text);
            let thread = std::thread::spawn(move || {
                for line in std::io::BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    let mut text = sink.lock().unwrap();
                    text.push_str(&line);
                    text.push('\n');
                }
            });
            (text, thread)
        };
        let stdout = collect(Box::new(child.stdout.take().expect("stdout pipe")));
        let stderr = collect(Box::new(child.stderr.take().expect("stderr pipe")));
        Running {
            command: format!("{:?}", self.cmd),
            child,
            stdout,
            stderr,
        }
    }

    pub fn run(mut self) -> Ran {
        self.cmd
            .stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = self.cmd.spawn().expect("catraca starts");
        if let Some(bytes) = self.stdin.take() {
            let mut pipe = child.stdin.take().expect("stdin pipe");
            pipe.write_all(&bytes).expect("write stdin");
        }
        let Output {
            status,
            stdout,
            stderr,
        } = child.wait_with_output().expect("catraca finishes");
        let stdout = String::from_utf8_lossy(&stdout).into_owned();
        let stderr = String::from_utf8_lossy(&stderr).into_owned();
        let shown = format!(
            "command: {:?}\nstatus: {status}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
            self.cmd
        );
        Ran {
            code: status.code().unwrap_or(-1),
            stdout,
            stderr,
            shown,
        }
    }
}

type Collected = (Arc<Mutex<String>>, std::thread::JoinHandle<()>);

/// A `catraca` process still running (see [`TestCommand::spawn`]).
pub struct Running {
    command: String,
    pub child: std::process::Child,
    stdout: Collected,
    stderr: Collected,
}

impl Running {
    /// What it wrote on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.0.lock().unwrap().clone()
    }

    /// Waits (at most `timeout`) for a stderr line starting with `prefix`; its rest.
    pub fn wait_for_line(&mut self, prefix: &str, timeout: Duration) -> String {
        let until = Instant::now() + timeout;
        loop {
            if let Some(line) = self.stderr().lines().find_map(|l| l.strip_prefix(prefix)) {
                return line.to_string();
            }
            if Instant::now() > until || self.child.try_wait().unwrap().is_some() {
                let ran = self.kill_and_collect();
                panic!("no line starting with {prefix:?} on stderr\n{}", ran.shown);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits (at most `timeout`) until `count` stderr lines start with `prefix`.
    pub fn wait_for_lines(&mut self, prefix: &str, count: usize, timeout: Duration) {
        let until = Instant::now() + timeout;
        loop {
            if self
                .stderr()
                .lines()
                .filter(|l| l.starts_with(prefix))
                .count()
                >= count
            {
                return;
            }
            if Instant::now() > until || self.child.try_wait().unwrap().is_some() {
                let ran = self.kill_and_collect();
                panic!(
                    "fewer than {count} lines starting with {prefix:?} on stderr\n{}",
                    ran.shown
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Sends a signal (SIGINT = Ctrl-C, SIGTERM, SIGKILL).
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
        let result = unsafe { libc::kill(self.child.id() as i32, signal) };
        assert_eq!(result, 0, "signal {signal} could not be sent");
    }

    /// Waits for the end, however long it takes.
    pub fn wait(mut self) -> Ran {
        self.collect()
    }

    fn kill_and_collect(&mut self) -> Ran {
        let _ = self.child.kill();
        self.collect()
    }

    fn collect(&mut self) -> Ran {
        let status = self.child.wait().expect("catraca ends");
        let take = |c: &mut Collected| {
            let thread = std::mem::replace(&mut c.1, std::thread::spawn(|| {}));
            let _ = thread.join();
            c.0.lock().unwrap().clone()
        };
        let stdout = take(&mut self.stdout);
        let stderr = take(&mut self.stderr);
        let shown = format!(
            "command: {}\nstatus: {status}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
            self.command
        );
        Ran {
            code: status.code().unwrap_or(-1),
            stdout,
            stderr,
            shown,
        }
    }

    /// Waits for the end (at most `timeout`, then kills it and fails).
    pub fn finish(mut self, timeout: Duration) -> Ran {
        let until = Instant::now() + timeout;
        while self.child.try_wait().unwrap().is_none() {
            if Instant::now() > until {
                let ran = self.kill_and_collect();
                panic!("catraca did not end within {timeout:?}\n{}", ran.shown);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.collect()
    }
}

impl Drop for Running {
    /// A failed test must not leave the process behind.
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// GETs `url` on loopback: status and body.
pub fn get(url: &str) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let mut answer = agent
        .get(url)
        .call()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = answer.status().as_u16();
    (
        status,
        answer.body_mut().read_to_string().expect("a text body"),
    )
}

/// The report's categories, as its JSON keys (and the outcomes of /metrics and the
/// events file) name them: the contract scripts rely on, spelled out here on purpose
/// rather than read from the library.
pub const CATEGORIES: [&str; 6] = [
    "registered",
    "updated",
    "unchanged",
    "skipped_cache",
    "failed",
    "removed",
];

/// Every operation of a report is in exactly one category.
pub fn counts_add_up(report: &Value) {
    let sum: u64 = CATEGORIES.iter().map(|k| report[k].as_u64().unwrap()).sum();
    assert_eq!(sum, report["operations"].as_u64().unwrap(), "{report}");
}

/// A participant of a generated list.
#[derive(Debug, Clone)]
pub struct Row {
    pub registration: String,
    pub name: String,
    /// (facility, number) of a Wiegand card, on every third person.
    pub card: Option<(u32, u32)>,
    /// (begin, end) as Unix seconds, written in the CSV as UTC ISO dates, on every fifth.
    pub window: Option<(i64, i64)>,
    pub group: Option<String>,
}

/// `count` people with accents, some with cards, validity windows and groups.
pub fn people(count: usize) -> Vec<Row> {
    let first = [
        "João",
        "Maria",
        "Antônio",
        "Conceição",
        "José",
        "Márcia",
        "Luís",
        "Açucena",
    ];
    let last = [
        "Gonçalves",
        "Assunção",
        "Souza",
        "Magalhães",
        "Araújo",
        "Simões",
    ];
    (0..count)
        .map(|i| Row {
            registration: format!("2026{i:06}"),
            name: format!("{} {} {i}", first[i % first.len()], last[i % last.len()]),
            card: (i % 3 == 0).then_some((100 + (i % 7) as u32, 10_000 + i as u32)),
            window: (i % 5 == 0).then_some((1_780_000_000 + i as i64, 1_790_000_000 + i as i64)),
            group: (i % 4 == 0).then(|| ["Alunos", "Funcionários"][(i / 4) % 2].to_string()),
        })
        .collect()
}

/// The CSV of `rows`, comma-separated with English headers.
pub fn csv(rows: &[Row]) -> String {
    let mut out = String::from("registration,name,card,begin,end,group\n");
    for r in rows {
        let card = r
            .card
            .map(|(f, n)| format!("\"{f},{n}\""))
            .unwrap_or_default();
        let (begin, end) = r.window.map(|(b, e)| (iso(b), iso(e))).unwrap_or_default();
        out.push_str(&format!(
            "{},{},{card},{begin},{end},{}\n",
            r.registration,
            r.name,
            r.group.as_deref().unwrap_or("")
        ));
    }
    out
}

fn iso(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .expect("valid time")
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Asserts that `device` holds every row exactly once, with its name, card, validity and
/// group, and nobody else.
pub fn assert_holds_exactly(device: &SimDevice, rows: &[Row]) {
    let users = device.users();
    let mut by_registration: HashMap<&str, Vec<_>> = HashMap::new();
    for u in &users {
        by_registration
            .entry(u.registration.as_str())
            .or_default()
            .push(u);
    }
    assert_eq!(
        users.len(),
        rows.len(),
        "{} holds {} people, expected {}",
        device.name(),
        users.len(),
        rows.len()
    );
    let cards = device.cards();
    let groups: HashMap<i64, String> = device
        .groups()
        .into_iter()
        .map(|g| (g.id, g.name))
        .collect();
    let links = device.user_groups();
    for row in rows {
        let found = by_registration
            .get(row.registration.as_str())
            .unwrap_or_else(|| panic!("{} lacks {}", device.name(), row.registration));
        assert_eq!(
            found.len(),
            1,
            "{} holds {} {} times",
            device.name(),
            row.registration,
            found.len()
        );
        let user = found[0];
        assert_eq!(user.name, row.name);
        let (begin, end) = row.window.unwrap_or((0, 0));
        assert_eq!(
            (user.begin_time, user.end_time),
            (begin, end),
            "validity of {}",
            row.registration
        );
        let held: Vec<u64> = cards
            .iter()
            .filter(|c| c.user_id == user.id)
            .map(|c| c.value)
            .collect();
        let expected: Vec<u64> = row
            .card
            .map(|(f, n)| vec![(u64::from(f) << 32) + u64::from(n)])
            .unwrap_or_default();
        assert_eq!(held, expected, "cards of {}", row.registration);
        let in_groups: Vec<&str> = links
            .iter()
            .filter(|(u, _)| *u == user.id)
            .map(|(_, g)| groups[g].as_str())
            .collect();
        assert_eq!(
            in_groups,
            row.group.iter().map(String::as_str).collect::<Vec<_>>(),
            "groups of {}",
            row.registration
        );
    }
}

/// A device's state in a comparable form (ids differ between runs, content must not).
pub fn state_of(device: &SimDevice) -> Vec<(String, String, i64, i64, Vec<u64>)> {
    let cards = device.cards();
    let mut state: Vec<_> = device
        .users()
        .into_iter()
        .map(|u| {
            let mut held: Vec<u64> = cards
                .iter()
                .filter(|c| c.user_id == u.id)
                .map(|c| c.value)
                .collect();
            held.sort_unstable();
            (u.registration, u.name, u.begin_time, u.end_time, held)
        })
        .collect();
    state.sort();
    state
}

/// How many requests of `command` the device received.
pub fn requests(device: &SimDevice, command: &str) -> u64 {
    device.stats().count(command)
}

/// A fleet of `count` devices of each kind, with the test password.
pub fn mixed_fleet(kinds: &[(Kind, usize)], config: SimConfig) -> Fleet {
    let config = SimConfig {
        password: PASSWORD.to_string(),
        ..config
    };
    Fleet::start_mixed(kinds, &config).expect("simulators start")
}

impl TestCommand {
    /// Every device of the fleet as `--device KIND+URL`.
    pub fn kinded_devices(self, fleet: &Fleet) -> Self {
        let mut cmd = self;
        for flag in fleet.device_flags() {
            cmd = cmd.args(&["--device", &flag]);
        }
        cmd
    }
}

/// How `device` should hold `row`, in its vendor's notation (see `SimPerson`).
pub fn expected_person(kind: Kind, row: &Row) -> SimPerson {
    // Each vendor's default card format: Control iD F * 2^32 + N, Hikvision the decimal
    // of the 24 Wiegand-26 bits, Intelbras their upper-case hex in whole bytes.
    let card = row.card.map(|(f, n)| (u64::from(f) << 32) + u64::from(n));
    let w26 = row.card.map(|(f, n)| (f << 16) | n);
    let local = |t: i64, format: &str| {
        chrono::DateTime::from_timestamp(t, 0)
            .expect("valid time")
            .with_timezone(&chrono::Local)
            .format(format)
            .to_string()
    };
    let (cards, begin, end) = match kind {
        Kind::Controlid => (
            card.map(|c| c.to_string()),
            row.window.map_or(0, |w| w.0).to_string(),
            row.window.map_or(0, |w| w.1).to_string(),
        ),
        Kind::Hikvision => (
            w26.map(|c| c.to_string()),
            row.window
                .map(|w| local(w.0, "%Y-%m-%dT%H:%M:%S"))
                .unwrap_or_default(),
            row.window
                .map(|w| local(w.1, "%Y-%m-%dT%H:%M:%S"))
                .unwrap_or_default(),
        ),
        Kind::Intelbras => (
            w26.map(|c| {
                let hex = format!("{c:X}");
                if hex.len() % 2 == 1 {
                    format!("0{hex}")
                } else {
                    hex
                }
            }),
            row.window.map_or("2000-01-01 00:00:00".into(), |w| {
                local(w.0, "%Y-%m-%d %H:%M:%S")
            }),
            row.window.map_or("2037-12-31 23:59:59".into(), |w| {
                local(w.1, "%Y-%m-%d %H:%M:%S")
            }),
        ),
    };
    SimPerson {
        key: row.registration.clone(),
        name: row.name.clone(),
        cards: cards.into_iter().collect(),
        begin,
        end,
    }
}

/// Asserts that `device` holds every row exactly once with its name, card and validity
/// in the vendor's encoding, and nobody else.
pub fn assert_people(device: &SimDevice, rows: &[Row]) {
    let mut held = device.people();
    held.sort_by(|a, b| a.key.cmp(&b.key));
    let mut wanted: Vec<SimPerson> = rows
        .iter()
        .map(|r| expected_person(device.kind(), r))
        .collect();
    wanted.sort_by(|a, b| a.key.cmp(&b.key));
    assert_eq!(
        held.len(),
        wanted.len(),
        "{} ({}) holds {} people, expected {}",
        device.name(),
        device.kind(),
        held.len(),
        wanted.len()
    );
    for (h, w) in held.iter().zip(&wanted) {
        assert_eq!(h, w, "{} ({})", device.name(), device.kind());
    }
}

/// Requests that change a device, by the simulators' request names, for every kind.
pub const WRITES: &[&str] = &[
    "create_objects",
    "modify_objects",
    "destroy_objects",
    "user_record",
    "user_modify",
    "user_delete",
    "user_delete_legacy",
    "card_record",
    "card_delete",
    "user_insertMulti",
    "user_updateMulti",
    "user_removeMulti",
    "card_insertMulti",
    "card_removeMulti",
];

/// Requests that changed `device`.
pub fn writes_to(device: &SimDevice) -> u64 {
    WRITES.iter().map(|c| requests(device, c)).sum()
}

/// Requests that changed any device of `fleet`.
pub fn writes(fleet: &Fleet) -> u64 {
    fleet.devices.iter().map(writes_to).sum()
}
