//! Configuration: command-line flags, then `WATCHPOST_*` environment variables, then an optional TOML file,
//! then defaults — in that order of precedence. Each setting is declared once, in [`settings`]; the
//! resolved [`Config`] is in sections, one per part of the server that reads it, each with its defaults.

mod cli;
mod settings;

pub use cli::{Cli, Command, TokenCommand, TokenRole, UserCommand};

use crate::alerts::{AlertRuleFile, check_rules};
use crate::auth::AuthConfig;
use crate::auth::security::LockoutConfig;
use crate::http::serve::Limits;
use crate::notify::channel::{Channel, ChannelFile, check_channels};
use crate::notify::{NotifyConfig, NotifyFile};
use crate::sources::postgres::PostgresTarget;
use crate::sources::scrape::{ScrapeTarget, TargetOptions, attach};
use crate::sources::tail::TailedFile;
use crate::storage::{StoreChoice, StoreUrl};
use runner::spec::{CommandFile, CommandSpec, check_all};
use serde::de::DeserializeOwned;
use settings::{SetError, Settings};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use store::Retention;

/// Shortest collector interval: below this the collector's own cost starts to show in what it measures.
const MIN_INTERVAL: Duration = Duration::from_millis(100);
const MAX_INTERVAL: Duration = Duration::from_secs(3600);
/// Upper bound for the buffers: a typo of an extra zero should fail loudly, not eat the machine's memory.
const MAX_BUFFER: usize = 1_000_000;
/// Per-second history shorter than this could not even draw the one-hour chart's recent end.
const MIN_RETENTION: Duration = Duration::from_secs(600);
const MIN_MINUTE_RETENTION: Duration = Duration::from_secs(2 * 3600);
const MAX_RETENTION: Duration = Duration::from_secs(10 * 366 * 24 * 3600);

/// The effective configuration.
#[derive(Debug, Clone, Default)]
pub struct Config {
    pub server: ServerSection,
    pub sampling: Sampling,
    pub stream: StreamSection,
    pub storage: Storage,
    pub sources: Sources,
    pub auth: AuthConfig,
    /// The commands the Controls panel offers, checked.
    pub commands: Vec<CommandSpec>,
    pub alerting: Alerting,
}

/// Where the server listens, keeps its data and finds its site.
#[derive(Debug, Clone)]
pub struct ServerSection {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub site_root: PathBuf,
    /// The environment this server watches.
    pub environment: String,
    /// Whether the sample workload runs.
    pub demo: bool,
    /// Proxies whose forwarding headers give the client's address.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// How slow and how many clients may be.
    pub limits: Limits,
}

impl Default for ServerSection {
    fn default() -> Self {
        ServerSection {
            listen: SocketAddr::from(([127, 0, 0, 1], 3000)),
            data_dir: PathBuf::from("data"),
            site_root: PathBuf::from("target/site"),
            environment: "default".into(),
            demo: false,
            trusted_proxies: Vec::new(),
            limits: Limits::default(),
        }
    }
}

/// How often the host and the interval figures are read.
#[derive(Debug, Clone)]
pub struct Sampling {
    pub interval: Duration,
    /// How long one point of the API and database figures covers.
    pub api_interval: Duration,
    /// How long an agent may be silent before its host is offline.
    pub offline_after: Duration,
}

impl Default for Sampling {
    fn default() -> Self {
        Sampling {
            interval: Duration::from_secs(1),
            api_interval: Duration::from_secs(10),
            offline_after: Duration::from_secs(30),
        }
    }
}

/// The live streams.
#[derive(Debug, Clone)]
pub struct StreamSection {
    /// NATS JetStream, when events go over it (scale-out); `None`: in-process.
    pub bus: Option<BusSection>,
    pub replay_buffer: usize,
    pub client_queue: usize,
    pub keepalive: Duration,
    /// Live streams one user may hold open.
    pub max_streams_per_user: usize,
}

impl Default for StreamSection {
    fn default() -> Self {
        StreamSection {
            bus: None,
            replay_buffer: 4096,
            client_queue: 256,
            keepalive: Duration::from_secs(15),
            max_streams_per_user: 8,
        }
    }
}

/// Where the event bus is: NATS (`nats://host:port`) and the JetStream stream's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusSection {
    pub url: String,
    pub stream: String,
}

