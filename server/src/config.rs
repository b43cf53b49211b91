//! Configuration: command-line flags, then `WATCHPOST_*` environment variables, then an optional TOML file,
//! then defaults — in that order of precedence.
//!
//! clap already resolves flags over environment variables; every field is optional there so that a value the
//! user did not give can still come from the file.

use crate::alerts::{AlertRuleFile, check_rules};
use crate::auth::AuthConfig;
use crate::auth::security::LockoutConfig;
use crate::commands::spec::{CommandFile, CommandSpec, check_all};
use crate::notify::channel::{Channel, ChannelFile, check_channels};
use crate::notify::{NotifyConfig, NotifyFile};
use crate::sources::postgres::PostgresTarget;
use crate::sources::scrape::{ScrapeTarget, ScrapeTokenFile, attach_tokens};
use crate::sources::tail::TailedFile;
use clap::{Parser, Subcommand};
use serde::Deserialize;
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

#[derive(Debug, Parser)]
#[command(
    name = "watchpost",
    version,
    about = "Real-time monitoring and control dashboard"
)]
pub struct Cli {
    /// TOML file with any of the settings below (flags and environment variables take precedence).
    #[arg(long, env = "WATCHPOST_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Address and port to listen on [default: 127.0.0.1:3000].
    #[arg(long, env = "WATCHPOST_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// How often the host is sampled, e.g. `1s`, `500ms` [default: 1s].
    #[arg(long, env = "WATCHPOST_INTERVAL", value_parser = parse_duration)]
    pub interval: Option<Duration>,
    /// Where Watchpost keeps its data [default: ./data].
    #[arg(long, env = "WATCHPOST_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// How long one point of the API-performance figures covers, e.g. `10s`, `1m` [default: 10s].
    #[arg(long, env = "WATCHPOST_API_INTERVAL", value_parser = parse_duration)]
    pub api_interval: Option<Duration>,
    /// Events kept for clients that resume with Last-Event-ID [default: 4096].
    #[arg(long, env = "WATCHPOST_REPLAY_BUFFER")]
    pub replay_buffer: Option<usize>,
    /// Events a stream may fall behind before it is resynchronised with a snapshot [default: 256].
    #[arg(long, env = "WATCHPOST_CLIENT_QUEUE")]
    pub client_queue: Option<usize>,
    /// Time between keepalives on an idle stream [default: 15s].
    #[arg(long, env = "WATCHPOST_KEEPALIVE", value_parser = parse_duration)]
    pub keepalive: Option<Duration>,
    /// Name of the environment this server watches [default: default].
    #[arg(long, env = "WATCHPOST_ENVIRONMENT")]
    pub environment: Option<String>,
    /// How long per-second history is kept, e.g. `24h` [default: 24h].
    #[arg(long, env = "WATCHPOST_RETENTION_SECOND", value_parser = parse_duration)]
    pub retention_second: Option<Duration>,
    /// How long per-minute history is kept [default: 30d].
    #[arg(long, env = "WATCHPOST_RETENTION_MINUTE", value_parser = parse_duration)]
    pub retention_minute: Option<Duration>,
    /// How long per-hour history is kept [default: 1y].
    #[arg(long, env = "WATCHPOST_RETENTION_HOUR", value_parser = parse_duration)]
    pub retention_hour: Option<Duration>,
    /// How long error-log entries are kept [default: 30d].
    #[arg(long, env = "WATCHPOST_RETENTION_LOGS", value_parser = parse_duration)]
    pub retention_logs: Option<Duration>,
    /// A log file to follow into the error log, as SERVICE=PATH; repeat for more files (comma-separated in
    /// the environment variable).
    #[arg(long = "tail-log", env = "WATCHPOST_TAIL_LOG", value_delimiter = ',')]
    pub tail_log: Vec<TailedFile>,
    /// A service whose Prometheus exposition is scraped for the API panel, as SERVICE=URL (http://…/metrics);
    /// repeat for more (comma-separated in the environment variable).
    #[arg(long = "scrape", env = "WATCHPOST_SCRAPE", value_delimiter = ',')]
    pub scrape: Vec<ScrapeTarget>,
    /// The bearer token of a scrape target, as SERVICE=PATH of a file holding it (a token of another
    /// Watchpost, whose `/metrics` needs one); repeat for more targets.
    #[arg(
        long = "scrape-token-file",
        env = "WATCHPOST_SCRAPE_TOKEN_FILE",
        value_delimiter = ','
    )]
    pub scrape_token_file: Vec<ScrapeTokenFile>,
    /// A PostgreSQL database for the database panel, as NAME=postgres://user@host:port/database; repeat for
    /// more (comma-separated in the environment variable).
    #[arg(long = "postgres", env = "WATCHPOST_POSTGRES", value_delimiter = ',')]
    pub postgres: Vec<PostgresTarget>,
    /// The most disk space the database may take, e.g. `2GiB`; past it history stops being saved, as on a
    /// full disk [default: no limit].
    #[arg(long, env = "WATCHPOST_STORE_QUOTA", value_parser = parse_size)]
    pub store_quota: Option<u64>,
    /// Run a sample workload against a small demo API so every panel moves on a fresh install (all its
    /// figures are measured by the real sources).
    #[arg(long, env = "WATCHPOST_DEMO")]
    pub demo: bool,
    /// How long a sign-in lasts, e.g. `12h`, `7d` [default: 7d].
    #[arg(long, env = "WATCHPOST_SESSION_TTL", value_parser = parse_duration)]
    pub session_ttl: Option<Duration>,
    /// Mark the session cookie Secure: set it when browsers reach Watchpost over HTTPS (a TLS proxy).
    #[arg(long, env = "WATCHPOST_SECURE_COOKIE")]
    pub secure_cookie: bool,
    /// Failed sign-ins (per address or per user name) within --lockout-window that lock sign-ins out
    /// [default: 5].
    #[arg(long, env = "WATCHPOST_LOCKOUT_AFTER")]
    pub lockout_after: Option<u32>,
    /// The window failed sign-ins are counted in, e.g. `10m` [default: 10m].
    #[arg(long, env = "WATCHPOST_LOCKOUT_WINDOW", value_parser = parse_duration)]
    pub lockout_window: Option<Duration>,
    /// How long a lockout lasts, e.g. `15m` [default: 15m].
    #[arg(long, env = "WATCHPOST_LOCKOUT_FOR", value_parser = parse_duration)]
    pub lockout_for: Option<Duration>,
    /// Live streams (tabs) one user may hold open; a new one past it closes the oldest [default: 8].
    #[arg(long, env = "WATCHPOST_MAX_STREAMS_PER_USER")]
    pub max_streams_per_user: Option<usize>,
    /// Directory with the built site (WASM, JS, CSS, assets) [default: target/site].
    #[arg(long, env = "LEPTOS_SITE_ROOT")]
    pub site_root: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the dashboard (the default).
    Serve,
    /// Print the effective configuration and exit.
    CheckConfig,
    /// Manage user accounts in the data directory's store.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage API tokens (for log ingest and agents).
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user; the password is asked for (or read from stdin with --password-stdin).
    Add {
        name: String,
        /// viewer, operator or admin.
        #[arg(long)]
        role: shared::Role,
        /// Read the password from the first line of stdin instead of asking.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users.
    List,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token and print it (once: only its hash is kept).
    Add {
        name: String,
        /// What the token may do: viewer, operator (ingest) or admin.
        #[arg(long)]
        role: shared::Role,
    },
}

