//! How the benchmark measures: the real `catraca` binary as a child process, timed by
//! the wall clock and charged by the kernel.
//!
//! A child is reaped with `wait4`, which hands back that child's own resource usage:
//! user and system CPU time and its peak resident set (`ru_maxrss`), so a figure is the
//! whole process, startup and exit included, and nothing of the benchmark's own. The
//! simulated devices live in the benchmark process, which does nothing else while a
//! child runs (its main thread blocks in `wait4`): the growth of its own CPU time over
//! that span is what the simulator cost. For the simulator's throughput figure the
//! clients share the process, so there the CPU of the simulator's threads alone is read
//! from `/proc/self/task`.

use std::fs::File;
use std::io;
use std::path::Path;
use std::process::{Command, Stdio};
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

/// Runs `command` to its end with stdout and stderr in files under `scratch` (pipes
/// could fill up while we block in `wait4`), and measures it.
pub fn run(command: &mut Command, scratch: &Path) -> io::Result<Finished> {
    let out_path = scratch.join("child.stdout");
    let err_path = scratch.join("child.stderr");
    command
        .stdin(Stdio::null())
        .stdout(File::create(&out_path)?)
        .stderr(File::create(&err_path)?);
    let own_before = own_cpu();
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
    let own_cpu = own_cpu().saturating_sub(own_before);
    drop(child);
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    };
    Ok(Finished {
        code,
        stdout: std::fs::read_to_string(&out_path)?,
        stderr: std::fs::read_to_string(&err_path)?,
        usage: Usage {
            wall,
            cpu: timeval(usage.ru_utime) + timeval(usage.ru_stime),
            // Linux counts ru_maxrss in kibibytes.
            peak_rss: u64::try_from(usage.ru_maxrss).unwrap_or(0) * 1024,
        },
        own_cpu,
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
