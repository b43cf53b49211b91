//! Notification channels: `[[channels]]` of the configuration file, and how each kind delivers.
//!
//! ```toml
//! [[channels]]
//! name = "ops-hook"
//! kind = "webhook"              # Grafana-style JSON, POSTed
//! url = "https://hooks.example.com/watchpost"
//! min_severity = "warning"      # the least severity sent (default: info)
//!
//! [[channels]]
//! name = "ops-slack"
//! kind = "slack"                # a Slack-compatible incoming webhook
//! url_file = "/etc/watchpost/slack-url"   # or url = "…"; the URL is a secret, a file keeps it out of the config
//! ca_file = "/etc/watchpost/internal-ca.pem"   # optional: trust this CA too, for an https URL a private CA signed
//!
//! [[channels]]
//! name = "ops-mail"
//! kind = "email"
//! smtp = "smtp.example.com:587"
//! tls = "starttls"              # starttls (default), tls (SMTPS), or none (a relay on this machine)
//! username = "watchpost"
//! password_file = "/etc/watchpost/smtp-password"
//! from = "Watchpost <watchpost@example.com>"
//! to = ["ops@example.com"]
//! ```

use super::group::Batch;
use super::payload;
use crate::tls::CaFile;
use lettre::message::{Mailbox, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::Deserialize;
use shared::{ChannelKind, Severity};
use std::path::PathBuf;
use std::time::Duration;

/// How long one delivery attempt may take.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// A `[[channels]]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelFile {
    pub name: String,
    pub kind: String,
    pub url: Option<String>,
    pub url_file: Option<PathBuf>,
    /// A CA bundle to trust besides the public roots, for an https URL whose certificate a private CA signed.
    pub ca_file: Option<PathBuf>,
    pub min_severity: Option<String>,
    pub smtp: Option<String>,
    pub tls: Option<String>,
    pub username: Option<String>,
    pub password_file: Option<PathBuf>,
    pub from: Option<String>,
    #[serde(default)]
    pub to: Vec<String>,
}

/// A checked channel, ready to deliver.
#[derive(Clone)]
pub struct Channel {
    pub name: String,
    pub kind: ChannelKind,
    pub min_severity: Severity,
    /// Where it points, without secrets: a URL's host, the SMTP server and the number of recipients.
    pub target: String,
    how: How,
}

#[derive(Clone)]
enum How {
    Post {
        url: reqwest::Url,
        /// A client of the channel's own when it trusts its own CA; else the notifier's shared one.
        client: Option<reqwest::Client>,
    },
    Email {
        transport: AsyncSmtpTransport<Tokio1Executor>,
        from: Mailbox,
        to: Vec<Mailbox>,
    },
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the URL (a Slack URL is a credential) or the password.
        f.debug_struct("Channel")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

fn read_secret(path: &PathBuf, what: &str) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the {what} file {}: {e}", path.display()))?;
    let text = text.trim().to_owned();
    if text.is_empty() {
        return Err(format!("the {what} file {} is empty", path.display()));
    }
    Ok(text)
}

