//! The agent's settings: flags, then `WATCHPOST_AGENT_*` environment variables, then an optional TOML file
//! (`--config`, the same names with `_` for `-`), then the defaults — the hub's precedence.

use bytesize::ByteSize;
use clap::Parser;
use collect::tail::TailedFile;
use runner::spec::{CommandFile, CommandSpec, check_all};
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

/// The spool's size unless told otherwise.
const DEFAULT_SPOOL_MAX: u64 = 64 << 20;

#[derive(Debug, Default, Parser)]
#[command(
    name = "watchpost-agent",
    version,
    about = "Samples this host and follows its log files for a Watchpost hub"
)]
struct Flags {
    /// TOML file with any of the settings below (flags and environment variables take precedence).
    #[arg(long, env = "WATCHPOST_AGENT_CONFIG")]
    config: Option<PathBuf>,
    /// The hub's address, e.g. https://watchpost.example.com.
    #[arg(long, env = "WATCHPOST_AGENT_HUB")]
    hub: Option<String>,
    /// File holding the agent token the hub gave when the host was added (`wpa_…`).
    #[arg(long, env = "WATCHPOST_AGENT_TOKEN_FILE")]
    token_file: Option<PathBuf>,
    /// The host name readings are recorded under [default: this machine's host name].
    #[arg(long, env = "WATCHPOST_AGENT_NAME")]
    name: Option<String>,
    /// The environment the host was added to (prod, staging, …) [default: default].
    #[arg(long, env = "WATCHPOST_AGENT_ENVIRONMENT")]
    environment: Option<String>,
    /// How often the host is sampled, e.g. `1s`, `500ms` [default: 1s].
    #[arg(long, env = "WATCHPOST_AGENT_INTERVAL", value_parser = parse_duration)]
    interval: Option<Duration>,
    /// Follow a log file into the hub's error log as SERVICE=PATH; repeatable.
    #[arg(
        long = "tail-log",
        env = "WATCHPOST_AGENT_TAIL_LOG",
        value_delimiter = ','
    )]
    tail_log: Vec<TailedFile>,
    /// Where readings wait while the hub is away [default: $STATE_DIRECTORY, else /var/lib/watchpost-agent].
    #[arg(long, env = "WATCHPOST_AGENT_SPOOL_DIR")]
    spool_dir: Option<PathBuf>,
    /// The most the spool keeps, e.g. `64MiB`; past it the oldest records go first [default: 64MiB].
    #[arg(long, env = "WATCHPOST_AGENT_SPOOL_MAX")]
    spool_max: Option<ByteSize>,
    /// PEM file of the certificate authority the hub's certificate is checked against, instead of the
    /// usual public ones.
    #[arg(long, env = "WATCHPOST_AGENT_CA_FILE")]
    ca_file: Option<PathBuf>,
    /// TOML file of `[[commands]]` this host lets operators run from the dashboard (the format the hub's
    /// configuration takes); none: nothing may run here.
    #[arg(long, env = "WATCHPOST_AGENT_COMMANDS")]
    commands: Option<PathBuf>,
}

/// The configuration file: the same settings.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    hub: Option<String>,
    token_file: Option<PathBuf>,
    name: Option<String>,
    environment: Option<String>,
    interval: Option<String>,
    #[serde(default)]
    tail_log: Vec<String>,
    spool_dir: Option<PathBuf>,
    spool_max: Option<String>,
    ca_file: Option<PathBuf>,
    commands: Option<PathBuf>,
}

/// The file of `--commands`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CommandsFile {
    #[serde(default)]
    commands: Vec<CommandFile>,
}

/// The settings the agent runs with.
#[derive(Debug, Clone)]
pub struct Config {
    pub hub: reqwest::Url,
    pub token: String,
    pub name: String,
    pub environment: String,
    pub interval: Duration,
    pub tail_logs: Vec<TailedFile>,
    pub spool_dir: PathBuf,
    pub spool_max: u64,
    pub ca_file: Option<PathBuf>,
    /// The commands this host declares, checked.
    pub commands: Vec<CommandSpec>,
}

/// Why the agent does not start: a message for stderr, or help/version already shown.
#[derive(Debug)]
pub enum Exit {
    Message(String),
    Shown,
}

