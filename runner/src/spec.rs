//! Commands as the configuration declares them, checked once at start, and the one function that turns a
//! request into an argument vector: [`CommandSpec::argv`].
//!
//! ```toml
//! [[commands]]
//! name = "restart"
//! title = "Restart"
//! program = "systemctl"
//! args = ["restart", "{target}"]
//! targets = ["shop", "billing"]
//! role = "operator"                       # the least role that may run it (operator or admin)
//! target_roles = { billing = "admin" }    # more for some targets
//! timeout = "60s"
//! exclusive = true                        # one run at a time per target (the default)
//!
//! [[commands]]
//! name = "deploy"
//! kind = "deploy"
//! program = "/opt/deploy/deploy.sh"
//! args = ["{target}", "--version={version}", "--env", "{environment}"]
//! targets = ["shop"]
//! params = { version = { pattern = "v?[0-9]+(\\.[0-9]+){0,2}", example = "v1.4.2" }, environment = { values = ["staging", "production"] } }
//! ```
//!
//! The program runs without a shell: each argument is one argv entry, with `{slot}`s replaced by the
//! validated values, so a value can never become a second argument or a shell construct.

use regex::Regex;
use serde::Deserialize;
use shared::{CommandInfo, CommandKind, ParamInfo, Role};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// The slot every command has: the target it runs on.
pub const TARGET_SLOT: &str = "target";
/// The longest value a parameter may have.
pub const MAX_VALUE_CHARS: usize = 256;
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// A `[[commands]]` table of the configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandFile {
    pub name: String,
    pub title: Option<String>,
    /// The button's text while a run is under way [default: the title as "…ing…", e.g. "Restarting…"].
    pub running_title: Option<String>,
    #[serde(default)]
    pub kind: CommandKind,
    pub program: String,
    #[serde(default)]
    pub args: Vec<String>,
    pub targets: Vec<String>,
    #[serde(default)]
    pub params: BTreeMap<String, ParamFile>,
    pub role: Option<Role>,
    #[serde(default)]
    pub target_roles: BTreeMap<String, Role>,
    pub timeout: Option<String>,
    pub exclusive: Option<bool>,
}

/// What one parameter accepts: a pattern or a list of values.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParamFile {
    pub pattern: Option<String>,
    pub values: Option<Vec<String>>,
    /// A value that fits the pattern, shown in the form's empty field; checked against the pattern at start.
    pub example: Option<String>,
}

#[derive(Debug, Clone)]
enum Rule {
    Values(Vec<String>),
    Pattern(Regex),
}

/// A piece of an argument: literal text, or a slot to fill.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Slot(String),
}

/// A checked command, ready to run.
#[derive(Debug, Clone)]
pub struct CommandSpec {
    pub info: CommandInfo,
    pub program: String,
    args: Vec<Vec<Piece>>,
    rules: BTreeMap<String, Rule>,
    pub timeout: Duration,
}

/// Why a request cannot become an argument vector; each is a 400 with this text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    #[error("'{target}' is not a target of {command}; its targets are {allowed}")]
    Target {
        command: String,
        target: String,
        allowed: String,
    },
    #[error("{command} needs the parameter '{name}'")]
    Missing { command: String, name: String },
    #[error("{command} has no parameter '{name}'")]
    Unknown { command: String, name: String },
    #[error("'{name}': {reason}")]
    Invalid { name: String, reason: String },
}

fn check_name(what: &str, name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{what} '{name}' must be 1 to 64 letters, digits, '-', '_' or '.'"
        ))
    }
}

/// Splits an argument into text and `{slot}`s; a brace that does not close a name stays text.
fn pieces(arg: &str) -> Vec<Piece> {
    let mut out = Vec::new();
    let mut text = String::new();
    let mut rest = arg;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close)
                if close > 0
                    && after[..close]
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_') =>
            {
                text.push_str(&rest[..open]);
                if !text.is_empty() {
                    out.push(Piece::Text(std::mem::take(&mut text)));
                }
                out.push(Piece::Slot(after[..close].to_owned()));
                rest = &after[close + 1..];
            }
            _ => {
                text.push_str(&rest[..=open]);
                rest = after;
            }
        }
    }
    text.push_str(rest);
    if !text.is_empty() {
        out.push(Piece::Text(text));
    }
    out
}

