//! What is scraped and how: `--scrape SERVICE=URL` (http or https), with per target a bearer token
//! (`--scrape-token-file`), a CA to verify its certificate by (`--scrape-ca-file`), and its own label names
//! (`--scrape-label`).

use crate::outlet::OWN_SERVICE;
use crate::sources::NamedFile;
use crate::tls::CaFile;

/// One service to scrape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScrapeTarget {
    pub service: String,
    pub url: String,
    /// Sent as `Authorization: Bearer …`, for endpoints that need one (another Watchpost's `/metrics`).
    pub token: Option<BearerToken>,
    /// Label names of this target's own, tried before the common ones.
    pub labels: LabelMap,
    /// Certificates (PEM) its https certificate is verified by, beside the public web roots.
    pub ca: Option<CaFile>,
}

/// A scrape token, read from a file so that it stays out of the process list and the shell history; its
/// `Debug` hides it, so printing the configuration never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct BearerToken(pub(super) String);

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerToken(…)")
    }
}

/// What a label of a request series says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelRole {
    Route,
    Method,
    Status,
}

impl LabelRole {
    /// The names tried, in order: the Prometheus client libraries' conventions, then OpenTelemetry's
    /// semantic conventions (and their older names).
    fn common(self) -> &'static [&'static str] {
        match self {
            LabelRole::Route => &["route", "handler", "path", "uri", "endpoint", "http_route"],
            LabelRole::Method => &["method", "verb", "http_request_method", "http_method"],
            LabelRole::Status => &[
                "status",
                "code",
                "status_code",
                "http_response_status_code",
                "http_status_code",
            ],
        }
    }
}

/// A target's own label names for route, method and status, for one that uses names of its own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelMap {
    pub route: Option<String>,
    pub method: Option<String>,
    pub status: Option<String>,
}

impl LabelMap {
    /// The names to try for `role`: the target's own first.
    pub fn names(&self, role: LabelRole) -> impl Iterator<Item = &str> {
        let own = match role {
            LabelRole::Route => &self.route,
            LabelRole::Method => &self.method,
            LabelRole::Status => &self.status,
        };
        own.as_deref()
            .into_iter()
            .chain(role.common().iter().copied())
    }
}

/// `--scrape-label SERVICE=ROLE:LABEL`, e.g. `shop=route:operation`: the label that names `ROLE` (`route`,
/// `method` or `status`) in that target's series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScrapeLabel {
    pub service: String,
    pub role: LabelRole,
    pub label: String,
}

impl std::str::FromStr for ScrapeLabel {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("'{s}' is not SERVICE=ROLE:LABEL, e.g. shop=route:operation");
        let (service, rest) = s.split_once('=').ok_or_else(bad)?;
        let (role, label) = rest.split_once(':').ok_or_else(bad)?;
        let role = match role.trim() {
            "route" => LabelRole::Route,
            "method" => LabelRole::Method,
            "status" => LabelRole::Status,
            other => {
                return Err(format!(
                    "'{other}' is not a label role: route, method or status"
                ));
            }
        };
        let label = label.trim();
        let valid = label
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(format!(
                "'{label}' is not a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*)"
            ));
        }
        let service = service.trim();
        if service.is_empty() {
            return Err(bad());
        }
        Ok(ScrapeLabel {
            service: service.to_owned(),
            role,
            label: label.to_owned(),
        })
    }
}

/// `--scrape-token-file SERVICE=PATH`: the file holding the bearer token of one scrape target.
pub type ScrapeTokenFile = NamedFile;
/// `--scrape-ca-file SERVICE=PATH`: the PEM bundle one https target's certificate is verified by.
pub type ScrapeCaFile = NamedFile;

/// The per-target settings given by flags of their own, each naming its target.
#[derive(Debug, Default, Clone, Copy)]
pub struct TargetOptions<'a> {
    pub tokens: &'a [ScrapeTokenFile],
    pub cas: &'a [ScrapeCaFile],
    pub labels: &'a [ScrapeLabel],
}

/// Gives each target its token, CA and label names; a setting for no target, or a file that cannot be read
/// or holds nothing usable, is an error that names it.
pub fn attach(targets: &mut [ScrapeTarget], options: TargetOptions<'_>) -> Result<(), String> {
    fn target<'t>(
        targets: &'t mut [ScrapeTarget],
        service: &str,
    ) -> Result<&'t mut ScrapeTarget, String> {
        targets
            .iter_mut()
            .find(|t| t.service == service)
            .ok_or_else(|| format!("'{service}' is not a scrape target"))
    }
    for file in options.tokens {
        let target = target(targets, &file.name)?;
        let text = std::fs::read_to_string(&file.path)
            .map_err(|e| format!("cannot read {}: {e}", file.path.display()))?;
        let token = text.trim();
        if token.is_empty() || token.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!(
                "{} must hold one token on one line",
                file.path.display()
            ));
        }
        target.token = Some(BearerToken(token.to_owned()));
    }
    for file in options.cas {
        let target = target(targets, &file.name)?;
        if !target.url.starts_with("https://") {
            return Err(format!(
                "'{}' is scraped over http: a CA file is for an https:// target",
                file.name
            ));
        }
        target.ca = Some(CaFile::read(file.path.clone())?);
    }
    for label in options.labels {
        let target = target(targets, &label.service)?;
        let slot = match label.role {
            LabelRole::Route => &mut target.labels.route,
            LabelRole::Method => &mut target.labels.method,
            LabelRole::Status => &mut target.labels.status,
        };
        *slot = Some(label.label.clone());
    }
    Ok(())
}