/// The settings file: the same names as the flags, with `-` as `_`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    interval: Option<String>,
    api_interval: Option<String>,
    data_dir: Option<PathBuf>,
    replay_buffer: Option<usize>,
    client_queue: Option<usize>,
    keepalive: Option<String>,
    environment: Option<String>,
    retention_second: Option<String>,
    retention_minute: Option<String>,
    retention_hour: Option<String>,
    retention_logs: Option<String>,
    tail_log: Option<Vec<String>>,
    scrape: Option<Vec<String>>,
    scrape_token_file: Option<Vec<String>>,
    postgres: Option<Vec<String>>,
    demo: Option<bool>,
    store_quota: Option<String>,
    session_ttl: Option<String>,
    secure_cookie: Option<bool>,
    max_streams_per_user: Option<usize>,
    lockout_after: Option<u32>,
    lockout_window: Option<String>,
    lockout_for: Option<String>,
    site_root: Option<PathBuf>,
    /// `[[commands]]` tables: only the file can declare commands.
    commands: Option<Vec<CommandFile>>,
    /// `[[alerts]]` tables: the alert rules.
    alerts: Option<Vec<AlertRuleFile>>,
    /// `[notify]`: grouping, retries and links of notifications.
    notify: Option<NotifyFile>,
    /// `[[channels]]` tables: where notifications go.
    channels: Option<Vec<ChannelFile>>,
}

