//! The benchmark's workloads: who is enrolled, on how many simulated devices of which
//! speed, with which flags, and the ideal time each could take.
//!
//! Participants are generated, the same on every run: registrations `2026000000`,
//! `2026000001`, ..., names with Portuguese accents, validity windows on every fifth
//! person. The *plain* list is the old system's table (people only: one person is one
//! create request when sent one per request); the *full* list, used at scale, adds a
//! Wiegand card to every third person and an access group to every fourth, as the
//! shipped `data/participants.csv` has, so every write batch exercises users, cards and
//! group links. The ideal times are what the simulator's parameters allow, counted from
//! the requests the protocol cannot do without (`docs/controlid-api.md`): a login and
//! one load per 999 people per device, then the creates.
//!
//! The TLS group runs its workloads twice, on plain HTTP devices and on HTTPS ones with
//! self-signed certificates, each pinned in a devices file as an operator would; the two
//! sides of a comparison share a [`Workload::side_of`] and are measured run by run in
//! turn.

use std::fmt::Write as _;
use std::time::Duration;

/// Which participants a workload enrolls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mix {
    /// Registration, name, validity on every fifth.
    Plain,
    /// Plain plus a card on every third person and a group on every fourth.
    Full,
}

/// The participants CSV for `count` people.
pub fn participants_csv(count: usize, mix: Mix) -> String {
    const FIRST: [&str; 8] = [
        "João",
        "Maria",
        "Antônio",
        "Conceição",
        "José",
        "Márcia",
        "Luís",
        "Açucena",
    ];
    const LAST: [&str; 6] = [
        "Gonçalves",
        "Assunção",
        "Souza",
        "Magalhães",
        "Araújo",
        "Simões",
    ];
    const GROUPS: [&str; 2] = ["Alunos", "Funcionários"];
    let mut csv = String::with_capacity(64 + count * 64);
    csv.push_str("matricula;nome;cartao;inicio;fim;grupo\n");
    for i in 0..count {
        let card = if mix == Mix::Full && i % 3 == 0 {
            format!("{},{}", 100 + i % 7, 10_000 + i)
        } else {
            String::new()
        };
        let (begin, end) = if i % 5 == 0 {
            ("01/03/2026 08:00", "30/06/2026 18:00")
        } else {
            ("", "")
        };
        let group = if mix == Mix::Full && i % 4 == 0 {
            GROUPS[(i / 4) % 2]
        } else {
            ""
        };
        let _ = writeln!(
            csv,
            "2026{i:06};{} {} {i};{card};{begin};{end};{group}",
            FIRST[i % FIRST.len()],
            LAST[i % LAST.len()]
        );
    }
    csv
}

/// Where the measured run finds its cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheMode {
    /// `--cache none`: every pair goes to the devices.
    None,
    /// The embedded store, empty: a first run as users start, every pair recorded.
    Embedded,
    /// A Redis database of the run's own, empty: a first run, every pair recorded.
    Redis,
    /// The embedded store, filled by an earlier (unmeasured) enroll of the same list.
    EmbeddedFilled,
    /// Redis, filled by an earlier (unmeasured) enroll of the same list.
    RedisFilled,
}

impl CacheMode {
    /// The table's cache column.
    pub fn label(self) -> &'static str {
        match self {
            CacheMode::None => "none",
            CacheMode::Embedded => "embedded, empty",
            CacheMode::Redis => "Redis, empty",
            CacheMode::EmbeddedFilled => "embedded, filled by an enroll",
            CacheMode::RedisFilled => "Redis, filled by an enroll",
        }
    }

    /// Whether an unmeasured enroll of the same list runs first, to fill the cache.
    pub fn filled(self) -> bool {
        matches!(self, CacheMode::EmbeddedFilled | CacheMode::RedisFilled)
    }
}