impl std::str::FromStr for ScrapeTarget {
    type Err = String;

    /// `SERVICE=URL`, with an `http://` or `https://` URL.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (service, url) = s
            .split_once('=')
            .map(|(a, b)| (a.trim(), b.trim()))
            .filter(|(a, b)| !a.is_empty() && !b.is_empty())
            .ok_or_else(|| format!("'{s}' is not SERVICE=URL"))?;
        let parsed = reqwest::Url::parse(url).map_err(|e| format!("'{url}': {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(format!(
                "'{url}': a scrape target is an http:// or https:// URL with a host"
            ));
        }
        if service == OWN_SERVICE {
            return Err(format!(
                "'{OWN_SERVICE}' is the name of Watchpost's own figures"
            ));
        }
        Ok(ScrapeTarget {
            service: service.to_owned(),
            url: url.to_owned(),
            token: None,
            labels: LabelMap::default(),
            ca: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_service_equals_http_or_https_url() {
        let t: ScrapeTarget = "shop=http://10.0.0.5:9100/metrics".parse().unwrap();
        assert_eq!(t.service, "shop");
        let t: ScrapeTarget = "shop=https://shop.example/metrics".parse().unwrap();
        assert_eq!(t.url, "https://shop.example/metrics");
        assert!("shop".parse::<ScrapeTarget>().is_err());
        assert!("shop=ftp://x/metrics".parse::<ScrapeTarget>().is_err());
        assert!("shop=not a url".parse::<ScrapeTarget>().is_err());
        assert!(
            "watchpost=http://x/metrics"
                .parse::<ScrapeTarget>()
                .is_err()
        );
    }

    #[test]
    fn token_files_attach_to_their_target_and_never_print() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("token");
        std::fs::write(&good, "wpt_secret\n").unwrap();
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n").unwrap();
        let file = |s: &str, p: &std::path::Path| -> ScrapeTokenFile {
            format!("{s}={}", p.display()).parse().unwrap()
        };
        fn tokens(files: &[ScrapeTokenFile]) -> TargetOptions<'_> {
            TargetOptions {
                tokens: files,
                ..TargetOptions::default()
            }
        }
        let mut targets: Vec<ScrapeTarget> = vec!["shop=http://x/metrics".parse().unwrap()];
        attach(&mut targets, tokens(&[file("shop", &good)])).unwrap();
        assert_eq!(targets[0].token, Some(BearerToken("wpt_secret".to_owned())));
        assert!(!format!("{targets:?}").contains("wpt_secret"));
        let e = attach(&mut targets, tokens(&[file("blog", &good)])).unwrap_err();
        assert!(e.contains("'blog' is not a scrape target"), "{e}");
        let e = attach(&mut targets, tokens(&[file("shop", &empty)])).unwrap_err();
        assert!(e.contains("one token on one line"), "{e}");
        let e = attach(
            &mut targets,
            tokens(&[file("shop", &dir.path().join("gone"))]),
        )
        .unwrap_err();
        assert!(e.contains("cannot read"), "{e}");
    }

    #[test]
    fn ca_files_must_hold_a_certificate_and_belong_to_an_https_target() {
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a certificate\n").unwrap();
        let file: ScrapeCaFile = format!("shop={}", junk.display()).parse().unwrap();
        let cas = [file];
        let options = TargetOptions {
            cas: &cas,
            ..TargetOptions::default()
        };
        let mut plain: Vec<ScrapeTarget> = vec!["shop=http://x/metrics".parse().unwrap()];
        let e = attach(&mut plain, options).unwrap_err();
        assert!(e.contains("https://"), "{e}");
        let mut tls: Vec<ScrapeTarget> = vec!["shop=https://x/metrics".parse().unwrap()];
        let e = attach(&mut tls, options).unwrap_err();
        assert!(e.contains("no PEM certificate"), "{e}");
    }

    #[test]
    fn label_names_are_role_and_a_valid_label() {
        let l: ScrapeLabel = "shop=route:operation".parse().unwrap();
        assert_eq!((l.role, l.label.as_str()), (LabelRole::Route, "operation"));
        for bad in [
            "shop",
            "shop=route",
            "shop=colour:x",
            "shop=route:9x",
            "shop=route:a-b",
            "=route:x",
        ] {
            assert!(bad.parse::<ScrapeLabel>().is_err(), "{bad}");
        }
        let labels = [l];
        let mut targets: Vec<ScrapeTarget> = vec!["shop=http://x/metrics".parse().unwrap()];
        let options = TargetOptions {
            labels: &labels,
            ..TargetOptions::default()
        };
        attach(&mut targets, options).unwrap();
        let names: Vec<&str> = targets[0].labels.names(LabelRole::Route).collect();
        assert_eq!(names[..2], ["operation", "route"]);
    }
}
