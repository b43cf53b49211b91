//! `watchpost user …` and `watchpost token …`: account management from the command line, on the store the
//! configuration names (safe while servers run: SQLite serialises the writes, PostgreSQL's transactions
//! keep them apart).

use crate::auth::secrets;
use crate::clock::now_millis;
use crate::config::{Config, TokenCommand, TokenRole, UserCommand};
use anyhow::{Context, bail};
use shared::{check_password, check_user_name};
use std::io::{BufRead, IsTerminal};

async fn open(config: &Config) -> anyhow::Result<std::sync::Arc<dyn store::Database>> {
    if config.storage.engine == crate::storage::StoreChoice::Embedded {
        crate::data_dir::prepare(&config.server.data_dir)
            .with_context(|| format!("cannot create {}", config.server.data_dir.display()))?;
    }
    // No quota here: an account change is small, and refusing it on a full store would lock people out.
    Ok(crate::storage::open(&config.storage.engine, &config.server.data_dir, None).await?)
}

/// The new password: asked twice without echo on a terminal, else the first line of stdin.
fn read_password(from_stdin: bool) -> anyhow::Result<String> {
    if from_stdin || !std::io::stdin().is_terminal() {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("cannot read the password from stdin")?;
        return Ok(line.trim_end_matches(['\r', '\n']).to_owned());
    }
    let first = rpassword::prompt_password("Password: ").context("cannot read the password")?;
    let again = rpassword::prompt_password("Again: ").context("cannot read the password")?;
    if first != again {
        bail!("the two passwords differ");
    }
    Ok(first)
}

pub async fn user(config: &Config, command: &UserCommand) -> anyhow::Result<()> {
    let store = open(config).await?;
    match command {
        UserCommand::Add {
            name,
            role,
            password_stdin,
        } => {
            check_user_name(name).map_err(anyhow::Error::msg)?;
            let password = read_password(*password_stdin)?;
            check_password(&password).map_err(anyhow::Error::msg)?;
            let hash = secrets::hash_password(password).await?;
            let user = store.add_user(name, *role, &hash, now_millis()).await?;
            println!("added {} ({})", user.name, user.role);
        }
        UserCommand::Unlock { name } => {
            let lifted = store.unlock_logins(name, now_millis()).await?;
            match lifted {
                0 => println!("no sign-in lock names '{name}'"),
                n => println!(
                    "lifted {n} sign-in lock{} of '{name}' (locks of whole addresses stay until they expire)",
                    if n == 1 { "" } else { "s" }
                ),
            }
        }
        UserCommand::List => {
            for u in store.users().await? {
                let state = if u.disabled { " (disabled)" } else { "" };
                let environments: String = u
                    .environments
                    .iter()
                    .map(|e| {
                        format!(
                            "\t{}={}",
                            e.environment,
                            e.role.map_or("none", |r| r.as_str())
                        )
                    })
                    .collect();
                println!("{}\t{}{state}{environments}", u.name, u.role);
            }
        }
        UserCommand::Role {
            name,
            environment,
            role,
        } => {
            let Some(user) = store.credentials(name).await?.map(|c| c.user) else {
                bail!("no user is named '{name}'");
            };
            // A change made here reaches a running server at each request; open live streams keep what
            // they were opened with until they reconnect (the admin page ends them at once).
            match environment {
                None => {
                    let role: shared::Role = role.parse()?;
                    store.update_user(user.id, Some(role), None, None).await?;
                    println!("{} is {role}", user.name);
                }
                Some(environment) => {
                    crate::fleet::check_name(environment, "environment")
                        .map_err(anyhow::Error::msg)?;
                    let role = shared::parse_environment_role(role).map_err(anyhow::Error::msg)?;
                    store
                        .set_environment_role(user.id, environment, role)
                        .await?;
                    match role {
                        None => println!(
                            "{} has the account's role ({}) in {environment}",
                            user.name, user.role
                        ),
                        Some(None) => println!("{} has no access to {environment}", user.name),
                        Some(Some(r)) => println!("{} is {r} in {environment}", user.name),
                    }
                }
            }
        }
    }
    Ok(())
}

pub async fn token(config: &Config, command: &TokenCommand) -> anyhow::Result<()> {
    let store = open(config).await?;
    match command {
        TokenCommand::Add {
            name,
            role: TokenRole::Agent,
            environment,
        } => {
            let Some(environment) = environment else {
                bail!(
                    "an agent's host belongs to an environment: add --environment ENV (prod, staging, …)"
                );
            };
            let (agent, secret) = crate::fleet::enrol(&*store, name, environment).await?;
            eprintln!(
                "host '{}' ({}) enrolled; its agent token is shown only now — start the agent on that host with:",
                agent.name, agent.environment
            );
            eprintln!(
                "  watchpost-agent --hub {} --token-file /etc/watchpost/agent.token --name {} --environment {}",
                hub_url(config),
                agent.name,
                agent.environment
            );
            println!("{secret}");
        }
        TokenCommand::Add {
            name,
            role: TokenRole::Api(role),
            environment,
        } => {
            if environment.is_some() {
                bail!("--environment belongs to agent tokens (--role agent)");
            }
            if name.trim().is_empty() || name.chars().count() > 64 {
                bail!("a token name has 1 to 64 characters");
            }
            let secret = secrets::new_token()?;
            let token = store
                .add_token(name, *role, &secrets::digest(&secret), now_millis())
                .await?;
            eprintln!(
                "token '{}' ({}) created; it is shown only now — use it as `Authorization: Bearer …`:",
                token.name, token.role
            );
            println!("{secret}");
        }
    }
    Ok(())
}

/// The address agents reach this hub at, as far as its configuration tells.
fn hub_url(config: &Config) -> String {
    format!("http://{}", config.server.listen)
}