/// What the store keeps, and how much room it may take.
#[derive(Debug, Clone, Default)]
pub struct Storage {
    pub retention: Retention,
    /// The embedded store's limit (a PostgreSQL store's size is its administrator's to limit).
    pub quota: Option<u64>,
    pub engine: StoreChoice,
}

/// Sources beyond the host: log files, scrape targets, PostgreSQL databases.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// Log files followed into the error log.
    pub tail_logs: Vec<TailedFile>,
    /// Services scraped for the API panel.
    pub scrape: Vec<ScrapeTarget>,
    /// PostgreSQL databases watched by the database panel.
    pub postgres: Vec<PostgresTarget>,
}

/// Alert rules and where their notifications go.
#[derive(Debug, Clone, Default)]
pub struct Alerting {
    /// The rules, checked.
    pub rules: Vec<shared::AlertRule>,
    /// Grouping, retries and links of notifications.
    pub notify: NotifyConfig,
    /// The notification channels, checked (their secret files read).
    pub channels: Vec<Channel>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{name}: {message}")]
    Invalid { name: &'static str, message: String },
    #[error("{name}: {message} (in {path})")]
    InFile {
        name: String,
        message: String,
        path: PathBuf,
    },
}

/// The configuration file: the settings (the flags' names with `_` for `-`), and the tables only a file can
/// hold.
#[derive(Default)]
struct File {
    settings: Settings,
    /// `[[commands]]` tables.
    commands: Vec<CommandFile>,
    /// `[[alerts]]` tables: the alert rules.
    alerts: Vec<AlertRuleFile>,
    /// `[notify]`: grouping, retries and links of notifications.
    notify: Option<NotifyFile>,
    /// `[[channels]]` tables: where notifications go.
    channels: Vec<ChannelFile>,
}

impl Config {
    /// Merges flags/environment over the file (if any) over the defaults, and validates the result.
    pub fn resolve(cli: &Cli) -> Result<Config, ConfigError> {
        let file = match &cli.config {
            Some(path) => read_file(path)?,
            None => File::default(),
        };
        let s = cli.settings.clone().or(file.settings);
        let d = Config::default();
        let invalid = |name: &'static str| move |message| ConfigError::Invalid { name, message };
        let mut scrape = s.scrape;
        let options = |tokens, cas, labels| TargetOptions {
            tokens,
            cas,
            labels,
        };
        // One call per flag, so an error names the flag it came from.
        attach(&mut scrape, options(&s.scrape_token_file, &[], &[]))
            .map_err(invalid("scrape-token-file"))?;
        attach(&mut scrape, options(&[], &s.scrape_ca_file, &[]))
            .map_err(invalid("scrape-ca-file"))?;
        attach(&mut scrape, options(&[], &[], &s.scrape_label)).map_err(invalid("scrape-label"))?;
        let engine = match (s.store, &s.store_url_file) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::Invalid {
                    name: "store-url-file",
                    message: "give the store's URL once: --store or --store-url-file, not both"
                        .into(),
                });
            }
            (Some(url), None) => StoreChoice::Postgres(Box::new(url)),
            (None, Some(path)) => StoreChoice::Postgres(Box::new(
                StoreUrl::from_file(path).map_err(invalid("store-url-file"))?,
            )),
            (None, None) => StoreChoice::Embedded,
        };
        let bus = match s.bus {
            Some(url) => {
                if !(url.starts_with("nats://") || url.starts_with("tls://")) {
                    return Err(ConfigError::Invalid {
                        name: "bus",
                        message: format!("'{url}' is not a NATS URL like nats://127.0.0.1:4222"),
                    });
                }
                let stream = s.bus_stream.unwrap_or_else(|| "watchpost".into());
                if stream.is_empty()
                    || !stream
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                {
                    return Err(ConfigError::Invalid {
                        name: "bus-stream",
                        message: format!(
                            "'{stream}': a stream name is letters, digits, '-' and '_'"
                        ),
                    });
                }
                Some(BusSection { url, stream })
            }
            None => None,
        };
        let mut postgres = s.postgres;
        for file in &s.postgres_url_file {
            postgres.push(
                file.postgres_target()
                    .map_err(invalid("postgres-url-file"))?,
            );
        }
        let config = Config {
            server: ServerSection {
                listen: s.listen.unwrap_or(d.server.listen),
                data_dir: s.data_dir.unwrap_or(d.server.data_dir),
                site_root: s.site_root.unwrap_or(d.server.site_root),
                environment: s.environment.unwrap_or(d.server.environment),
                demo: s.demo,
                trusted_proxies: s.trusted_proxy,
                limits: Limits {
                    max_connections: s.max_connections.unwrap_or(d.server.limits.max_connections),
                    max_unsigned_per_address: s
                        .max_unsigned_connections_per_address
                        .unwrap_or(d.server.limits.max_unsigned_per_address),
                    header_read_timeout: s
                        .header_read_timeout
                        .unwrap_or(d.server.limits.header_read_timeout),
                    body_read_timeout: s
                        .body_read_timeout
                        .unwrap_or(d.server.limits.body_read_timeout),
                },
            },
            sampling: Sampling {
                interval: s.interval.unwrap_or(d.sampling.interval),
                api_interval: s.api_interval.unwrap_or(d.sampling.api_interval),
                offline_after: s.offline_after.unwrap_or(d.sampling.offline_after),
            },
            stream: StreamSection {
                bus,
                replay_buffer: s.replay_buffer.unwrap_or(d.stream.replay_buffer),
                client_queue: s.client_queue.unwrap_or(d.stream.client_queue),
                keepalive: s.keepalive.unwrap_or(d.stream.keepalive),
                max_streams_per_user: s
                    .max_streams_per_user
                    .unwrap_or(d.stream.max_streams_per_user),
            },
            storage: Storage {
                retention: Retention {
                    second: s.retention_second.unwrap_or(d.storage.retention.second),
                    minute: s.retention_minute.unwrap_or(d.storage.retention.minute),
                    hour: s.retention_hour.unwrap_or(d.storage.retention.hour),
                    logs: s.retention_logs.unwrap_or(d.storage.retention.logs),
                    security: s.retention_security.unwrap_or(d.storage.retention.security),
                    security_max: s
                        .max_security_alerts
                        .unwrap_or(d.storage.retention.security_max),
                },
                quota: s.store_quota,
                engine,
            },
            sources: Sources {
                tail_logs: s.tail_log,
                scrape,
                postgres,
            },
            auth: AuthConfig {
                session_ttl: s.session_ttl.unwrap_or(d.auth.session_ttl),
                secure_cookie: s.secure_cookie,
                lockout: LockoutConfig {
                    after: s.lockout_after.unwrap_or(d.auth.lockout.after),
                    window: s.lockout_window.unwrap_or(d.auth.lockout.window),
                    duration: s.lockout_for.unwrap_or(d.auth.lockout.duration),
                },
            },
            commands: check_all(file.commands).map_err(invalid("commands"))?,
            alerting: Alerting {
                rules: check_rules(file.alerts).map_err(invalid("alerts"))?,
                notify: file
                    .notify
                    .unwrap_or_default()
                    .check()
                    .map_err(invalid("notify"))?,
                channels: check_channels(file.channels).map_err(invalid("channels"))?,
            },
        };
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |name, message: String| Err(ConfigError::Invalid { name, message });
        if !(MIN_INTERVAL..=MAX_INTERVAL).contains(&self.sampling.interval) {
            return invalid(
                "interval",
                format!(
                    "must be between 100ms and 1h, got {:?}",
                    self.sampling.interval
                ),
            );
        }
        if !(MIN_INTERVAL..=MAX_INTERVAL).contains(&self.sampling.api_interval) {
            return invalid(
                "api-interval",
                format!(
                    "must be between 100ms and 1h, got {:?}",
                    self.sampling.api_interval
                ),
            );
        }
        if self.sampling.offline_after < Duration::from_secs(1)
            || self.sampling.offline_after > Duration::from_secs(86_400)
        {
            return invalid(
                "offline-after",
                format!(
                    "must be between 1s and 24h, got {:?}",
                    self.sampling.offline_after
                ),
            );
        }
        if self.stream.keepalive < Duration::from_millis(10)
            || self.stream.keepalive > Duration::from_secs(300)
        {
            return invalid(
                "keepalive",
                format!(
                    "must be between 10ms and 5m, got {:?}",
                    self.stream.keepalive
                ),
            );
        }
        let lockout = &self.auth.lockout;
        if !(1..=1000).contains(&lockout.after) {
            return invalid(
                "lockout-after",
                format!("must be between 1 and 1000, got {}", lockout.after),
            );
        }
        for (name, value) in [
            ("lockout-window", lockout.window),
            ("lockout-for", lockout.duration),
        ] {
            if value < Duration::from_secs(1) || value > Duration::from_secs(7 * 24 * 3600) {
                return invalid(name, format!("must be between 1s and 7d, got {value:?}"));
            }
        }
        let l = &self.server.limits;
        if l.max_connections == 0 || l.max_unsigned_per_address == 0 {
            return invalid(
                "max-connections",
                "connection caps must be at least 1".to_owned(),
            );
        }
        for (name, t) in [
            ("header-read-timeout", l.header_read_timeout),
            ("body-read-timeout", l.body_read_timeout),
        ] {
            if !(Duration::from_millis(100)..=Duration::from_secs(3600)).contains(&t) {
                return invalid(name, format!("must be between 100ms and 1h, got {t:?}"));
            }
        }
        if !(1..=1000).contains(&self.stream.max_streams_per_user) {
            return invalid(
                "max-streams-per-user",
                format!(
                    "must be between 1 and 1000, got {}",
                    self.stream.max_streams_per_user
                ),
            );
        }
        for (name, value) in [
            ("replay-buffer", self.stream.replay_buffer),
            ("client-queue", self.stream.client_queue),
        ] {
            if value == 0 || value > MAX_BUFFER {
                return invalid(
                    name,
                    format!("must be between 1 and {MAX_BUFFER}, got {value}"),
                );
            }
        }
        let ttl = self.auth.session_ttl;
        if ttl < Duration::from_secs(60) || ttl > Duration::from_secs(366 * 24 * 3600) {
            return invalid(
                "session-ttl",
                format!("must be between 1m and 1y, got {ttl:?}"),
            );
        }
        let r = &self.storage.retention;
        if r.second < MIN_RETENTION || r.second > MAX_RETENTION {
            return invalid(
                "retention-second",
                format!("must be between 10m and 10y, got {:?}", r.second),
            );
        }
        // Minutes are rolled into an hour only once the hour is over: they must outlive it.
        if r.minute < r.second.max(MIN_MINUTE_RETENTION) || r.minute > MAX_RETENTION {
            return invalid(
                "retention-minute",
                format!(
                    "must be at least 2h and at least retention-second ({:?}), and at most 10y, got {:?}",
                    r.second, r.minute
                ),
            );
        }
        if r.hour < r.minute || r.hour > MAX_RETENTION {
            return invalid(
                "retention-hour",
                format!(
                    "must be at least retention-minute ({:?}) and at most 10y, got {:?}",
                    r.minute, r.hour
                ),
            );
        }
        if r.logs < Duration::from_secs(60) || r.logs > MAX_RETENTION {
            return invalid(
                "retention-logs",
                format!("must be between 1m and 10y, got {:?}", r.logs),
            );
        }
        if r.security < Duration::from_secs(60) || r.security > MAX_RETENTION {
            return invalid(
                "retention-security",
                format!("must be between 1m and 10y, got {:?}", r.security),
            );
        }
        if r.security_max < 100 {
            return invalid(
                "max-security-alerts",
                format!("must be at least 100, got {}", r.security_max),
            );
        }
        if self.server.environment.trim().is_empty() {
            return invalid("environment", "must not be empty".into());
        }
        Ok(())
    }
}