impl CommandFile {
    /// Checks the declaration; the error names what is wrong.
    pub fn check(self) -> Result<CommandSpec, String> {
        let name = self.name.clone();
        check_name("a command name", &name)?;
        let context = |e: String| format!("command '{name}': {e}");
        if self.program.trim().is_empty() {
            return Err(context("program must not be empty".into()));
        }
        if self.targets.is_empty() {
            return Err(context("needs at least one target".into()));
        }
        let mut seen = BTreeSet::new();
        for target in &self.targets {
            check_name("a target", target).map_err(context)?;
            if !seen.insert(target) {
                return Err(context(format!("target '{target}' is listed twice")));
            }
        }
        let least = Role::Operator;
        let role = self.role.unwrap_or(least);
        if role < least {
            return Err(context(format!(
                "role must be operator or admin (running a command needs at least an operator), not {role}"
            )));
        }
        for (target, r) in &self.target_roles {
            if !self.targets.contains(target) {
                return Err(context(format!(
                    "target_roles names '{target}', which is not among its targets"
                )));
            }
            if *r < least {
                return Err(context(format!(
                    "target_roles.{target} must be operator or admin, not {r}"
                )));
            }
        }
        let mut rules = BTreeMap::new();
        let mut params = Vec::new();
        for (param, file) in &self.params {
            check_name("a parameter", param).map_err(context)?;
            if param == TARGET_SLOT {
                return Err(context(
                    "'target' is the command's target; list its values in targets".into(),
                ));
            }
            let rule = match (&file.pattern, &file.values) {
                (Some(pattern), None) => {
                    let regex = Regex::new(&format!("^(?:{pattern})$"))
                        .map_err(|e| context(format!("params.{param}.pattern: {e}")))?;
                    if let Some(example) = file.example.as_deref() {
                        let problem = value_problem(example).or_else(|| {
                            (!regex.is_match(example))
                                .then(|| "does not match its own pattern".to_owned())
                        });
                        if let Some(problem) = problem {
                            return Err(context(format!(
                                "params.{param}.example '{example}' {problem}"
                            )));
                        }
                    }
                    Rule::Pattern(regex)
                }
                (None, Some(_)) if file.example.is_some() => {
                    return Err(context(format!(
                        "params.{param}.example is for a pattern; a list of values is shown as a choice"
                    )));
                }
                (None, Some(values)) if !values.is_empty() => {
                    if let Some(bad) = values.iter().find(|v| v.is_empty() || v.starts_with('-')) {
                        return Err(context(format!(
                            "params.{param}: the value '{bad}' is empty or starts with '-', which no request may \
                             send"
                        )));
                    }
                    Rule::Values(values.clone())
                }
                _ => {
                    return Err(context(format!(
                        "params.{param} needs either a pattern or a non-empty list of values"
                    )));
                }
            };
            params.push(ParamInfo {
                name: param.clone(),
                values: file.values.clone(),
                pattern: file.pattern.clone(),
                example: file.example.clone(),
            });
            rules.insert(param.clone(), rule);
        }
        let args: Vec<Vec<Piece>> = self.args.iter().map(|a| pieces(a)).collect();
        let mut used = BTreeSet::new();
        for slot in args.iter().flatten().filter_map(|p| match p {
            Piece::Slot(s) => Some(s),
            Piece::Text(_) => None,
        }) {
            if slot != TARGET_SLOT && !rules.contains_key(slot) {
                return Err(context(format!(
                    "args use {{{slot}}}, which is neither {{target}} nor one of its params"
                )));
            }
            used.insert(slot.clone());
        }
        if let Some(unused) = rules.keys().find(|p| !used.contains(*p)) {
            return Err(context(format!(
                "params.{unused} is declared but no argument uses {{{unused}}}"
            )));
        }
        let timeout = match &self.timeout {
            Some(t) => {
                humantime::parse_duration(t).map_err(|e| context(format!("timeout '{t}': {e}")))?
            }
            None => DEFAULT_TIMEOUT,
        };
        if timeout < Duration::from_millis(100) || timeout > MAX_TIMEOUT {
            return Err(context(format!(
                "timeout must be between 100ms and 24h, got {timeout:?}"
            )));
        }
        let title = self.title.clone().unwrap_or_else(|| {
            let mut chars = name.chars();
            chars
                .next()
                .map(|c| c.to_uppercase().chain(chars).collect())
                .unwrap_or_default()
        });
        let running_title = self
            .running_title
            .clone()
            .unwrap_or_else(|| running(&title, self.kind));
        Ok(CommandSpec {
            info: CommandInfo {
                name: name.clone(),
                title,
                running_title,
                kind: self.kind,
                targets: self.targets,
                params,
                role,
                target_roles: self.target_roles,
                exclusive: self.exclusive.unwrap_or(true),
                timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
            },
            program: self.program,
            args,
            rules,
            timeout,
        })
    }
}

