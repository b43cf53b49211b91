//! Every setting, written once: its flag, its environment variable, its help text and its parser, from which
//! both the command line and the configuration file (the same names with `_` for `-`) are read.
//!
//! A setting is `Option` (or an empty list, or `false`) until someone gives it, so that precedence can be
//! decided after both are read: flags and environment variables over the file over the defaults, which live
//! with the sections of `Config`.

use crate::sources::postgres::{PostgresTarget, PostgresUrlFile};
use crate::sources::scrape::{ScrapeCaFile, ScrapeLabel, ScrapeTarget, ScrapeTokenFile};
use crate::sources::tail::TailedFile;
use crate::storage::StoreUrl;
use ipnet::IpNet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// Declares [`Settings`] and how the configuration file fills it, from one list of fields. Each field's
/// `= parser` reads one value as a string (the file's numbers and booleans are read as their text too).
macro_rules! settings {
    ($( $(#[$meta:meta])* $field:ident : $ty:ty = $parse:expr, )*) => {
        #[derive(Debug, Default, Clone, clap::Args)]
        pub struct Settings {
            $( $(#[$meta])* pub $field: $ty, )*
        }

        impl Settings {
            /// Each setting from `self`, or where `self` has none, from `other`.
            pub fn or(self, other: Settings) -> Settings {
                Settings { $( $field: Slot::or(self.$field, other.$field), )* }
            }

            /// Sets `key` from the configuration file's `value`.
            pub fn set(&mut self, key: &str, value: toml::Value) -> Result<(), SetError> {
                match key {
                    $( stringify!($field) => Slot::fill(&mut self.$field, value, $parse), )*
                    _ => Err(SetError::Unknown),
                }
            }
        }
    };
}

settings! {
    /// Address and port to listen on [default: 127.0.0.1:3000].
    #[arg(long, env = "WATCHPOST_LISTEN")]
    listen: Option<SocketAddr> = from_str,
    /// How often the host is sampled, e.g. `1s`, `500ms` [default: 1s].
    #[arg(long, env = "WATCHPOST_INTERVAL", value_parser = parse_duration)]
    interval: Option<Duration> = parse_duration,
    /// Where Watchpost keeps its data [default: ./data].
    #[arg(long, env = "WATCHPOST_DATA_DIR", global = true)]
    data_dir: Option<PathBuf> = from_str,
    /// How long one point of the API-performance figures covers, e.g. `10s`, `1m` [default: 10s].
    #[arg(long, env = "WATCHPOST_API_INTERVAL", value_parser = parse_duration)]
    api_interval: Option<Duration> = parse_duration,
    /// Events kept for clients that resume with Last-Event-ID [default: 4096].
    #[arg(long, env = "WATCHPOST_REPLAY_BUFFER")]
    replay_buffer: Option<usize> = from_str,
    /// Events a stream may fall behind before it is resynchronised with a snapshot [default: 256].
    #[arg(long, env = "WATCHPOST_CLIENT_QUEUE")]
    client_queue: Option<usize> = from_str,
    /// A host whose agent has not been in contact for this long is offline [default: 30s].
    #[arg(long, env = "WATCHPOST_OFFLINE_AFTER", value_parser = parse_duration)]
    offline_after: Option<Duration> = parse_duration,
    /// Time between keepalives on an idle stream [default: 15s].
    #[arg(long, env = "WATCHPOST_KEEPALIVE", value_parser = parse_duration)]
    keepalive: Option<Duration> = parse_duration,
    /// Name of the environment this server watches [default: default].
    #[arg(long, env = "WATCHPOST_ENVIRONMENT")]
    environment: Option<String> = from_str,
    /// How long per-second history is kept, e.g. `24h` [default: 24h].
    #[arg(long, env = "WATCHPOST_RETENTION_SECOND", value_parser = parse_duration)]
    retention_second: Option<Duration> = parse_duration,
    /// How long per-minute history is kept [default: 30d].
    #[arg(long, env = "WATCHPOST_RETENTION_MINUTE", value_parser = parse_duration)]
    retention_minute: Option<Duration> = parse_duration,
    /// How long per-hour history is kept [default: 1y].
    #[arg(long, env = "WATCHPOST_RETENTION_HOUR", value_parser = parse_duration)]
    retention_hour: Option<Duration> = parse_duration,
    /// How long error-log entries are kept [default: 30d].
    #[arg(long, env = "WATCHPOST_RETENTION_LOGS", value_parser = parse_duration)]
    retention_logs: Option<Duration> = parse_duration,
    /// How long security alerts are kept (failed sign-ins, lockouts, invalid tokens), e.g. `90d`
    /// [default: 90d].
    #[arg(long, env = "WATCHPOST_RETENTION_SECURITY", value_parser = parse_duration)]
    retention_security: Option<Duration> = parse_duration,
    /// Security alerts kept at most, the newest (a flood of failed sign-ins from many addresses stays
    /// bounded) [default: 100000].
    #[arg(long, env = "WATCHPOST_MAX_SECURITY_ALERTS")]
    max_security_alerts: Option<u64> = from_str,
    /// A log file to follow into the error log, as SERVICE=PATH; repeat for more files (comma-separated in
    /// the environment variable).
    #[arg(long = "tail-log", env = "WATCHPOST_TAIL_LOG", value_delimiter = ',')]
    tail_log: Vec<TailedFile> = from_str,
    /// A service whose Prometheus or OpenMetrics exposition is scraped for the API panel, as SERVICE=URL
    /// (http:// or https://…/metrics); repeat for more (comma-separated in the environment variable).
    #[arg(long = "scrape", env = "WATCHPOST_SCRAPE", value_delimiter = ',')]
    scrape: Vec<ScrapeTarget> = from_str,
    /// The bearer token of a scrape target, as SERVICE=PATH of a file holding it (a token of another
    /// Watchpost, whose `/metrics` needs one); repeat for more targets.
    #[arg(
        long = "scrape-token-file",
        env = "WATCHPOST_SCRAPE_TOKEN_FILE",
        value_delimiter = ','
    )]
    scrape_token_file: Vec<ScrapeTokenFile> = from_str,
    /// The CA certificates (PEM) an https scrape target's certificate is verified by, beside the public web
    /// roots, as SERVICE=PATH (a target with a certificate of a private CA); repeat for more targets.
    #[arg(
        long = "scrape-ca-file",
        env = "WATCHPOST_SCRAPE_CA_FILE",
        value_delimiter = ','
    )]
    scrape_ca_file: Vec<ScrapeCaFile> = from_str,
    /// The label that names a scrape target's route, method or status when it uses a name of its own, as
    /// SERVICE=ROLE:LABEL, e.g. `shop=route:operation` (the common names, Prometheus's and OpenTelemetry's,
    /// are known); repeat for more.
    #[arg(long = "scrape-label", env = "WATCHPOST_SCRAPE_LABEL", value_delimiter = ',')]
    scrape_label: Vec<ScrapeLabel> = from_str,
    /// A PostgreSQL database for the database panel, as NAME=postgres://user@host:port/database; repeat for
    /// more (comma-separated in the environment variable).
    #[arg(long = "postgres", env = "WATCHPOST_POSTGRES", value_delimiter = ',')]
    postgres: Vec<PostgresTarget> = from_str,
    /// A PostgreSQL database whose URL (with its password) is in a file, as NAME=PATH: a password given with
    /// `--postgres` is visible to every local user in `ps`; repeat for more.
    #[arg(
        long = "postgres-url-file",
        env = "WATCHPOST_POSTGRES_URL_FILE",
        value_delimiter = ','
    )]
    postgres_url_file: Vec<PostgresUrlFile> = from_str,
    /// Carry events over NATS JetStream, nats://host:port, so several instances behind a load balancer
    /// serve the same events and a browser may resume on any of them [default: in-process].
    #[arg(long, env = "WATCHPOST_BUS")]
    bus: Option<String> = from_str,
    /// The JetStream stream's name on the bus [default: watchpost].
    #[arg(long, env = "WATCHPOST_BUS_STREAM")]
    bus_stream: Option<String> = from_str,
    /// Keep the state in a PostgreSQL database, postgres://user@host:port/database, which several
    /// instances can share (scale-out) [default: the embedded SQLite file in the data directory].
    #[arg(long, env = "WATCHPOST_STORE")]
    store: Option<StoreUrl> = from_str,
    /// As `--store`, with the URL (and its password) in a file: `--store` is visible to every local user in
    /// `ps`.
    #[arg(long, env = "WATCHPOST_STORE_URL_FILE")]
    store_url_file: Option<PathBuf> = from_str,
    /// The most disk space the database may take, e.g. `2GiB`; past it history stops being saved, as on a
    /// full disk [default: no limit].
    #[arg(long, env = "WATCHPOST_STORE_QUOTA", value_parser = parse_size)]
    store_quota: Option<u64> = parse_size,
    /// Run a sample workload against a small demo API so every panel moves on a fresh install (all its
    /// figures are measured by the real sources).
    #[arg(long, env = "WATCHPOST_DEMO")]
    demo: bool = from_str,
    /// How long a sign-in lasts, e.g. `12h`, `7d` [default: 7d].
    #[arg(long, env = "WATCHPOST_SESSION_TTL", value_parser = parse_duration)]
    session_ttl: Option<Duration> = parse_duration,
    /// Mark the session cookie Secure: set it when browsers reach Watchpost over HTTPS (a TLS proxy).
    #[arg(long, env = "WATCHPOST_SECURE_COOKIE")]
    secure_cookie: bool = from_str,
    /// Connections open at once; past it a new one gets a 503 and is closed [default: 25000].
    #[arg(long, env = "WATCHPOST_MAX_CONNECTIONS")]
    max_connections: Option<usize> = from_str,
    /// Connections one address may hold that have not carried a signed-in request; past it a new one must
    /// send a signed-in request within 2 s, else it gets a 429 and is closed (a trusted proxy's are not
    /// counted) [default: 128].
    #[arg(long, env = "WATCHPOST_MAX_UNSIGNED_CONNECTIONS_PER_ADDRESS")]
    max_unsigned_connections_per_address: Option<usize> = from_str,
    /// How long a client has to send a request's head, e.g. `30s` [default: 30s].
    #[arg(long, env = "WATCHPOST_HEADER_READ_TIMEOUT", value_parser = parse_duration)]
    header_read_timeout: Option<Duration> = parse_duration,
    /// How long a client has to send a request's body after its head, in all, e.g. `30s` [default: 30s].
    #[arg(long, env = "WATCHPOST_BODY_READ_TIMEOUT", value_parser = parse_duration)]
    body_read_timeout: Option<Duration> = parse_duration,
    /// A proxy whose `Forwarded` / `X-Forwarded-For` header gives the client's address (for the audit trail,
    /// alerts and the sign-in lockout), as a CIDR block such as 10.0.0.0/8 or 192.0.2.7/32; repeat for more.
    /// The header from any other peer is ignored [default: none].
    #[arg(long = "trusted-proxy", env = "WATCHPOST_TRUSTED_PROXY", value_delimiter = ',')]
    trusted_proxy: Vec<IpNet> = from_str,
    /// Sign-in attempts within --lockout-window that lock sign-ins out: for a name from one address, for
    /// an address, and for a name from addresses its user has never signed in from [default: 5].
    #[arg(long, env = "WATCHPOST_LOCKOUT_AFTER")]
    lockout_after: Option<u32> = from_str,
    /// The window failed sign-ins are counted in, e.g. `10m` [default: 10m].
    #[arg(long, env = "WATCHPOST_LOCKOUT_WINDOW", value_parser = parse_duration)]
    lockout_window: Option<Duration> = parse_duration,
    /// How long a lockout lasts, e.g. `15m` [default: 15m].
    #[arg(long, env = "WATCHPOST_LOCKOUT_FOR", value_parser = parse_duration)]
    lockout_for: Option<Duration> = parse_duration,
    /// Live streams (tabs) one user may hold open; a new one past it closes the oldest [default: 8].
    #[arg(long, env = "WATCHPOST_MAX_STREAMS_PER_USER")]
    max_streams_per_user: Option<usize> = from_str,
    /// Directory with the built site (WASM, JS, CSS, assets) [default: target/site].
    #[arg(long, env = "LEPTOS_SITE_ROOT")]
    site_root: Option<PathBuf> = from_str,
}

