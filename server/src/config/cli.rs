//! The command line: the settings (each also an environment variable), the configuration file to read, and
//! the one-off commands.

use super::settings::Settings;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

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
    #[command(flatten)]
    pub settings: Settings,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the dashboard (the default).
    Serve,
    /// Print the effective configuration and exit.
    CheckConfig,
    /// Manage user accounts in the store (the data directory's, or `--store`).
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
    /// List users, with their roles per environment.
    List,
    /// Set a user's role: the account's (`user role NAME admin`), or in one environment with
    /// `--environment ENV` (viewer, operator, admin, `none` for no access there, or `default` to let the
    /// account's role apply there again).
    Role {
        name: String,
        /// The environment the role is for; without it, the account's own role.
        #[arg(long)]
        environment: Option<String>,
        role: String,
    },
    /// Lift the sign-in lockouts of a user (from every address), e.g. after a guessing attempt locked them
    /// out; takes effect on the running server at once.
    Unlock { name: String },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token and print it (once: only its hash is kept).
    Add {
        /// The token's name; for `--role agent`, the host name the agent pushes for.
        name: String,
        /// What the token may do: viewer, operator (ingest) or admin; or `agent`, which enrols a host whose
        /// watchpost-agent pushes with it.
        #[arg(long)]
        role: TokenRole,
        /// The environment of an agent's host (prod, staging, …); with `--role agent` only.
        #[arg(long)]
        environment: Option<String>,
    },
}

/// What `watchpost token add` makes: an API token of a role, or an agent's token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRole {
    Api(shared::Role),
    Agent,
}

impl std::str::FromStr for TokenRole {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("agent") {
            return Ok(TokenRole::Agent);
        }
        s.parse::<shared::Role>()
            .map(TokenRole::Api)
            .map_err(|e| format!("{e}, or agent"))
    }
}