fn read_file(path: &Path) -> Result<File, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let parse = |message: String| ConfigError::Parse {
        path: path.to_owned(),
        message,
    };
    // One line that names the offending line, rather than toml's multi-line report.
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        let place = e.span().map(|span| {
            let line_no = text[..span.start.min(text.len())].matches('\n').count();
            let line = text.lines().nth(line_no).unwrap_or_default().trim();
            format!("line {} (`{line}`): ", line_no + 1)
        });
        parse(place.unwrap_or_default() + e.message())
    })?;
    let mut file = File::default();
    for (key, value) in table {
        match key.as_str() {
            "commands" => file.commands = table_of(&key, value).map_err(parse)?,
            "alerts" => file.alerts = table_of(&key, value).map_err(parse)?,
            "notify" => file.notify = Some(table_of(&key, value).map_err(parse)?),
            "channels" => file.channels = table_of(&key, value).map_err(parse)?,
            _ => file.settings.set(&key, value).map_err(|e| {
                let in_file = |message| ConfigError::InFile {
                    name: key.clone(),
                    message,
                    path: path.to_owned(),
                };
                match e {
                    SetError::Unknown => parse(format!("unknown setting `{key}`")),
                    SetError::Kind(kind) => in_file(format!("must be {kind}")),
                    SetError::Value(message) => in_file(message),
                }
            })?,
        }
    }
    Ok(file)
}