impl Config {
    pub fn from_args<I, T>(args: I) -> Result<Config, Exit>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let flags = match Flags::try_parse_from(args) {
            Ok(flags) => flags,
            Err(e) => {
                use clap::error::ErrorKind;
                if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                    let _ = e.print();
                    return Err(Exit::Shown);
                }
                // One line: clap's first, without the usage and the hint that follow it.
                let text = e.to_string();
                let line = text.lines().next().unwrap_or("bad arguments");
                return Err(Exit::Message(line.trim_start_matches("error: ").to_owned()));
            }
        };
        Config::resolve(flags).map_err(Exit::Message)
    }

    fn resolve(flags: Flags) -> Result<Config, String> {
        let file = match &flags.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                toml::from_str::<FileSettings>(&text)
                    .map_err(|e| format!("{}: {}", path.display(), e.message()))?
            }
            None => FileSettings::default(),
        };
        let hub = flags
            .hub
            .or(file.hub)
            .ok_or("--hub is required: the hub's address, e.g. https://watchpost.example.com")?;
        let hub =
            reqwest::Url::parse(&hub).map_err(|e| format!("--hub '{hub}' is not a URL: {e}"))?;
        if !matches!(hub.scheme(), "http" | "https") {
            return Err(format!(
                "--hub '{hub}' must be an http:// or https:// address"
            ));
        }
        let token_file = flags
            .token_file
            .or(file.token_file)
            .ok_or("--token-file is required: the file holding the agent token the hub gave")?;
        let token = std::fs::read_to_string(&token_file)
            .map_err(|e| format!("cannot read the token file {}: {e}", token_file.display()))?
            .trim()
            .to_owned();
        if !token.starts_with("wpa_") {
            return Err(format!(
                "{} does not hold an agent token (they begin with wpa_; add the host on the hub's Users & tokens page)",
                token_file.display()
            ));
        }
        let name = match flags.name.or(file.name) {
            Some(name) => name,
            None => sysinfo::System::host_name().map_err(|e| {
                format!("this machine has no host name ({e}): give one with --name")
            })?,
        };
        let environment = flags
            .environment
            .or(file.environment)
            .unwrap_or_else(|| "default".into());
        let interval = match (flags.interval, file.interval) {
            (Some(i), _) => i,
            (None, Some(text)) => parse_duration(&text).map_err(|e| format!("interval: {e}"))?,
            (None, None) => Duration::from_secs(1),
        };
        if interval < Duration::from_millis(100) || interval > Duration::from_secs(3600) {
            return Err("--interval must be between 100ms and 1h".into());
        }
        let tail_logs = if flags.tail_log.is_empty() {
            file.tail_log
                .iter()
                .map(|t| t.parse().map_err(|e| format!("tail_log: {e}")))
                .collect::<Result<_, String>>()?
        } else {
            flags.tail_log
        };
        let spool_dir = flags
            .spool_dir
            .or(file.spool_dir)
            .or_else(|| std::env::var_os("STATE_DIRECTORY").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("/var/lib/watchpost-agent"));
        let spool_max = match (flags.spool_max, file.spool_max) {
            (Some(size), _) => size.as_u64(),
            (None, Some(text)) => text
                .parse::<ByteSize>()
                .map_err(|e| format!("spool_max: {e}"))?
                .as_u64(),
            (None, None) => DEFAULT_SPOOL_MAX,
        };
        if spool_max < 1 << 20 {
            return Err("--spool-max must be at least 1MiB".into());
        }
        let commands = match flags.commands.or(file.commands) {
            Some(path) => read_commands(&path)?,
            None => Vec::new(),
        };
        Ok(Config {
            commands,
            hub,
            token,
            name,
            environment,
            interval,
            tail_logs,
            spool_dir,
            spool_max,
            ca_file: flags.ca_file.or(file.ca_file),
        })
    }
}

