//! Standard `process_*` metrics read from `/proc/self`, rendered at scrape time.
//!
//! Linux only; on other systems, or when `/proc` cannot be read, the families are simply left out
//! rather than reported as zero.

use super::{
    write_family, PROCESS_CPU_SECONDS_TOTAL, PROCESS_MAX_FDS, PROCESS_OPEN_FDS,
    PROCESS_RESIDENT_MEMORY_BYTES, PROCESS_START_TIME_SECONDS, PROCESS_VIRTUAL_MEMORY_BYTES,
};

/// Appends the process families to `out`.
pub fn render(out: &mut String) {
    if let Some(stat) = Stat::read() {
        write_family(
            out,
            PROCESS_CPU_SECONDS_TOTAL,
            "counter",
            "Total user and system CPU time spent in seconds.",
            stat.cpu_seconds,
        );
        write_family(
            out,
            PROCESS_RESIDENT_MEMORY_BYTES,
            "gauge",
            "Resident memory size in bytes.",
            stat.rss_bytes,
        );
        write_family(
            out,
            PROCESS_VIRTUAL_MEMORY_BYTES,
            "gauge",
            "Virtual memory size in bytes.",
            stat.vsize_bytes,
        );
        if let Some(start) = stat.start_time_seconds {
            write_family(
                out,
                PROCESS_START_TIME_SECONDS,
                "gauge",
                "Start time of the process since unix epoch in seconds.",
                start,
            );
        }
    }
    if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
        write_family(
            out,
            PROCESS_OPEN_FDS,
            "gauge",
            "Number of open file descriptors.",
            dir.count() as f64,
        );
    }
    if let Some(max) = max_fds() {
        write_family(
            out,
            PROCESS_MAX_FDS,
            "gauge",
            "Maximum number of open file descriptors.",
            max,
        );
    }
}

/// Resident set size of this process in bytes, for reports and tests.
pub fn rss_bytes() -> Option<u64> {
    Stat::read().map(|s| s.rss_bytes as u64)
}

struct Stat {
    cpu_seconds: f64,
    rss_bytes: f64,
    vsize_bytes: f64,
    start_time_seconds: Option<f64>,
}

impl Stat {
    fn read() -> Option<Stat> {
        let text = std::fs::read_to_string("/proc/self/stat").ok()?;
        // The command name may contain spaces and parentheses; fields start after the last ')'.
        let rest = &text[text.rfind(')')? + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // Indices below are the field numbers of proc(5) minus 3.
        let ticks = clock_ticks();
        let utime: f64 = fields.get(11)?.parse().ok()?;
        let stime: f64 = fields.get(12)?.parse().ok()?;
        let starttime: f64 = fields.get(19)?.parse().ok()?;
        let vsize: f64 = fields.get(20)?.parse().ok()?;
        Some(Stat {
            cpu_seconds: (utime + stime) / ticks,
            rss_bytes: status_rss_bytes()?,
            vsize_bytes: vsize,
            start_time_seconds: boot_time().map(|boot| boot + starttime / ticks),
        })
    }
}

/// Linux reports CPU times in USER_HZ, which is 100 on every architecture it supports; asking
/// `sysconf` would need unsafe code for no gain.
fn clock_ticks() -> f64 {
    100.0
}

/// Resident memory from `/proc/self/status` (in kB there), which does not depend on the page size.
fn status_rss_bytes() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?;
    let kb: f64 = line.split_whitespace().next()?.parse().ok()?;
    Some(kb * 1024.0)
}

fn boot_time() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

fn max_fds() -> Option<f64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_this_process() {
        let mut out = String::new();
        super::render(&mut out);
        assert!(out.contains("process_resident_memory_bytes "), "{out}");
        assert!(super::rss_bytes().unwrap() > 1024 * 1024);
    }
}
