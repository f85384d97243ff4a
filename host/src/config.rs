//! Host configuration: defaults, overridden by a TOML file, overridden by environment variables and
//! command-line flags (the CLI applies those last two through clap's `env` support).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

/// Everything an operator can set. Every field has a default, so an empty file is a valid config.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address the HTTP API listens on.
    pub bind: SocketAddr,
    /// Where the SQLite database, compiled artifacts and the generated admin token live.
    pub data_dir: PathBuf,
    /// `postgres://...` to use PostgreSQL; unset = SQLite in `data_dir`.
    pub database_url: Option<String>,
    /// The operator token for `/v1/Accounts`; generated and stored in `data_dir` when unset.
    pub admin_token: Option<String>,
    pub limits: Limits,
    pub accounts: AccountSettings,
    pub modules: ModuleSettings,
    pub runtime: RuntimeSettings,
    pub telephony: TelephonySettings,
    pub events: EventSettings,
    pub media: MediaSettings,
    pub presence: PresenceSettings,
    pub database: DatabaseSettings,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./data"),
            database_url: None,
            admin_token: None,
            limits: Limits::default(),
            accounts: AccountSettings::default(),
            modules: ModuleSettings::default(),
            runtime: RuntimeSettings::default(),
            telephony: TelephonySettings::default(),
            events: EventSettings::default(),
            media: MediaSettings::default(),
            presence: PresenceSettings::default(),
            database: DatabaseSettings::default(),
        }
    }
}

impl Config {
    /// Reads a TOML file; unknown keys are errors so typos do not silently fall back to defaults.
    pub fn from_file(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("could not read the config file {}", path.display()))?;
        toml::from_str(&text)
            .with_context(|| format!("the config file {} is not valid", path.display()))
    }
}

/// Limits of one module invocation. These are the defaults; an account may override each one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// WebAssembly instructions an invocation may execute (deterministic and billable).
    pub fuel: u64,
    /// Wall-clock milliseconds an invocation may run, host calls included.
    pub deadline_ms: u64,
    /// Bytes of linear memory and tables summed over every instance of the component.
    pub memory_bytes: u64,
    /// Calls into host interfaces (kv, log, queues, ...) one invocation may make.
    pub host_calls: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            fuel: 500_000_000,
            deadline_ms: 2_000,
            memory_bytes: 64 * 1024 * 1024,
            host_calls: 10_000,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModuleSettings {
    /// Largest accepted upload.
    pub max_upload_bytes: u64,
    /// Longest a module may take to compile before the upload is refused.
    pub compile_timeout_ms: u64,
}

impl Default for ModuleSettings {
    fn default() -> Self {
        ModuleSettings {
            max_upload_bytes: 32 * 1024 * 1024,
            compile_timeout_ms: 60_000,
        }
    }
}

/// How tenants' credentials are checked.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AccountSettings {
    /// Seconds a verified `AccountSid:AuthToken` is trusted before the database is asked again;
    /// 0 asks on every request. A change made through this host (suspending an account) applies at
    /// once; one made through another host sharing the database applies within this time.
    pub credential_cache_seconds: u64,
    /// Requests that may write (POST, PUT, PATCH, DELETE) one account may have in progress on
    /// this host at once; one more is answered 429 before it changes anything. It keeps one
    /// tenant's flood from filling the writer's backlog that every tenant shares (as the
    /// reference platform limits an account's concurrent requests).
    pub max_concurrent_writes: usize,
}

impl AccountSettings {
    pub fn check(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.max_concurrent_writes >= 1,
            "accounts.max_concurrent_writes is 0: an account must be able to write (default: 100)"
        );
        Ok(())
    }
}