/// The `[[commands]]` of `path`, each checked as the hub checks its own.
fn read_commands(path: &std::path::Path) -> Result<Vec<CommandSpec>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the commands file {}: {e}", path.display()))?;
    let file: CommandsFile =
        toml::from_str(&text).map_err(|e| format!("{}: {}", path.display(), e.message().trim()))?;
    let specs = check_all(file.commands).map_err(|e| format!("{}: {e}", path.display()))?;
    if specs.len() > collect::wire::MAX_DECLARED_COMMANDS {
        return Err(format!(
            "{}: at most {} commands, not {}",
            path.display(),
            collect::wire::MAX_DECLARED_COMMANDS,
            specs.len()
        ));
    }
    Ok(specs)
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("'{s}' is not a duration such as 1s: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token_file(dir: &tempfile::TempDir) -> String {
        let path = dir.path().join("token");
        std::fs::write(&path, "wpa_abc\n").unwrap();
        path.display().to_string()
    }

    #[test]
    fn flags_win_over_the_file_which_wins_over_the_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let token = token_file(&dir);
        let file = dir.path().join("agent.toml");
        std::fs::write(
            &file,
            format!(
                "hub = \"http://file:3000\"\ntoken_file = \"{token}\"\nname = \"from-file\"\ninterval = \"5s\"\nspool_max = \"2MiB\"\n"
            ),
        )
        .unwrap();
        let c = Config::from_args([
            "watchpost-agent",
            "--config",
            file.to_str().unwrap(),
            "--name",
            "web-1",
        ])
        .unwrap();
        assert_eq!(c.hub.as_str(), "http://file:3000/");
        assert_eq!((c.name.as_str(), c.token.as_str()), ("web-1", "wpa_abc"));
        assert_eq!(c.interval, Duration::from_secs(5));
        assert_eq!(c.spool_max, 2 << 20);
        assert_eq!(c.environment, "default");
    }

    #[test]
    fn commands_are_read_and_checked_as_the_hub_checks_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let token = token_file(&dir);
        let file = dir.path().join("commands.toml");
        let args = |file: &std::path::Path| {
            vec![
                "watchpost-agent".to_owned(),
                "--hub".into(),
                "http://x".into(),
                "--token-file".into(),
                token.clone(),
                "--commands".into(),
                file.display().to_string(),
            ]
        };
        std::fs::write(
            &file,
            "[[commands]]\nname = \"restart\"\nprogram = \"systemctl\"\nargs = [\"restart\", \"{target}\"]\ntargets = [\"nginx\"]\n",
        )
        .unwrap();
        let c = Config::from_args(args(&file)).unwrap();
        assert_eq!(c.commands.len(), 1);
        assert_eq!(c.commands[0].info.title, "Restart");
        std::fs::write(
            &file,
            "[[commands]]\nname = \"restart\"\nprogram = \"systemctl\"\ntargets = [\"nginx\"]\nrole = \"viewer\"\n",
        )
        .unwrap();
        match Config::from_args(args(&file)) {
            Err(Exit::Message(m)) => {
                assert!(m.contains("role must be operator or admin"), "{m}");
                assert!(!m.contains('\n'), "{m}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_settings_are_one_line_each() {
        let dir = tempfile::tempdir().unwrap();
        let token = token_file(&dir);
        for (args, says) in [
            (vec!["--token-file", token.as_str()], "--hub is required"),
            (
                vec!["--hub", "ftp://x", "--token-file", token.as_str()],
                "http",
            ),
            (
                vec!["--hub", "http://x", "--token-file", "/nonexistent"],
                "cannot read the token file",
            ),
            (
                vec![
                    "--hub",
                    "http://x",
                    "--token-file",
                    token.as_str(),
                    "--interval",
                    "soon",
                ],
                "soon",
            ),
            (
                vec![
                    "--hub",
                    "http://x",
                    "--token-file",
                    token.as_str(),
                    "--spool-max",
                    "10KiB",
                ],
                "at least",
            ),
            (vec!["--bogus"], "--bogus"),
            (
                vec![
                    "--hub",
                    "http://x",
                    "--token-file",
                    token.as_str(),
                    "--commands",
                    "/nonexistent",
                ],
                "cannot read the commands file",
            ),
        ] {
            let mut all = vec!["watchpost-agent"];
            all.extend(args);
            match Config::from_args(all) {
                Err(Exit::Message(m)) => {
                    assert!(m.contains(says), "{m}");
                    assert!(!m.contains('\n'), "{m}");
                }
                other => panic!("{other:?}"),
            }
        }
    }
}