/// The effective configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub interval: Duration,
    pub api_interval: Duration,
    pub data_dir: PathBuf,
    pub replay_buffer: usize,
    pub client_queue: usize,
    pub keepalive: Duration,
    pub environment: String,
    pub retention: Retention,
    pub store_quota: Option<u64>,
    /// Log files followed into the error log.
    pub tail_logs: Vec<TailedFile>,
    /// Services scraped for the API panel.
    pub scrape: Vec<ScrapeTarget>,
    /// PostgreSQL databases watched by the database panel.
    pub postgres: Vec<PostgresTarget>,
    /// Whether the sample workload runs.
    pub demo: bool,
    pub auth: AuthConfig,
    /// Live streams one user may hold open.
    pub max_streams_per_user: usize,
    /// The commands the Controls panel offers, checked.
    pub commands: Vec<CommandSpec>,
    /// The alert rules, checked.
    pub alert_rules: Vec<shared::AlertRule>,
    /// Grouping, retries and links of notifications.
    pub notify: NotifyConfig,
    /// The notification channels, checked (their secret files read).
    pub channels: Vec<Channel>,
    pub site_root: PathBuf,
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
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 3000)),
            interval: Duration::from_secs(1),
            api_interval: Duration::from_secs(10),
            data_dir: PathBuf::from("data"),
            replay_buffer: 4096,
            client_queue: 256,
            keepalive: Duration::from_secs(15),
            environment: "default".into(),
            retention: Retention::default(),
            store_quota: None,
            tail_logs: Vec::new(),
            scrape: Vec::new(),
            postgres: Vec::new(),
            demo: false,
            auth: AuthConfig::default(),
            max_streams_per_user: 8,
            commands: Vec::new(),
            alert_rules: Vec::new(),
            notify: NotifyConfig::default(),
            channels: Vec::new(),
            site_root: PathBuf::from("target/site"),
        }
    }
}