/// How catraca is told about the devices and speaks to them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Plain HTTP, each device given as `--device URL`.
    Http,
    /// Plain HTTP, the devices listed in a devices file (`--devices`): the baseline
    /// HTTPS is compared with, so that only TLS differs.
    HttpDevicesFile,
    /// HTTPS to devices with self-signed certificates, each pinned by its
    /// `tls_fingerprint` in a devices file: the trust operators are told to configure,
    /// so the handshakes go through catraca's pinning verifier.
    HttpsPinned,
}

impl Transport {
    /// `http` or `https`, as device URLs start.
    pub fn scheme(self) -> &'static str {
        match self {
            Transport::Http | Transport::HttpDevicesFile => "http",
            Transport::HttpsPinned => "https",
        }
    }

    /// Whether catraca reads the devices from a file rather than `--device` flags.
    pub fn uses_devices_file(self) -> bool {
        !matches!(self, Transport::Http)
    }
}

/// One line of the table.
#[derive(Debug, Clone)]
pub struct Workload {
    pub name: String,
    pub people: usize,
    pub devices: usize,
    pub mix: Mix,
    pub latency: Duration,
    pub per_object: Duration,
    /// Flags given to `catraca enroll` besides the devices, the list and the cache.
    pub flags: Vec<String>,
    pub cache: CacheMode,
    /// Runs of the same workload; the table shows the median wall time.
    pub repeat: usize,
    /// One of the devices (the last) answers after this latency instead: W4's slow
    /// neighbour. `devices` counts it.
    pub slow_device: Option<Duration>,
    /// How catraca is told about the devices and reaches them.
    pub transport: Transport,
    /// Every device is down (connections reset): every pair fails. W2-fail.
    pub devices_down: bool,
    /// W5: every person has a photo (`--photos`), the devices are facial and model a
    /// photo in this time.
    pub faces: Option<Duration>,
    /// The comparison this workload is one side of (the TLS group's `TLS scale 10000`
    /// over http and over https, W2's full size in each cache mode). Consecutive workloads with the same one are measured
    /// run by run in turn, so that a burst of other work on a shared machine falls on
    /// both sides alike.
    pub side_of: Option<String>,
}

impl Workload {
    pub fn pairs(&self) -> u64 {
        self.people as u64 * self.devices as u64
    }

