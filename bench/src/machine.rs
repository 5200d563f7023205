//! The machine a benchmark ran on, from `/proc`.

/// CPU, cores, memory and kernel.
#[derive(Debug, Clone)]
pub struct Machine {
    /// CPU model name.
    pub cpu: String,
    /// Logical cores.
    pub cores: usize,
    /// Memory in GiB.
    pub memory_gib: f64,
    /// Kernel release.
    pub kernel: String,
}

impl Machine {
    /// Reads `/proc/cpuinfo`, `/proc/meminfo` and the kernel release.
    pub fn read() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let value = |line: &str| line.split_once(':').map(|(_, v)| v.trim().to_string());
        let cpu = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(value)
            .unwrap_or_else(|| "unknown CPU".into());
        let cores = cpuinfo
            .lines()
            .filter(|l| l.starts_with("processor"))
            .count()
            .max(1);
        let kib: f64 = meminfo
            .lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(value)
            .and_then(|v| v.split_whitespace().next().and_then(|n| n.parse().ok()))
            .unwrap_or(0.0);
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .to_string();
        Self {
            cpu,
            cores,
            memory_gib: kib / (1024.0 * 1024.0),
            kernel,
        }
    }
}
