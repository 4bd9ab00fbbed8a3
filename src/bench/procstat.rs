//! CPU time and resident memory of another process, read from `/proc` (Linux).

use std::time::Duration;

use tokio::time::Instant;

/// One reading of a process.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub at: Instant,
    /// User + system CPU time so far.
    pub cpu: Duration,
    /// Resident set size, bytes.
    pub rss: u64,
}

/// Reads `/proc/<pid>/stat` (CPU ticks) and `/proc/<pid>/status` (VmRSS); `None` when the
/// process is gone or this is not Linux.
pub fn sample(pid: u32) -> Option<Sample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; the fields after its closing ')' do not.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after the name.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(Sample {
        at: Instant::now(),
        cpu: Duration::from_secs_f64(ticks as f64 / clock_ticks_per_sec()),
        rss: rss_kb * 1024,
    })
}

fn clock_ticks_per_sec() -> f64 {
    // SAFETY: sysconf has no preconditions; it only reads a configuration value.
    let n = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if n > 0 { n as f64 } else { 100.0 }
}

/// CPU used between two samples as a percentage of the whole machine.
pub fn cpu_percent(from: &Sample, to: &Sample) -> f64 {
    let wall = to.at.saturating_duration_since(from.at).as_secs_f64();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    if wall <= 0.0 {
        return 0.0;
    }
    100.0 * to.cpu.saturating_sub(from.cpu).as_secs_f64() / (wall * cores)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let s = sample(std::process::id()).expect("own /proc entry");
        assert!(s.rss > 1024 * 1024, "RSS {} is implausibly small", s.rss);
        // Burn CPU and see it counted: the reading must move (a reader stuck at one value, or
        // one that reads the wrong fields, would pass a `>=`). 200 ms is many clock ticks.
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while start.elapsed() < Duration::from_millis(200) {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        std::hint::black_box(x);
        let t = sample(std::process::id()).expect("own /proc entry");
        assert!(
            t.cpu > s.cpu,
            "200 ms of work moved the CPU reading: {:?} -> {:?}",
            s.cpu,
            t.cpu
        );
        assert!(
            t.cpu - s.cpu <= start.elapsed() * 2,
            "no more than the wall time passed (two threads at most here)"
        );
    }

    #[test]
    fn a_missing_process_gives_none() {
        assert!(sample(u32::MAX - 1).is_none());
    }
}