    /// `--name value` from the flags, or the enroll default.
    fn flag(&self, name: &str, default: usize) -> usize {
        self.flags
            .iter()
            .position(|f| f == name)
            .and_then(|i| self.flags.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    }

    pub fn batch_size(&self) -> usize {
        self.flag("--batch-size", crate::engine::DEFAULT_BATCH_SIZE)
    }

    /// The settings column: the flags that differ from the defaults, and the device speed.
    pub fn settings(&self) -> String {
        let mut parts = Vec::new();
        if self.flags.is_empty() {
            parts.push("defaults".to_string());
        } else {
            parts.push(self.flags.join(" "));
        }
        if !self.latency.is_zero() {
            parts.push(format!(
                "{} ms + {} ms/object",
                self.latency.as_millis(),
                self.per_object.as_millis()
            ));
        }
        if let Some(slow) = self.slow_device {
            parts.push(format!("one device at {} ms", slow.as_millis()));
        }
        if self.cache.filled() {
            parts.push("all cached".into());
        }
        if self.devices_down {
            parts.push("every device down".into());
        }
        if let Some(time) = self.faces {
            parts.push(format!(
                "a photo each (--photos), facial devices at {} ms a photo",
                time.as_millis()
            ));
        }
        match self.transport {
            Transport::Http => {}
            Transport::HttpDevicesFile => parts.push("http, devices file".into()),
            Transport::HttpsPinned => parts.push(
                "https, self-signed, each device pinned (tls_fingerprint in the devices file)"
                    .into(),
            ),
        }
        parts.join("; ")
    }

    /// The least time the simulator's parameters allow, for workloads with latency.
    ///
    /// Per device, a login and the load of the people must come first (one after the
    /// other); then the creates, `ceil(people / batch)` of them, each taking the latency
    /// plus the per-object time of the objects beyond the first, spread over the requests
    /// the settings let be in flight at once for that device: its in-flight limit, or its
    /// share of the worker threads when there are fewer threads than device slots. Only
    /// plain lists get an ideal: they need no other request. With a slow device, the
    /// run can end no sooner than that device's ideal.
    pub fn ideal(&self) -> Option<Duration> {
        if self.faces.is_some()
            || self.latency.is_zero()
            || self.mix != Mix::Plain
            || self.cache != CacheMode::None
        {
            return None;
        }
        let latency = self
            .slow_device
            .map_or(self.latency, |slow| slow.max(self.latency));
        let threads = self.flag("--threads", crate::engine::DEFAULT_THREADS);
        let in_flight = self.flag("--max-in-flight", crate::engine::DEFAULT_MAX_IN_FLIGHT);
        let batch = self.batch_size();
        let slots = in_flight.min((threads / self.devices).max(1));
        let loads = self.people.div_ceil(crate::engine::PLAN_CHUNK);
        let creates = self.people.div_ceil(batch);
        let create_time = latency + self.per_object * (batch.min(self.people) as u32 - 1);
        let rounds = creates.div_ceil(slots);
        Some(latency * (1 + loads as u32) + create_time * rounds as u32)
    }
}

/// The sizes the table covers.
#[derive(Debug, Clone, Copy)]
pub struct Sizes {
    /// W1: people and devices.
    pub old_people: usize,
    pub old_devices: usize,
    pub latency: Duration,
    pub per_object: Duration,
    /// W2 and W3: the largest list; W2 also runs a hundredth and a tenth of it.
    pub scale_people: usize,
    pub scale_devices: usize,
    /// Runs of short workloads (startup, W1, the smaller W2); the median is shown.
    pub short_runs: usize,
    /// How long the simulator's throughput is measured.
    pub throughput_for: Duration,
    /// W4: people, fast devices and their latency, the slow device's latency, and a
    /// batch size small enough that the slow device needs many requests.
    pub neighbour_people: usize,
    pub fast_devices: usize,
    pub fast_latency: Duration,
    pub slow_latency: Duration,
    pub neighbour_batch: usize,
    /// TLS's one-per-request workload: people and devices (the scale one is a tenth of
    /// `scale_people` on `scale_devices`).
    pub tls_per_request_people: usize,
    pub tls_per_request_devices: usize,
    /// W5: people with photos, facial devices, the time a device takes per photo.
    pub face_people: usize,
    pub face_devices: usize,
    pub face_time: Duration,
    /// W5-scale: people with photos on two devices that model in no time.
    pub face_scale_people: usize,
    /// Whether W5 runs when no `--only` names it: not at full size, where it takes
    /// minutes of modeling and the simulators hold every photo in memory.
    pub faces_by_default: bool,
}

impl Sizes {
    /// The issue's sizes: 100 x 5 at 50 ms + 1 ms/object; 100,000 x 10.
    pub fn full(scale_people: usize) -> Sizes {
        Sizes {
            old_people: 100,
            old_devices: 5,
            latency: Duration::from_millis(50),
            per_object: Duration::from_millis(1),
            scale_people,
            scale_devices: 10,
            short_runs: 5,
            throughput_for: Duration::from_secs(1),
            // Issue 3: 10 threads, 4 fast devices and 1 very slow one. 300 people in
            // batches of 10 are 30 creates per device: the slow one is busy for seconds.
            neighbour_people: 300,
            fast_devices: 4,
            fast_latency: Duration::from_millis(10),
            slow_latency: Duration::from_millis(400),
            neighbour_batch: 10,
            // 2,000 creates of one person each: small requests, where the encryption of
            // every request and the handshakes weigh most against the work itself.
            tls_per_request_people: 500,
            tls_per_request_devices: 4,
            // Issue 15: 1,000 people x 5 facial devices at 300 ms a photo; 100,000 x 2
            // in no time for memory and fitting throughput.
            face_people: 1000,
            face_devices: 5,
            face_time: Duration::from_millis(300),
            // Not 100,000: the in-process simulators keep every photo they store, and
            // 200,000 of ~39 KB would be 7.8 GB. `--people` sets it.
            face_scale_people: 20_000,
            faces_by_default: false,
        }
    }