impl ChannelFile {
    /// Checks the declaration (reading its secret files); the error names the channel and what is wrong.
    pub fn check(self) -> Result<Channel, String> {
        let name = self.name.trim().to_owned();
        if name.is_empty() || name.chars().count() > 64 {
            return Err("a notification channel needs a name of 1 to 64 characters".into());
        }
        let context = |e: String| format!("channel '{name}': {e}");
        let min_severity = match &self.min_severity {
            Some(s) => Severity::parse(s).ok_or_else(|| {
                context(format!(
                    "min_severity '{s}' is not one of info, warning, error, critical"
                ))
            })?,
            None => Severity::Info,
        };
        let kind = match self.kind.as_str() {
            "webhook" => ChannelKind::Webhook,
            "slack" => ChannelKind::Slack,
            "email" => ChannelKind::Email,
            other => {
                return Err(context(format!(
                    "kind '{other}' is not one of webhook, slack, email"
                )));
            }
        };
        let (how, target) = match kind {
            ChannelKind::Webhook | ChannelKind::Slack => {
                if self.smtp.is_some() || self.from.is_some() || !self.to.is_empty() {
                    return Err(context("smtp, from and to are for email channels".into()));
                }
                let text = match (&self.url, &self.url_file) {
                    (Some(url), None) => url.clone(),
                    (None, Some(file)) => read_secret(file, "url").map_err(context)?,
                    _ => return Err(context("give exactly one of url or url_file".into())),
                };
                let url = reqwest::Url::parse(&text)
                    .map_err(|e| context(format!("the URL is not valid: {e}")))?;
                if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
                    return Err(context(
                        "the URL must be http:// or https:// with a host".into(),
                    ));
                }
                let target = match url.port() {
                    Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
                    None => url.host_str().unwrap_or_default().to_owned(),
                };
                let client = match &self.ca_file {
                    None => None,
                    Some(_) if url.scheme() != "https" => {
                        return Err(context("ca_file is for an https:// URL".into()));
                    }
                    Some(path) => {
                        let ca = CaFile::read(path.clone())
                            .map_err(|e| context(format!("ca_file: {e}")))?;
                        Some(super::http_client(Some(&ca)).map_err(context)?)
                    }
                };
                (How::Post { url, client }, target)
            }
            ChannelKind::Email => {
                if self.url.is_some() || self.url_file.is_some() || self.ca_file.is_some() {
                    return Err(context(
                        "url, url_file and ca_file are for webhook and slack channels".into(),
                    ));
                }
                let smtp = self
                    .smtp
                    .clone()
                    .ok_or_else(|| context("an email channel needs smtp = \"host:port\"".into()))?;
                let (host, port) = match smtp.rsplit_once(':') {
                    Some((h, p)) => (
                        h.to_owned(),
                        p.parse::<u16>().map_err(|_| {
                            context(format!("smtp '{smtp}': the port is not a number"))
                        })?,
                    ),
                    None => (smtp.clone(), 587),
                };
                let builder = match self.tls.as_deref().unwrap_or("starttls") {
                    "starttls" => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&host)
                        .map_err(|e| context(e.to_string()))?,
                    "tls" => AsyncSmtpTransport::<Tokio1Executor>::relay(&host)
                        .map_err(|e| context(e.to_string()))?,
                    "none" => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&host),
                    other => {
                        return Err(context(format!(
                            "tls '{other}' is not one of starttls, tls, none"
                        )));
                    }
                };
                let mut builder = builder.port(port).timeout(Some(ATTEMPT_TIMEOUT));
                match (&self.username, &self.password_file) {
                    (Some(user), Some(file)) => {
                        let password = read_secret(file, "password").map_err(context)?;
                        builder = builder.credentials(Credentials::new(user.clone(), password));
                    }
                    (None, None) => {}
                    _ => {
                        return Err(context(
                            "give both username and password_file, or neither".into(),
                        ));
                    }
                }
                let from: Mailbox = self
                    .from
                    .as_deref()
                    .ok_or_else(|| context("an email channel needs from = \"…\"".into()))?
                    .parse()
                    .map_err(|e| context(format!("from: {e}")))?;
                if self.to.is_empty() {
                    return Err(context("an email channel needs to = [\"…\"]".into()));
                }
                let to = self
                    .to
                    .iter()
                    .map(|t| {
                        t.parse::<Mailbox>()
                            .map_err(|e| context(format!("to '{t}': {e}")))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let target = format!(
                    "{host}:{port}, {} recipient{}",
                    to.len(),
                    if to.len() == 1 { "" } else { "s" }
                );
                (
                    How::Email {
                        transport: builder.build(),
                        from,
                        to,
                    },
                    target,
                )
            }
        };
        Ok(Channel {
            name,
            kind,
            min_severity,
            target,
            how,
        })
    }
}

/// Checks every channel and that their names are unique.
pub fn check_channels(files: Vec<ChannelFile>) -> Result<Vec<Channel>, String> {
    let mut channels: Vec<Channel> = Vec::new();
    for file in files {
        let channel = file.check()?;
        if channels.iter().any(|c| c.name == channel.name) {
            return Err(format!("two channels are named '{}'", channel.name));
        }
        channels.push(channel);
    }
    Ok(channels)
}

impl Channel {
    /// The batch as this channel sees it: only alerts of its severity or worse; `None` if none is left.
    pub fn filter(&self, batch: &Batch) -> Option<Batch> {
        let alerts: Vec<_> = batch
            .alerts
            .iter()
            .filter(|a| a.severity >= self.min_severity)
            .cloned()
            .collect();
        (!alerts.is_empty()).then(|| Batch {
            alerts,
            ..batch.clone()
        })
    }

