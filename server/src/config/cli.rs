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
    /// Lift the sign-in lockouts of a user (from every address), e.g. after a guessing attempt locked them
    /// out; takes effect on the running server at once.
    Unlock { name: String },
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