/// "Restart" → "Restarting…", "Deploy" → "Deploying…", "Scale up" → "Scaling up…"; a logs command is
/// "Reading…".
fn running(title: &str, kind: CommandKind) -> String {
    if kind == CommandKind::Logs {
        return "Reading…".into();
    }
    let (verb, rest) = title.split_once(' ').unwrap_or((title, ""));
    let stem = match verb.strip_suffix('e') {
        Some(stem) if !stem.ends_with('e') && !stem.is_empty() => stem,
        _ => verb,
    };
    if rest.is_empty() {
        format!("{stem}ing…")
    } else {
        format!("{stem}ing {rest}…")
    }
}

/// Checks every command and that their names are unique.
pub fn check_all(files: Vec<CommandFile>) -> Result<Vec<CommandSpec>, String> {
    let mut names = BTreeSet::new();
    let mut specs = Vec::new();
    for file in files {
        let spec = file.check()?;
        if !names.insert(spec.info.name.clone()) {
            return Err(format!("two commands are named '{}'", spec.info.name));
        }
        specs.push(spec);
    }
    Ok(specs)
}

impl CommandSpec {
    /// A command an agent declares, as the hub checks it: by the rules the hub's own configuration is
    /// checked by (names, targets, roles, patterns, timeout), so a request for it is validated on the hub
    /// before it goes down to the agent, which validates it again against its own file and runs it. The
    /// program stays on the agent: this spec's argument vector only lists the slots.
    pub fn declared(info: CommandInfo) -> Result<CommandSpec, String> {
        let mut args = vec![format!("{{{TARGET_SLOT}}}")];
        let mut params = BTreeMap::new();
        for p in &info.params {
            args.push(format!("{{{}}}", p.name));
            params.insert(
                p.name.clone(),
                ParamFile {
                    pattern: p.pattern.clone(),
                    values: p.values.clone(),
                    example: p.example.clone(),
                },
            );
        }
        let file = CommandFile {
            name: info.name.clone(),
            title: Some(info.title.clone()),
            running_title: Some(info.running_title.clone()),
            kind: info.kind,
            program: "(on the agent)".into(),
            args,
            targets: info.targets.clone(),
            params,
            role: Some(info.role),
            target_roles: info.target_roles.clone(),
            timeout: Some(format!("{}ms", info.timeout_ms)),
            exclusive: Some(info.exclusive),
        };
        let spec = file.check()?;
        if spec.info != info {
            return Err(format!(
                "command '{}': its declaration is not in its checked form (one parameter listed twice?)",
                info.name
            ));
        }
        Ok(spec)
    }

