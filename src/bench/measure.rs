//! How the benchmark measures: the real `catraca` binary as a child process, timed by
//! the wall clock and charged by the kernel.
//!
//! A child is reaped with `wait4`, which hands back that child's own resource usage:
//! user and system CPU time and its peak resident set (`ru_maxrss`), so a figure is the
//! whole process, startup and exit included. Children are not started by the benchmark
//! itself but by a small [`Launcher`] process started first: Linux carries the resident
//! size of the process that forked into the child's `ru_maxrss` (exec records the old
//! memory's high-water mark), and the benchmark, which hosts a million simulated users,
//! would otherwise lend every child its own size. The simulated devices live in the
//! benchmark process, which does nothing else while a child runs (its main thread waits
//! for the launcher's answer): the growth of its own CPU time over that span is what the
//! simulator cost. For the simulator's throughput figure the clients share the process,
//! so there the CPU of the simulator's threads alone is read from `/proc/self/task`.

use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

/// What the kernel charged one child process, and how long it ran.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    pub wall: Duration,
    /// User plus system CPU time.
    pub cpu: Duration,
    /// Peak resident set size, in bytes.
    pub peak_rss: u64,
}

/// A finished child: its exit status, what it printed, and its usage.
pub struct Finished {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub usage: Usage,
    /// CPU time this process (the simulator, as nothing else runs) used meanwhile.
    pub own_cpu: Duration,
}

/// A command for the launcher to run: program, arguments, environment changes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Spec {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env_remove: Vec<String>,
    pub env_set: Vec<(String, String)>,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
    /// Where it runs: a scratch directory, so no `catraca.toml` of the caller's
    /// directory changes the settings being measured.
    pub current_dir: PathBuf,
}

/// The launcher's answer about one child.
#[derive(Debug, Serialize, Deserialize)]
struct Reaped {
    code: i32,
    wall_ns: u64,
    cpu_ns: u64,
    peak_rss: u64,
    error: Option<String>,
}

/// `catraca bench --launcher`, a small process that runs the measured children: one
/// JSON [`Spec`] per line on its stdin, one JSON answer per line on its stdout.
pub struct Launcher {
    process: Child,
    requests: ChildStdin,
    answers: BufReader<ChildStdout>,
}

impl Launcher {
    /// Starts `exe bench --launcher`; call before the benchmark grows.
    pub fn start(exe: &Path) -> io::Result<Launcher> {
        let mut process = Command::new(exe)
            .args(["bench", "--launcher"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let requests = process.stdin.take().expect("piped stdin");
        let answers = BufReader::new(process.stdout.take().expect("piped stdout"));
        Ok(Launcher {
            process,
            requests,
            answers,
        })
    }

    /// Runs `spec` to its end with stdout and stderr in files under `scratch`, and
    /// measures it.
    pub fn run(&mut self, spec: &Spec) -> io::Result<Finished> {
        let own_before = own_cpu();
        let mut line = serde_json::to_string(spec)?;
        line.push('\n');
        self.requests.write_all(line.as_bytes())?;
        self.requests.flush()?;
        let mut answer = String::new();
        if self.answers.read_line(&mut answer)? == 0 {
            return Err(io::Error::other("the launcher process ended"));
        }
        let own_cpu = own_cpu().saturating_sub(own_before);
        let reaped: Reaped = serde_json::from_str(&answer)?;
        if let Some(error) = reaped.error {
            return Err(io::Error::other(format!(
                "cannot run {}: {error}",
                spec.program.display()
            )));
        }
        Ok(Finished {
            code: reaped.code,
            stdout: std::fs::read_to_string(&spec.stdout)?,
            stderr: std::fs::read_to_string(&spec.stderr)?,
            usage: Usage {
                wall: Duration::from_nanos(reaped.wall_ns),
                cpu: Duration::from_nanos(reaped.cpu_ns),
                peak_rss: reaped.peak_rss,
            },
            own_cpu,
        })
    }
}

impl Drop for Launcher {
    fn drop(&mut self) {
        // Its stdin closes with us, and it ends at end of input.
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// The launcher's loop: runs each spec read from stdin and answers on stdout.
pub fn serve_launcher() -> io::Result<()> {
    let stdin = io::stdin();
    let mut stdout = io::stdout().lock();
    for line in stdin.lock().lines() {
        let spec: Spec = serde_json::from_str(&line?)?;
        let reaped = launch(&spec).unwrap_or_else(|e| Reaped {
            code: -1,
            wall_ns: 0,
            cpu_ns: 0,
            peak_rss: 0,
            error: Some(e.to_string()),
        });
        writeln!(stdout, "{}", serde_json::to_string(&reaped)?)?;
        stdout.flush()?;
    }
    Ok(())
}

fn launch(spec: &Spec) -> io::Result<Reaped> {
    let mut command = Command::new(&spec.program);
    command.args(&spec.args);
    for name in &spec.env_remove {
        command.env_remove(name);
    }
    for (name, value) in &spec.env_set {
        command.env(name, value);
    }
    command
        .current_dir(&spec.current_dir)
        .stdin(Stdio::null())
        .stdout(File::create(&spec.stdout)?)
        .stderr(File::create(&spec.stderr)?);
    let started = Instant::now();
    let child = command.spawn()?;
    let pid = child.id() as libc::pid_t;
    let mut status: libc::c_int = 0;
    // SAFETY: an all-zero rusage is a valid value; wait4 fills it in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: `pid` is our own child, not yet reaped (std's `Child` only reaps in
        // `wait`, which is never called on it), and both pointers are valid.
        let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if reaped == pid {
            break;
        }
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
    let wall = started.elapsed();
    drop(child);
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    };
    let cpu = timeval(usage.ru_utime) + timeval(usage.ru_stime);
    Ok(Reaped {
        code,
        wall_ns: wall.as_nanos() as u64,
        cpu_ns: cpu.as_nanos() as u64,
        // Linux counts ru_maxrss in kibibytes.
        peak_rss: u64::try_from(usage.ru_maxrss).unwrap_or(0) * 1024,
        error: None,
    })
}

fn timeval(t: libc::timeval) -> Duration {
    Duration::from_secs(u64::try_from(t.tv_sec).unwrap_or(0))
        + Duration::from_micros(u64::try_from(t.tv_usec).unwrap_or(0))
}

/// User plus system CPU time of this whole process so far.
pub fn own_cpu() -> Duration {
    // SAFETY: an all-zero rusage is valid and getrusage only writes into it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF with a valid pointer cannot fail.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    timeval(usage.ru_utime) + timeval(usage.ru_stime)
}

/// CPU time (user plus system) of this process's live threads whose name starts with
/// `prefix`, from `/proc/self/task/*/stat`; zero where `/proc` is not there.
pub fn threads_cpu(prefix: &str) -> Duration {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Duration::ZERO;
    };
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let mut total = 0u64;
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ...`: comm may hold spaces, so split at the last `)`.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        if !stat[open + 1..close].starts_with(prefix) {
            continue;
        }
        // After `) `: state is field 3; utime and stime are fields 14 and 15.
        let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
        let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok());
        total += field(14).unwrap_or(0) + field(15).unwrap_or(0);
    }
    Duration::from_millis(total * 1000 / ticks)
}