    /// One attempt to deliver; the error is worded for the Alerts page.
    pub async fn deliver(
        &self,
        http: &reqwest::Client,
        batch: &Batch,
        external_url: &str,
    ) -> Result<(), String> {
        match &self.how {
            How::Post { url, client } => {
                let http = client.as_ref().unwrap_or(http);
                let body = match self.kind {
                    ChannelKind::Slack => payload::slack(batch, external_url),
                    _ => payload::webhook(batch, &self.name, external_url),
                };
                let response = http
                    .post(url.clone())
                    .timeout(ATTEMPT_TIMEOUT)
                    .json(&body)
                    .send()
                    .await
                    // Without the URL: reqwest's errors print it, and a Slack URL is a secret.
                    .map_err(|e| format!("{}: {}", self.target, describe(&e.without_url())))?;
                let status = response.status();
                if status.is_success() {
                    Ok(())
                } else {
                    // The first chunk is enough for the 200 characters shown.
                    let mut response = response;
                    let first = response.chunk().await.ok().flatten().unwrap_or_default();
                    let text: String = String::from_utf8_lossy(&first).chars().take(200).collect();
                    Err(format!("{} answered {status} {}", self.target, text.trim())
                        .trim_end()
                        .to_owned())
                }
            }
            How::Email {
                transport,
                from,
                to,
            } => {
                let mut message = Message::builder()
                    .from(from.clone())
                    .subject(payload::subject(batch));
                for mailbox in to {
                    message = message.to(mailbox.clone());
                }
                let message = message
                    .header(ContentType::TEXT_PLAIN)
                    .body(payload::text(batch, external_url))
                    .map_err(|e| format!("cannot build the email: {e}"))?;
                transport
                    .send(message)
                    .await
                    .map(|_| ())
                    .map_err(|e| format!("{}: {e}", self.target))
            }
        }
    }
}

/// A request error with its causes, one line.
fn describe(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn channel(text: &str) -> Result<Channel, String> {
        toml::from_str::<ChannelFile>(text)
            .map_err(|e| e.to_string())
            .and_then(ChannelFile::check)
    }

    #[test]
    fn channels_are_checked_at_start() {
        let hook = channel("name = \"h\"\nkind = \"webhook\"\nurl = \"https://hooks.example.com:8443/x?token=s3cret\"\n")
            .unwrap();
        assert_eq!(hook.target, "hooks.example.com:8443");
        assert!(!format!("{hook:?}").contains("s3cret"));
        let mail = channel(
            "name = \"m\"\nkind = \"email\"\nsmtp = \"127.0.0.1:2525\"\ntls = \"none\"\nfrom = \"Watchpost <w@example.com>\"\nto = [\"a@example.com\", \"b@example.com\"]\n",
        )
        .unwrap();
        assert_eq!(mail.target, "127.0.0.1:2525, 2 recipients");
        for (text, message) in [
            (
                "name = \"x\"\nkind = \"pager\"\nurl = \"http://a\"\n",
                "kind 'pager'",
            ),
            ("name = \"x\"\nkind = \"webhook\"\n", "exactly one of url"),
            (
                "name = \"x\"\nkind = \"webhook\"\nurl = \"ftp://a/b\"\n",
                "http:// or https://",
            ),
            (
                "name = \"x\"\nkind = \"slack\"\nurl = \"not a url\"\n",
                "not valid",
            ),
            (
                "name = \"x\"\nkind = \"webhook\"\nurl = \"http://a\"\nmin_severity = \"loud\"\n",
                "min_severity 'loud'",
            ),
            (
                "name = \"x\"\nkind = \"email\"\nsmtp = \"h:25\"\nfrom = \"a@b.c\"\n",
                "to = ",
            ),
            (
                "name = \"x\"\nkind = \"email\"\nsmtp = \"h:x\"\nfrom = \"a@b.c\"\nto = [\"a@b.c\"]\n",
                "port is not a number",
            ),
            (
                "name = \"x\"\nkind = \"email\"\nsmtp = \"h:25\"\nfrom = \"nobody\"\nto = [\"a@b.c\"]\n",
                "from:",
            ),
            (
                "name = \"x\"\nkind = \"email\"\nsmtp = \"h:25\"\nusername = \"u\"\nfrom = \"a@b.c\"\nto = [\"a@b.c\"]\n",
                "password_file",
            ),
            (
                "name = \"x\"\nkind = \"webhook\"\nurl = \"http://a\"\nretry = 1\n",
                "unknown field",
            ),
        ] {
            let e = channel(text).unwrap_err();
            assert!(e.contains(message), "{text}: {e}");
        }
    }
}
