//! A host's health reading: what the collector measures once per interval.

use crate::HostId;
use serde::{Deserialize, Serialize};

/// One whole reading of a host. Each reading replaces the previous one: nothing is accumulated client-side.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostHealth {
    pub host: HostId,
    pub hostname: String,
    /// Long OS name, e.g. "Linux (Debian GNU/Linux 12)".
    pub os: String,
    /// Unix ms when the reading was taken.
    pub sampled_at_ms: i64,
    pub uptime_s: u64,
    /// All cores together, 0–100.
    pub cpu_pct: f32,
    /// Per core, 0–100, in the order the OS lists them.
    pub cores: Vec<f32>,
    pub load: LoadAvg,
    pub memory: Usage,
    pub swap: Usage,
    /// Every mounted file system with a size, as the OS lists them.
    pub disks: Vec<DiskUsage>,
    pub net: NetRates,
}

impl HostHealth {
    pub fn mem_pct(&self) -> f32 {
        self.memory.pct()
    }

    /// The mount that is closest to full: the one that will page somebody first.
    pub fn fullest_disk(&self) -> Option<&DiskUsage> {
        self.disks
            .iter()
            .max_by(|a, b| a.usage().pct().total_cmp(&b.usage().pct()))
    }

    /// Percent of the fullest mount, 0 when the host reports no disks.
    pub fn disk_pct(&self) -> f32 {
        self.fullest_disk().map_or(0.0, |d| d.usage().pct())
    }

    pub fn point(&self) -> HealthPoint {
        HealthPoint {
            at_ms: self.sampled_at_ms,
            cpu_pct: self.cpu_pct,
            mem_pct: self.mem_pct(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LoadAvg {
    pub one: f64,
    pub five: f64,
    pub fifteen: f64,
}

/// Used and total bytes of something with a capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub used: u64,
    pub total: u64,
}

impl Usage {
    /// 0–100; 0 for a zero capacity (no swap configured) rather than NaN.
    pub fn pct(&self) -> f32 {
        if self.total == 0 {
            0.0
        } else {
            (self.used as f64 * 100.0 / self.total as f64) as f32
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskUsage {
    pub mount: String,
    pub fs: String,
    pub used: u64,
    pub total: u64,
}

impl DiskUsage {
    pub fn usage(&self) -> Usage {
        Usage {
            used: self.used,
            total: self.total,
        }
    }
}

/// Bytes per second over all non-loopback interfaces since the previous reading.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct NetRates {
    pub rx_bytes_per_s: f64,
    pub tx_bytes_per_s: f64,
}

/// One point of the short CPU/memory trend drawn beside the gauges.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HealthPoint {
    pub at_ms: i64,
    pub cpu_pct: f32,
    pub mem_pct: f32,
}

#[cfg(test)]
mod tests {
    use crate::tests::reading;

    #[test]
    fn the_fullest_disk_decides_the_disk_gauge() {
        let h = reading("a", 0, 1.0);
        assert_eq!(h.fullest_disk().unwrap().mount, "/data");
        assert_eq!(h.disk_pct(), 90.0);
        assert_eq!(h.mem_pct(), 37.5);
    }

    #[test]
    fn zero_capacity_is_zero_percent_not_nan() {
        let mut h = reading("a", 0, 1.0);
        h.disks.clear();
        assert_eq!(h.disk_pct(), 0.0);
        assert_eq!(h.swap.pct(), 0.0);
    }
}
