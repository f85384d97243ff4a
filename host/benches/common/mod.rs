//! What the benchmarks share: their knobs, and readings of the process and the machine.
//!
//! Each benchmark is its own crate and uses a part of this module.
#![allow(dead_code)]

use std::time::Duration;

/// A whole-number knob from the environment, or its default.
pub fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// The process's resident memory, from `/proc/self/statm`.
pub fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<u64>().ok())
        })
        .unwrap_or(0)
        * 4096
}

/// Bytes the process has sent to storage so far, counted when it dirtied the pages (the
/// `write_bytes` of `/proc/self/io`): the database's log and the checkpoint's copy alike.
pub fn written_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/io")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|line| line.strip_prefix("write_bytes:"))
                .and_then(|value| value.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// CPU time the process has used (user and system), from `/proc/self/stat` (in USER_HZ ticks,
/// 100 per second).
pub fn cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let fields: Vec<&str> = s.rsplit_once(')')?.1.split_whitespace().collect();
            let user: f64 = fields.get(11)?.parse().ok()?;
            let system: f64 = fields.get(12)?.parse().ok()?;
            Some((user + system) / 100.0)
        })
        .unwrap_or(0.0)
}

pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, name)| name.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

pub fn mb(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1 << 20)
}

pub fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// The `q` quantile of sorted samples (nearest rank).
pub fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// Creates an account through the operator API of a host started with the admin token `bench`;
/// answers its sid and auth token.
pub async fn bench_account(http: &reqwest::Client, base: &str) -> (String, String) {
    let account: serde_json::Value = http
        .post(format!("{base}/v1/Accounts"))
        .bearer_auth("bench")
        .form(&[("FriendlyName", "bench")])
        .send()
        .await
        .expect("create the account")
        .error_for_status()
        .expect("the operator API creates the account")
        .json()
        .await
        .expect("the account as JSON");
    let field = |name: &str| {
        account[name]
            .as_str()
            .unwrap_or_else(|| panic!("no {name} in {account}"))
            .to_string()
    };
    (field("sid"), field("auth_token"))
}