    /// Seconds in all: for the test that keeps the benchmark from rotting.
    pub fn quick() -> Sizes {
        Sizes {
            old_people: 12,
            old_devices: 2,
            latency: Duration::from_millis(5),
            per_object: Duration::from_millis(1),
            scale_people: 300,
            scale_devices: 3,
            short_runs: 1,
            throughput_for: Duration::from_millis(200),
            neighbour_people: 30,
            fast_devices: 2,
            fast_latency: Duration::from_millis(2),
            slow_latency: Duration::from_millis(20),
            neighbour_batch: 10,
            tls_per_request_people: 20,
            tls_per_request_devices: 2,
            face_people: 30,
            face_devices: 2,
            face_time: Duration::from_millis(5),
            face_scale_people: 60,
            faces_by_default: true,
        }
    }
}

fn strings(flags: &[&str]) -> Vec<String> {
    flags.iter().map(|f| f.to_string()).collect()
}

/// Every workload of the table, in order, restricted to the groups in `only`
/// (`W1`, `W2`, `W3`, `startup`, `W4`, `TLS`; empty means all).
pub fn all(sizes: &Sizes, only: &[String]) -> Vec<Workload> {
    let wanted =
        |group: &str| only.is_empty() || only.iter().any(|o| o.eq_ignore_ascii_case(group));
    let mut list = Vec::new();
    // Short runs are repeated and the median shown: on a shared machine one run can
    // lose a scheduling slice to someone else's build and look twice as slow.
    let old = |name: &str, flags: &[&str], repeat: usize| Workload {
        name: name.into(),
        people: sizes.old_people,
        devices: sizes.old_devices,
        mix: Mix::Plain,
        latency: sizes.latency,
        per_object: sizes.per_object,
        flags: strings(flags),
        cache: CacheMode::None,
        repeat,
        slow_device: None,
        transport: Transport::Http,
        side_of: None,
        devices_down: false,
        faces: None,
    };
    if wanted("W1") {
        list.push(old(
            "W1 one per request",
            &["--batch-size", "1", "--threads", "10"],
            sizes.short_runs.min(3),
        ));
        list.push(old("W1 batched", &[], sizes.short_runs));
    }
    let scale = |name: String, people: usize, cache: CacheMode, repeat: usize| Workload {
        name,
        people,
        devices: sizes.scale_devices,
        mix: Mix::Full,
        latency: Duration::ZERO,
        per_object: Duration::ZERO,
        flags: Vec::new(),
        cache,
        repeat,
        slow_device: None,
        transport: Transport::Http,
        side_of: None,
        devices_down: false,
        faces: None,
    };
    if wanted("W2") {
        for people in [sizes.scale_people / 100, sizes.scale_people / 10] {
            if people > 0 {
                list.push(scale(
                    format!("W2 scale {people}"),
                    people,
                    CacheMode::None,
                    sizes.short_runs.min(3),
                ));
            }
        }
        // The full size as users run it too: with the default embedded cache and with
        // Redis, each a first run that records every pair (issue 14). The three are
        // measured run by run in turn, the order flipping every round, so that the
        // ratios of the caches to `none` do not depend on which ran during someone
        // else's build on a shared machine.
        let people = sizes.scale_people;
        let by_cache = |name: String, cache: CacheMode| Workload {
            side_of: Some(format!("W2 scale {people} by cache")),
            ..scale(name, people, cache, sizes.short_runs.min(3))
        };
        list.push(by_cache(format!("W2 scale {people}"), CacheMode::None));
        list.push(by_cache(
            format!("W2 scale {people}, embedded"),
            CacheMode::Embedded,
        ));
        list.push(by_cache(
            format!("W2 scale {people}, Redis"),
            CacheMode::Redis,
        ));
        list.push(Workload {
            devices_down: true,
            ..scale(
                format!("W2-fail {people}, all down"),
                people,
                CacheMode::Embedded,
                1,
            )
        });
    }
    if wanted("W3") {
        let people = sizes.scale_people;
        list.push(scale(
            format!("W3 cached {people}, embedded"),
            people,
            CacheMode::EmbeddedFilled,
            1,
        ));
        list.push(scale(
            format!("W3 cached {people}, Redis"),
            people,
            CacheMode::RedisFilled,
            1,
        ));
    }
    if wanted("startup") {
        list.push(Workload {
            name: "startup".into(),
            people: 1,
            devices: 1,
            mix: Mix::Plain,
            latency: Duration::ZERO,
            per_object: Duration::ZERO,
            flags: Vec::new(),
            cache: CacheMode::None,
            repeat: sizes.short_runs,
            slow_device: None,
            transport: Transport::Http,
            side_of: None,
            devices_down: false,
            faces: None,
        });
    }
    if wanted("W4") {
        let batch = sizes.neighbour_batch.to_string();
        let neighbour = |name: &str, slow_device: Option<Duration>, repeat: usize| Workload {
            name: name.into(),
            people: sizes.neighbour_people,
            devices: sizes.fast_devices + usize::from(slow_device.is_some()),
            mix: Mix::Plain,
            latency: sizes.fast_latency,
            per_object: Duration::ZERO,
            flags: strings(&["--batch-size", &batch]),
            cache: CacheMode::None,
            repeat,
            slow_device,
            transport: Transport::Http,
            side_of: None,
            devices_down: false,
            faces: None,
        };
        // The short run alone is repeated (median): it is the denominator of the ratio.
        list.push(neighbour(FAST_ALONE, None, sizes.short_runs.min(3)));
        list.push(neighbour(BESIDE_SLOW, Some(sizes.slow_latency), 1));
    }
    if wanted("TLS") {
        list.extend(tls(sizes));
    }
    let asked = |group: &str| only.iter().any(|o| o.eq_ignore_ascii_case(group));
    let wanted_faces = |group: &str| asked(group) || (only.is_empty() && sizes.faces_by_default);
    if wanted_faces("W5") || wanted_faces("W5-scale") {
        let faces =
            |name: &str, people: usize, devices: usize, time: Duration, cache: CacheMode| {
                Workload {
                    name: name.into(),
                    people,
                    devices,
                    mix: Mix::Plain,
                    latency: Duration::ZERO,
                    per_object: Duration::ZERO,
                    flags: Vec::new(),
                    cache,
                    repeat: 1,
                    slow_device: None,
                    transport: Transport::Http,
                    side_of: None,
                    devices_down: false,
                    faces: Some(time),
                }
            };
        let (people, devices) = (sizes.face_people, sizes.face_devices);
        if wanted_faces("W5") {
            list.push(faces(
                "W5 photos",
                people,
                devices,
                sizes.face_time,
                CacheMode::None,
            ));
            list.push(faces(
                "W5-rerun",
                people,
                devices,
                sizes.face_time,
                CacheMode::EmbeddedFilled,
            ));
        }
        if wanted_faces("W5-scale") {
            list.push(faces(
                "W5-scale",
                sizes.face_scale_people,
                2,
                Duration::ZERO,
                CacheMode::Embedded,
            ));
        }
    }
    list
}

/// The TLS group: each workload over plain HTTP, then over HTTPS, at zero latency so
/// that the cost of TLS is not hidden behind waiting. A tenth of the scale list in
/// batches (CPU-bound: bulk encryption), then a few devices one person per request
/// (small requests: the per-request overhead of TLS and the handshakes weigh more).
fn tls(sizes: &Sizes) -> Vec<Workload> {
    let scale_people = sizes.scale_people / 10;
    let comparisons = [
        (
            format!("TLS scale {scale_people}"),
            scale_people,
            sizes.scale_devices,
            Mix::Full,
            Vec::new(),
        ),
        (
            "TLS one per request".to_string(),
            sizes.tls_per_request_people,
            sizes.tls_per_request_devices,
            Mix::Plain,
            strings(&["--batch-size", "1"]),
        ),
    ];
    let mut list = Vec::new();
    for (comparison, people, devices, mix, flags) in comparisons {
        if people == 0 {
            continue;
        }
        for transport in [Transport::HttpDevicesFile, Transport::HttpsPinned] {
            list.push(Workload {
                name: format!("{comparison}, {}", transport.scheme()),
                people,
                devices,
                mix,
                latency: Duration::ZERO,
                per_object: Duration::ZERO,
                flags: flags.clone(),
                cache: CacheMode::None,
                // Short runs on a shared machine: the ratio needs every run it can get.
                repeat: sizes.short_runs,
                slow_device: None,
                transport,
                side_of: Some(comparison.clone()),
                devices_down: false,
                faces: None,
            });
        }
    }
    list
}

/// W4's two runs: the fast devices alone, then the same beside one slow device.
pub const FAST_ALONE: &str = "W4 fast alone";
pub const BESIDE_SLOW: &str = "W4 beside a slow one";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generated_list_is_valid_and_the_same_every_time() {
        let csv = participants_csv(40, Mix::Full);
        assert_eq!(csv, participants_csv(40, Mix::Full));
        let people = crate::participants::parse(csv.as_bytes(), "bench.csv").unwrap();
        assert_eq!(people.len(), 40);
        assert_eq!(people.iter().filter(|p| p.card.is_some()).count(), 14);
        assert_eq!(people.iter().filter(|p| p.group.is_some()).count(), 10);
        let plain = participants_csv(40, Mix::Plain);
        let people = crate::participants::parse(plain.as_bytes(), "bench.csv").unwrap();
        assert!(people.iter().all(|p| p.card.is_none() && p.group.is_none()));
    }