    /// The argument vector for a run on `target` with `params`, every value checked first.
    pub fn argv(
        &self,
        target: &str,
        params: &BTreeMap<String, String>,
    ) -> Result<Vec<String>, ParamError> {
        let command = &self.info.name;
        if !self.info.targets.iter().any(|t| t == target) {
            return Err(ParamError::Target {
                command: command.clone(),
                target: target.chars().take(MAX_VALUE_CHARS).collect(),
                allowed: self.info.targets.join(", "),
            });
        }
        if let Some(name) = params.keys().find(|k| !self.rules.contains_key(*k)) {
            return Err(ParamError::Unknown {
                command: command.clone(),
                name: name.chars().take(64).collect(),
            });
        }
        for (name, rule) in &self.rules {
            let value = params.get(name).ok_or_else(|| ParamError::Missing {
                command: command.clone(),
                name: name.clone(),
            })?;
            let invalid = |reason: String| ParamError::Invalid {
                name: name.clone(),
                reason,
            };
            if let Some(problem) = value_problem(value) {
                return Err(invalid(problem));
            }
            match rule {
                Rule::Values(values) if !values.contains(value) => {
                    return Err(invalid(format!("must be one of {}", values.join(", "))));
                }
                Rule::Pattern(re) if !re.is_match(value) => {
                    return Err(invalid(format!(
                        "'{value}' does not match the pattern {}",
                        re.as_str()
                            .trim_start_matches("^(?:")
                            .trim_end_matches(")$")
                    )));
                }
                _ => {}
            }
        }
        Ok(self
            .args
            .iter()
            .map(|pieces| {
                pieces
                    .iter()
                    .map(|p| match p {
                        Piece::Text(t) => t.as_str(),
                        Piece::Slot(s) if s == TARGET_SLOT => target,
                        Piece::Slot(s) => params.get(s).map_or("", String::as_str),
                    })
                    .collect()
            })
            .collect())
    }
}