impl Default for AccountSettings {
    fn default() -> Self {
        AccountSettings {
            credential_cache_seconds: 10,
            max_concurrent_writes: 100,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuntimeSettings {
    /// Use the pooling instance allocator (fast instantiation). When the machine's address space
    /// cannot hold the pool the host falls back to on-demand allocation and logs why.
    pub pooling: bool,
    /// Invocations running at once; more wait for a slot (and are answered 429 if none frees in
    /// time). Also sizes the instance pool.
    pub max_concurrent_invocations: u32,
}

impl Default for RuntimeSettings {
    fn default() -> Self {
        RuntimeSettings {
            pooling: true,
            max_concurrent_invocations: 256,
        }
    }
}

/// How events reach channel subscribers.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventSettings {
    /// Milliseconds a webhook has to answer before the attempt counts as failed.
    pub webhook_timeout_ms: u64,
    /// Waits before each retry of a failed delivery, in milliseconds; the last repeats. The default
    /// follows the Standard Webhooks example: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h.
    pub retry_schedule_ms: Vec<u64>,
    /// Failed attempts in a row after which a subscriber is disabled (a 410 disables at once).
    pub disable_after_failures: u32,
    /// Let webhooks target loopback, private and link-local addresses. Off by default so a tenant
    /// cannot make the host probe its own network.
    pub allow_private_targets: bool,
    /// How long a channel keeps its events for replay when it names no RetentionSeconds.
    pub default_retention_seconds: u64,
    /// Events a channel keeps in memory for its live streams (in runs of up to 64); a stream that
    /// falls further behind catches up from the log.
    pub stream_buffer: usize,
}

impl Default for EventSettings {
    fn default() -> Self {
        EventSettings {
            webhook_timeout_ms: 15_000,
            retry_schedule_ms: vec![5_000, 300_000, 1_800_000, 7_200_000, 18_000_000, 36_000_000],
            disable_after_failures: 10,
            allow_private_targets: false,
            default_retention_seconds: 7 * 24 * 3600,
            stream_buffer: 4_096,
        }
    }
}

/// How far the database may fall behind, and how the SQLite database's write-ahead log is copied
/// back into the database file (checkpoints; PostgreSQL does not use those). A longer log copies
/// back less often, at the cost of disk space and of a longer recovery after a crash.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSettings {
    /// State changes waiting for the writer at which the HTTP API turns tenants' new writes away
    /// (503, Retry-After): the database is then far behind, and accepting more would only grow
    /// memory and every caller's wait. Reads, the operator's requests, and work already accepted
    /// (timers, calls) go on.
    pub max_waiting_changes: usize,
    /// Milliseconds the checkpointer rests after each checkpoint: under a busy writer it copies
    /// the log back about this often.
    pub checkpoint_pause_ms: u64,
    /// Pages in the log (4 KiB each by default) past which the checkpointer works to start it over
    /// from its beginning; the log's file is cut back to twice this when it starts over.
    pub log_restart_pages: u32,
    /// Pages appended during one checkpoint that are few enough for the writer to copy back
    /// itself between two batches; smaller than `log_restart_pages`.
    pub log_tail_pages: u32,
}

impl DatabaseSettings {
    /// A tail as long as the log that starts over could never be reached: refused before the host
    /// touches anything.
    pub fn check(&self) -> anyhow::Result<()> {
        let DatabaseSettings {
            log_restart_pages,
            log_tail_pages,
            ..
        } = *self;
        anyhow::ensure!(
            self.max_waiting_changes >= 1,
            "database.max_waiting_changes is 0: at least one change must be able to wait for the \
             writer (default: 20000)"
        );
        anyhow::ensure!(
            log_tail_pages >= 1 && log_tail_pages < log_restart_pages,
            "database.log_tail_pages is {log_tail_pages} and database.log_restart_pages is \
             {log_restart_pages}: the tail must be at least 1 page and fewer pages than the log \
             that starts over (defaults: 256 and 16384)"
        );
        Ok(())
    }
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        DatabaseSettings {
            max_waiting_changes: 20_000,
            checkpoint_pause_ms: 100,
            log_restart_pages: 16_384,
            log_tail_pages: 256,
        }
    }
}

/// How clients register and stay present.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PresenceSettings {
    /// Seconds a client is told to leave between heartbeats.
    pub heartbeat_interval_seconds: u64,
    /// Seconds an endpoint stays registered after its last heartbeat: a client that misses two
    /// heartbeats and a half is offline.
    pub lease_seconds: u64,
    /// Seconds of clock skew allowed when checking a token's `exp` and `nbf`.
    pub token_leeway_seconds: u64,
    /// Endpoints one identity may hold at once (a new one beyond that is refused).
    pub max_endpoints_per_identity: usize,
}

impl Default for PresenceSettings {
    fn default() -> Self {
        PresenceSettings {
            heartbeat_interval_seconds: 30,
            lease_seconds: 75,
            token_leeway_seconds: 30,
            max_endpoints_per_identity: 10,
        }
    }
}

/// How calls are run.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelephonySettings {
    /// `system` (real time) or `manual` (time moves only through `POST /v1/Sim/Clock`).
    pub clock: crate::clock::ClockKind,
    /// How fast media plays: 1.0 = real time, 10.0 = ten times faster, 0 = no waiting at all. Gather
    /// and ring timeouts are not media and always follow the clock.
    pub media_speed: f64,
    /// Milliseconds to establish a connection to an HTTP application before failing over (11205).
    pub http_connect_timeout_ms: u64,
    /// Milliseconds for an HTTP application's whole answer before failing over (11205).
    pub http_timeout_ms: u64,
    /// Handler requests in a row without the caller hearing anything or pressing a key before the
    /// call is ended as a redirect loop (11215).
    pub max_fetches_without_progress: u32,
    /// What a queued caller hears when its enqueue names no wait URL: an http(s) URL of audio to
    /// loop, or none for silence.
    pub hold_music_url: Option<String>,
    /// Seconds of hold (music or silence) a queued caller hears when its wait-state application
    /// fails, before the application is asked again.
    pub wait_fallback_seconds: u32,
}