/// Why a file's value could not be taken.
#[derive(Debug)]
pub enum SetError {
    /// No setting has that name.
    Unknown,
    /// The value is not of the setting's kind (a list for a single value, say).
    Kind(&'static str),
    /// The value does not parse.
    Value(String),
}

/// How a kind of setting is filled from the file and layered over another.
trait Slot {
    type Item;
    fn fill(
        &mut self,
        value: toml::Value,
        parse: fn(&str) -> Result<Self::Item, String>,
    ) -> Result<(), SetError>;
    fn or(self, other: Self) -> Self;
}

impl<T> Slot for Option<T> {
    type Item = T;
    fn fill(
        &mut self,
        value: toml::Value,
        parse: fn(&str) -> Result<T, String>,
    ) -> Result<(), SetError> {
        *self = Some(parse(&scalar(value)?).map_err(SetError::Value)?);
        Ok(())
    }

    fn or(self, other: Self) -> Self {
        self.or(other)
    }
}

/// A repeatable setting: the flags' list when any was given, else the file's whole list.
impl<T> Slot for Vec<T> {
    type Item = T;
    fn fill(
        &mut self,
        value: toml::Value,
        parse: fn(&str) -> Result<T, String>,
    ) -> Result<(), SetError> {
        let toml::Value::Array(items) = value else {
            return Err(SetError::Kind("a list"));
        };
        *self = items
            .into_iter()
            .map(|item| parse(&scalar(item)?).map_err(SetError::Value))
            .collect::<Result<_, _>>()?;
        Ok(())
    }