/// What makes any parameter value unacceptable, whatever its rule: empty or too long, control characters, or
/// a leading '-' (most programs would read it as an option).
fn value_problem(value: &str) -> Option<String> {
    if value.is_empty() || value.chars().count() > MAX_VALUE_CHARS {
        return Some(format!("must have 1 to {MAX_VALUE_CHARS} characters"));
    }
    if value.chars().any(char::is_control) {
        return Some("must not contain control characters".into());
    }
    if value.starts_with('-') {
        return Some("must not start with '-'".into());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deploy() -> CommandSpec {
        let file: CommandFile = toml::from_str(
            r#"
            name = "deploy"
            kind = "deploy"
            program = "/opt/deploy.sh"
            args = ["{target}", "--version={version}", "--env", "{environment}", "{literal}", "{ x }"]
            targets = ["shop", "blog"]
            target_roles = { blog = "admin" }
            params = { version = { pattern = "v?[0-9]+(\\.[0-9]+){0,2}", example = "v1.4.2" }, environment = { values = ["staging", "production"] }, literal = { values = ["a"] } }
            "#,
        )
        .unwrap();
        file.check().unwrap()
    }

    fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn slots_are_filled_with_checked_values_one_argument_each() {
        let spec = deploy();
        assert_eq!(
            (spec.info.title.as_str(), spec.info.running_title.as_str()),
            ("Deploy", "Deploying…")
        );
        assert_eq!(running("Restart", CommandKind::Action), "Restarting…");
        assert_eq!(running("Scale up", CommandKind::Action), "Scaling up…");
        assert_eq!(running("Free", CommandKind::Action), "Freeing…");
        assert_eq!(spec.info.role_for("blog"), Role::Admin);
        let ok = params(&[
            ("version", "1.4.2"),
            ("environment", "staging"),
            ("literal", "a"),
        ]);
        assert_eq!(
            spec.argv("shop", &ok).unwrap(),
            ["shop", "--version=1.4.2", "--env", "staging", "a", "{ x }"]
        );
    }

    #[test]
    fn bad_requests_say_what_is_wrong() {
        let spec = deploy();
        let base = [
            ("version", "1.4.2"),
            ("environment", "staging"),
            ("literal", "a"),
        ];
        let with = |k: &str, v: &str| {
            let mut p = params(&base);
            p.insert(k.into(), v.into());
            p
        };
        let err = |target: &str, p: BTreeMap<String, String>| {
            spec.argv(target, &p).unwrap_err().to_string()
        };
        assert_eq!(
            err("db", params(&base)),
            "'db' is not a target of deploy; its targets are shop, blog"
        );
        assert!(
            err("shop", with("version", "1.2; rm -rf /")).contains("does not match the pattern")
        );
        assert!(err("shop", with("version", "-rf")).contains("must not start with '-'"));
        assert_eq!(
            err("shop", with("environment", "prod")),
            "'environment': must be one of staging, production"
        );
        assert!(err("shop", with("extra", "1")).contains("no parameter 'extra'"));
        assert!(err("shop", with("version", "1\n2")).contains("control characters"));
        let mut missing = params(&base);
        missing.remove("version");
        assert_eq!(err("shop", missing), "deploy needs the parameter 'version'");
    }

    #[test]
    fn an_agents_declaration_is_checked_as_the_hubs_own_would_be() {
        let spec = deploy();
        let declared = CommandSpec::declared(spec.info.clone()).unwrap();
        assert_eq!(declared.info, spec.info);
        assert!(
            declared
                .argv(
                    "shop",
                    &params(&[
                        ("version", "v1.2"),
                        ("environment", "staging"),
                        ("literal", "a")
                    ])
                )
                .is_ok()
        );
        assert!(matches!(
            declared.argv(
                "shop",
                &params(&[
                    ("version", "1.2; rm"),
                    ("environment", "staging"),
                    ("literal", "a")
                ])
            ),
            Err(ParamError::Invalid { .. })
        ));
        let mut viewer = spec.info.clone();
        viewer.role = Role::Viewer;
        assert!(CommandSpec::declared(viewer).unwrap_err().contains("role"));
        let mut bad = spec.info.clone();
        bad.params[0].pattern = Some("(".into());
        bad.params[0].values = None;
        assert!(CommandSpec::declared(bad).is_err());
    }

    #[test]
    fn declarations_are_checked_at_start() {
        let check = |toml_text: &str| {
            toml::from_str::<CommandFile>(toml_text)
                .map_err(|e| e.to_string())
                .and_then(CommandFile::check)
                .map(|_| ())
        };
        let base = "name = \"r\"\nprogram = \"true\"\ntargets = [\"shop\"]\n";
        assert!(check(base).is_ok());
        for (extra, message) in [
            (
                "args = [\"{nope}\"]",
                "neither {target} nor one of its params",
            ),
            (
                "params = { v = { pattern = \"x\" } }",
                "no argument uses {v}",
            ),
            ("role = \"viewer\"", "operator or admin"),
            ("timeout = \"2d\"", "between 100ms and 24h"),
            ("target_roles = { db = \"admin\" }", "not among its targets"),
            (
                "args = [\"{v}\"]\nparams = { v = { pattern = \"(\" } }",
                "params.v.pattern",
            ),
            ("args = [\"{v}\"]\nparams = { v = {} }", "either a pattern"),
            (
                "args = [\"{v}\"]\nparams = { v = { pattern = \"v[0-9]+\", example = \"1.2\" } }",
                "example '1.2' does not match its own pattern",
            ),
            (
                "args = [\"{v}\"]\nparams = { v = { pattern = \"-?[0-9]+\", example = \"-5\" } }",
                "example '-5' must not start with '-'",
            ),
            (
                "args = [\"{v}\"]\nparams = { v = { values = [\"a\"], example = \"a\" } }",
                "example is for a pattern",
            ),
        ] {
            let e = check(&format!("{base}{extra}\n")).unwrap_err();
            assert!(e.contains(message), "{extra}: {e}");
        }
        let e = check("name = \"r\"\nprogram = \"true\"\ntargets = [\"shop\"]\nshell = true\n")
            .unwrap_err();
        assert!(e.contains("unknown field"), "{e}");
        let twice = vec![
            toml::from_str::<CommandFile>(base).unwrap(),
            toml::from_str::<CommandFile>(base).unwrap(),
        ];
        assert!(check_all(twice).unwrap_err().contains("two commands"));
    }
}