/// A table (or list of tables) of the file as its type.
fn table_of<T: DeserializeOwned>(key: &str, value: toml::Value) -> Result<T, String> {
    value
        .try_into()
        .map_err(|e: toml::de::Error| format!("[{key}]: {}", e.message()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use std::io::Write;

    fn cli(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("watchpost").chain(args.iter().copied())).unwrap()
    }

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    #[test]
    fn defaults_apply_when_nothing_is_given() {
        let c = Config::resolve(&cli(&[])).unwrap();
        assert_eq!(c.server.listen.to_string(), "127.0.0.1:3000");
        assert_eq!(c.sampling.interval, Duration::from_secs(1));
    }

    #[test]
    fn flags_win_over_the_file_and_the_file_over_defaults() {
        let f = file("interval = \"2s\"\nlisten = \"127.0.0.1:4000\"\nreplay_buffer = 10\n");
        let path = f.path().to_str().unwrap();
        let c = Config::resolve(&cli(&["--config", path, "--interval", "500ms"])).unwrap();
        assert_eq!(c.sampling.interval, Duration::from_millis(500));
        assert_eq!(c.server.listen.port(), 4000);
        assert_eq!(c.stream.replay_buffer, 10);
    }

    #[test]
    fn unknown_keys_and_bad_values_in_the_file_are_errors() {
        let f = file("intervall = \"2s\"\n");
        let e = Config::resolve(&cli(&["--config", f.path().to_str().unwrap()])).unwrap_err();
        assert!(e.to_string().contains("intervall"), "{e}");
        let f = file("interval = \"soon\"\n");
        let e = Config::resolve(&cli(&["--config", f.path().to_str().unwrap()])).unwrap_err();
        assert!(e.to_string().starts_with("interval:"), "{e}");
    }

    #[test]
    fn out_of_range_values_are_rejected() {
        assert!(Config::resolve(&cli(&["--interval", "1ms"])).is_err());
        assert!(Config::resolve(&cli(&["--client-queue", "0"])).is_err());
        assert!(Config::resolve(&cli(&["--replay-buffer", "100000000"])).is_err());
    }

    #[test]
    fn retention_and_quota_come_from_flags_or_the_file() {
        let f = file("retention_minute = \"60d\"\nstore_quota = \"2GiB\"\n");
        let path = f.path().to_str().unwrap();
        let c = Config::resolve(&cli(&["--config", path, "--retention-second", "2h"])).unwrap();
        assert_eq!(c.storage.retention.second, Duration::from_secs(7200));
        assert_eq!(c.storage.retention.minute, Duration::from_secs(60 * 86400));
        assert_eq!(c.storage.retention.hour, Retention::default().hour);
        assert_eq!(c.storage.quota, Some(2 << 30));
        let e = Config::resolve(&cli(&["--retention-minute", "1h"])).unwrap_err();
        assert!(e.to_string().starts_with("retention-minute:"), "{e}");
        let f = file("store_quota = \"lots\"\n");
        let e = Config::resolve(&cli(&["--config", f.path().to_str().unwrap()])).unwrap_err();
        assert!(e.to_string().starts_with("store_quota:"), "{e}");
    }

    #[test]
    fn tailed_log_files_come_from_flags_or_the_file() {
        let c = Config::resolve(&cli(&[
            "--tail-log",
            "api=/var/log/api.log",
            "--tail-log",
            "db=/x",
        ]))
        .unwrap();
        assert_eq!(c.sources.tail_logs.len(), 2);
        assert_eq!(c.sources.tail_logs[1].service, "db");
        let f = file("tail_log = [\"nginx=/var/log/nginx/error.log\"]\n");
        let c = Config::resolve(&cli(&["--config", f.path().to_str().unwrap()])).unwrap();
        assert_eq!(c.sources.tail_logs[0].service, "nginx");
        let f = file("tail_log = [\"nginx\"]\n");
        let e = Config::resolve(&cli(&["--config", f.path().to_str().unwrap()])).unwrap_err();
        assert!(e.to_string().starts_with("tail_log:"), "{e}");
        assert!(Cli::try_parse_from(["watchpost", "--tail-log", "oops"]).is_err());
    }

    #[test]
    fn a_missing_config_file_is_named_in_the_error() {
        let e = Config::resolve(&cli(&["--config", "/nonexistent/watchpost.toml"])).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/watchpost.toml"), "{e}");
    }
}