    fn or(self, other: Self) -> Self {
        if self.is_empty() { other } else { self }
    }
}

/// A switch: on when either layer turns it on.
impl Slot for bool {
    type Item = bool;
    fn fill(
        &mut self,
        value: toml::Value,
        _: fn(&str) -> Result<bool, String>,
    ) -> Result<(), SetError> {
        let toml::Value::Boolean(on) = value else {
            return Err(SetError::Kind("true or false"));
        };
        *self = on;
        Ok(())
    }

    fn or(self, other: Self) -> Self {
        self || other
    }
}

/// A single value's text: a string as it is, a number as written; anything else is the wrong kind.
fn scalar(value: toml::Value) -> Result<String, SetError> {
    match value {
        toml::Value::String(s) => Ok(s),
        toml::Value::Integer(i) => Ok(i.to_string()),
        toml::Value::Float(f) => Ok(f.to_string()),
        _ => Err(SetError::Kind("a single value")),
    }
}

fn from_str<T: FromStr<Err: std::fmt::Display>>(s: &str) -> Result<T, String> {
    s.trim().parse().map_err(|e: T::Err| e.to_string())
}

pub fn parse_size(s: &str) -> Result<u64, String> {
    s.trim()
        .parse::<bytesize::ByteSize>()
        .map(|b| b.as_u64())
        .map_err(|e| format!("'{s}' is not a size like 500MiB or 2GB: {e}"))
}

pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("'{s}' is not a duration like 1s or 500ms: {e}"))
}