impl Config {
    /// Merges flags/environment over the file (if any) over the defaults, and validates the result.
    pub fn resolve(cli: &Cli) -> Result<Config, ConfigError> {
        let file = match &cli.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let file_duration =
            |name: &'static str, value: &Option<String>| -> Result<Option<Duration>, _> {
                value
                    .as_deref()
                    .map(|v| {
                        parse_duration(v).map_err(|message| ConfigError::Invalid { name, message })
                    })
                    .transpose()
            };
        let d = Config::default();
        let config = Config {
            listen: cli.listen.or(file.listen).unwrap_or(d.listen),
            interval: cli
                .interval
                .or(file_duration("interval", &file.interval)?)
                .unwrap_or(d.interval),
            api_interval: cli
                .api_interval
                .or(file_duration("api_interval", &file.api_interval)?)
                .unwrap_or(d.api_interval),
            data_dir: cli.data_dir.clone().or(file.data_dir).unwrap_or(d.data_dir),
            replay_buffer: cli
                .replay_buffer
                .or(file.replay_buffer)
                .unwrap_or(d.replay_buffer),
            client_queue: cli
                .client_queue
                .or(file.client_queue)
                .unwrap_or(d.client_queue),
            keepalive: cli
                .keepalive
                .or(file_duration("keepalive", &file.keepalive)?)
                .unwrap_or(d.keepalive),
            environment: cli
                .environment
                .clone()
                .or(file.environment)
                .unwrap_or(d.environment),
            retention: Retention {
                second: cli
                    .retention_second
                    .or(file_duration("retention_second", &file.retention_second)?)
                    .unwrap_or(d.retention.second),
                minute: cli
                    .retention_minute
                    .or(file_duration("retention_minute", &file.retention_minute)?)
                    .unwrap_or(d.retention.minute),
                hour: cli
                    .retention_hour
                    .or(file_duration("retention_hour", &file.retention_hour)?)
                    .unwrap_or(d.retention.hour),
                logs: cli
                    .retention_logs
                    .or(file_duration("retention_logs", &file.retention_logs)?)
                    .unwrap_or(d.retention.logs),
            },
            store_quota: match cli.store_quota {
                Some(quota) => Some(quota),
                None => file
                    .store_quota
                    .as_deref()
                    .map(|v| {
                        parse_size(v).map_err(|message| ConfigError::Invalid {
                            name: "store_quota",
                            message,
                        })
                    })
                    .transpose()?,
            },
            tail_logs: list("tail_log", &cli.tail_log, file.tail_log)?,
            scrape: {
                let mut targets = list("scrape", &cli.scrape, file.scrape)?;
                let files = list(
                    "scrape-token-file",
                    &cli.scrape_token_file,
                    file.scrape_token_file,
                )?;
                attach_tokens(&mut targets, &files).map_err(|message| ConfigError::Invalid {
                    name: "scrape-token-file",
                    message,
                })?;
                targets
            },
            postgres: list("postgres", &cli.postgres, file.postgres)?,
            demo: cli.demo || file.demo.unwrap_or(false),
            auth: AuthConfig {
                session_ttl: cli
                    .session_ttl
                    .or(file_duration("session_ttl", &file.session_ttl)?)
                    .unwrap_or(d.auth.session_ttl),
                secure_cookie: cli.secure_cookie || file.secure_cookie.unwrap_or(false),
                lockout: LockoutConfig {
                    after: cli
                        .lockout_after
                        .or(file.lockout_after)
                        .unwrap_or(d.auth.lockout.after),
                    window: cli
                        .lockout_window
                        .or(file_duration("lockout_window", &file.lockout_window)?)
                        .unwrap_or(d.auth.lockout.window),
                    duration: cli
                        .lockout_for
                        .or(file_duration("lockout_for", &file.lockout_for)?)
                        .unwrap_or(d.auth.lockout.duration),
                },
            },
            max_streams_per_user: cli
                .max_streams_per_user
                .or(file.max_streams_per_user)
                .unwrap_or(d.max_streams_per_user),
            site_root: cli
                .site_root
                .clone()
                .or(file.site_root)
                .unwrap_or(d.site_root),
            commands: check_all(file.commands.unwrap_or_default()).map_err(|message| {
                ConfigError::Invalid {
                    name: "commands",
                    message,
                }
            })?,
            alert_rules: check_rules(file.alerts.unwrap_or_default()).map_err(|message| {
                ConfigError::Invalid {
                    name: "alerts",
                    message,
                }
            })?,
            notify: file.notify.unwrap_or_default().check().map_err(|message| {
                ConfigError::Invalid {
                    name: "notify",
                    message,
                }
            })?,
            channels: check_channels(file.channels.unwrap_or_default()).map_err(|message| {
                ConfigError::Invalid {
                    name: "channels",
                    message,
                }
            })?,
        };
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |name, message: String| Err(ConfigError::Invalid { name, message });
        if !(MIN_INTERVAL..=MAX_INTERVAL).contains(&self.interval) {
            return invalid(
                "interval",
                format!("must be between 100ms and 1h, got {:?}", self.interval),
            );
        }
        if !(MIN_INTERVAL..=MAX_INTERVAL).contains(&self.api_interval) {
            return invalid(
                "api-interval",
                format!("must be between 100ms and 1h, got {:?}", self.api_interval),
            );
        }
        if self.keepalive < Duration::from_millis(10) || self.keepalive > Duration::from_secs(300) {
            return invalid(
                "keepalive",
                format!("must be between 10ms and 5m, got {:?}", self.keepalive),
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
        if !(1..=1000).contains(&self.max_streams_per_user) {
            return invalid(
                "max-streams-per-user",
                format!(
                    "must be between 1 and 1000, got {}",
                    self.max_streams_per_user
                ),
            );
        }
        for (name, value) in [
            ("replay-buffer", self.replay_buffer),
            ("client-queue", self.client_queue),
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
        let r = &self.retention;
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
        if self.environment.trim().is_empty() {
            return invalid("environment", "must not be empty".into());
        }
        Ok(())
    }
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    // One line that names the offending line, rather than toml's multi-line report.
    toml::from_str(&text).map_err(|e| {
        let place = e.span().map(|span| {
            let line_no = text[..span.start.min(text.len())].matches('\n').count();
            let line = text.lines().nth(line_no).unwrap_or_default().trim();
            format!("line {} (`{line}`): ", line_no + 1)
        });
        ConfigError::Parse {
            path: path.to_owned(),
            message: place.unwrap_or_default() + e.message(),
        }
    })
}

/// A repeatable setting: the flags (or variable) if given, else the file's list, each entry parsed.
fn list<T: std::str::FromStr<Err = String> + Clone>(
    name: &'static str,
    flags: &[T],
    file: Option<Vec<String>>,
) -> Result<Vec<T>, ConfigError> {
    if !flags.is_empty() {
        return Ok(flags.to_vec());
    }
    file.unwrap_or_default()
        .iter()
        .map(|entry| {
            entry
                .parse()
                .map_err(|message| ConfigError::Invalid { name, message })
        })
        .collect()
}

fn parse_size(s: &str) -> Result<u64, String> {
    s.trim()
        .parse::<bytesize::ByteSize>()
        .map(|b| b.as_u64())
        .map_err(|e| format!("'{s}' is not a size like 500MiB or 2GB: {e}"))
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("'{s}' is not a duration like 1s or 500ms: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
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
        assert_eq!(c.listen.to_string(), "127.0.0.1:3000");
        assert_eq!(c.interval, Duration::from_secs(1));
    }

    #[test]
    fn flags_win_over_the_file_and_the_file_over_defaults() {
        let f = file("interval = \"2s\"\nlisten = \"127.0.0.1:4000\"\nreplay_buffer = 10\n");
        let path = f.path().to_str().unwrap();
        let c = Config::resolve(&cli(&["--config", path, "--interval", "500ms"])).unwrap();
        assert_eq!(c.interval, Duration::from_millis(500));
        assert_eq!(c.listen.port(), 4000);
        assert_eq!(c.replay_buffer, 10);
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
        assert_eq!(c.retention.second, Duration::from_secs(7200));
        assert_eq!(c.retention.minute, Duration::from_secs(60 * 86400));
        assert_eq!(c.retention.hour, Retention::default().hour);
        assert_eq!(c.store_quota, Some(2 << 30));
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
        assert_eq!(c.tail_logs.len(), 2);
        assert_eq!(c.tail_logs[1].service, "db");
        let f = file("tail_log = [\"nginx=/var/log/nginx/error.log\"]\n");
        let c = Config::resolve(&cli(&["--config", f.path().to_str().unwrap()])).unwrap();
        assert_eq!(c.tail_logs[0].service, "nginx");
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