impl Default for TelephonySettings {
    fn default() -> Self {
        TelephonySettings {
            clock: crate::clock::ClockKind::System,
            media_speed: 1.0,
            http_connect_timeout_ms: 5_000,
            http_timeout_ms: 15_000,
            max_fetches_without_progress: 50,
            hold_music_url: None,
            wait_fallback_seconds: 10,
        }
    }
}

/// How media is fetched, cached and synthesized.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MediaSettings {
    /// Bytes of transcoded audio kept on disk (in `data_dir/media`); the least recently used clips
    /// are evicted past it. At 8 000 bytes a second, 1 GiB holds about 37 hours.
    pub cache_bytes: u64,
    /// Largest audio file fetched from a URL.
    pub max_fetch_bytes: u64,
    /// Largest file a tenant may upload to `/v1/Media`.
    pub max_upload_bytes: u64,
    /// Milliseconds a fetch may take, download included.
    pub fetch_timeout_ms: u64,
    /// Redirects followed before a fetch fails.
    pub max_redirects: u32,
    /// Fetch from loopback, private and link-local addresses too. Off by default so tenants cannot
    /// make the host reach into the operator's network.
    pub allow_private_addresses: bool,
    /// Seconds a fetched file is used without asking again when its answer has no
    /// `Cache-Control: max-age` (and no `no-cache`).
    pub default_max_age_seconds: u64,
    /// The espeak-ng executable.
    pub tts_command: String,
    /// Milliseconds one synthesis may take.
    pub tts_timeout_ms: u64,
    /// Longest text spoken at once, in characters (the reference platform's basic voices take
    /// 4 000).
    pub max_speech_characters: usize,
    /// Syntheses and transcodings run at once; 0 = one per core. Each takes a core while it runs,
    /// and a burst of new announcements must not starve the calls and modules already running.
    pub max_concurrent_jobs: usize,
}

impl Default for MediaSettings {
    fn default() -> Self {
        MediaSettings {
            cache_bytes: 1024 * 1024 * 1024,
            max_fetch_bytes: 512 * 1024 * 1024,
            max_upload_bytes: 64 * 1024 * 1024,
            fetch_timeout_ms: 30_000,
            max_redirects: 5,
            allow_private_addresses: false,
            default_max_age_seconds: 300,
            tts_command: "espeak-ng".into(),
            tts_timeout_ms: 30_000,
            max_speech_characters: 4_000,
            max_concurrent_jobs: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_file_keeps_defaults_and_rejects_typos() {
        let config: Config =
            toml::from_str("bind = \"0.0.0.0:9000\"\n[limits]\nfuel = 5\n").expect("valid config");
        assert_eq!(config.bind.port(), 9000);
        assert_eq!(config.limits.fuel, 5);
        assert_eq!(config.limits.deadline_ms, Limits::default().deadline_ms);
        assert!(toml::from_str::<Config>("bnd = \"x\"").is_err());
    }

    #[test]
    fn database_settings_are_read_from_their_section() {
        let config: Config =
            toml::from_str("[database]\nlog_restart_pages = 4096\n").expect("valid config");
        assert_eq!(config.database.log_restart_pages, 4096);
        assert_eq!(config.database.log_tail_pages, 256);
        assert_eq!(config.database.checkpoint_pause_ms, 100);
        assert!(toml::from_str::<Config>("[database]\nlog_pages = 1\n").is_err());
        assert!(toml::from_str::<Config>("[database]\nlog_tail_pages = -1\n").is_err());
        assert_eq!(config.database.max_waiting_changes, 20_000);
        let none_may_wait: Config =
            toml::from_str("[database]\nmax_waiting_changes = 0\n").expect("parses");
        let refused = none_may_wait
            .database
            .check()
            .expect_err("no change could ever wait");
        assert!(
            refused.to_string().contains("max_waiting_changes"),
            "{refused}"
        );
        assert_eq!(config.accounts.max_concurrent_writes, 100);
        let no_writes: Config =
            toml::from_str("[accounts]\nmax_concurrent_writes = 0\n").expect("parses");
        let refused = no_writes
            .accounts
            .check()
            .expect_err("no account could write");
        assert!(
            refused.to_string().contains("max_concurrent_writes"),
            "{refused}"
        );
    }
}