    #[test]
    fn the_ideal_of_the_old_table_is_what_the_issue_counts() {
        let sizes = Sizes::full(100_000);
        let w1 = all(&sizes, &["W1".into()]);
        // One per request: login + load, then 100 creates per device over 2 slots each.
        assert_eq!(w1[0].ideal(), Some(Duration::from_millis(100 + 50 * 50)));
        // Batched: login + load + one create of 100 (50 ms + 99 x 1 ms).
        assert_eq!(w1[1].ideal(), Some(Duration::from_millis(100 + 149)));
    }

    #[test]
    fn the_tls_group_compares_the_same_workloads_over_http_and_pinned_https() {
        let tls = all(&Sizes::full(100_000), &["tls".into()]);
        let names: Vec<&str> = tls.iter().map(|w| w.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "TLS scale 10000, http",
                "TLS scale 10000, https",
                "TLS one per request, http",
                "TLS one per request, https"
            ]
        );
        for pair in tls.chunks(2) {
            let (http, https) = (&pair[0], &pair[1]);
            assert_eq!(http.side_of, https.side_of);
            assert_eq!(
                (
                    http.people,
                    http.devices,
                    http.mix,
                    &http.flags,
                    http.repeat
                ),
                (
                    https.people,
                    https.devices,
                    https.mix,
                    &https.flags,
                    https.repeat
                )
            );
            assert_eq!(http.transport, Transport::HttpDevicesFile);
            assert_eq!(https.transport, Transport::HttpsPinned);
            assert!(http.latency.is_zero() && http.ideal().is_none());
        }
        assert_eq!((tls[0].people, tls[0].devices), (10_000, 10));
        assert_eq!(tls[2].batch_size(), 1);
        assert!(
            tls[3].settings().contains("pinned"),
            "{}",
            tls[3].settings()
        );
        // The other groups keep their `--device` flags; W2's sides differ only in cache.
        let others = all(&Sizes::full(100_000), &["W1".into(), "W2".into()]);
        assert!(others.iter().all(|w| w.transport == Transport::Http));
        let sides: Vec<CacheMode> = others
            .iter()
            .filter(|w| w.side_of.is_some())
            .map(|w| w.cache)
            .collect();
        assert_eq!(
            sides,
            [CacheMode::None, CacheMode::Embedded, CacheMode::Redis]
        );
        assert!(others
            .iter()
            .filter(|w| w.side_of.is_some())
            .all(|w| w.people == 100_000 && w.repeat == 3));
    }
}
