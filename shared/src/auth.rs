//! Accounts as both sides see them: roles, users, API tokens, and who is signed in. Password hashes and
//! token secrets never appear here; they stay in the server's store.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// What a user may do. Ordered: each role may do everything the roles before it may.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads every panel.
    #[default]
    Viewer,
    /// Also runs commands, acknowledges alerts and ingests logs.
    Operator,
    /// Also manages users, tokens and rules.
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Operator, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role '{0}'; use viewer, operator or admin")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownRole(s.chars().take(32).collect()))
    }
}

/// A user's role in one environment, where it differs from the account's role; `None` is no access at all
/// (the environment's hosts, logs and alerts are not shown to them).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct EnvironmentRole {
    pub environment: String,
    pub role: Option<Role>,
}

/// What a reader may see and do in each environment: the account's role wherever no environment says
/// otherwise. Every check of an event, a snapshot or an API answer against an environment goes through
/// [`Access::role_in`], so "operator in staging, viewer in prod, nothing in lab" is one value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Access {
    /// The account's role: what applies in every environment not listed.
    pub role: Role,
    /// Roles set per environment, sorted by environment name.
    #[serde(default)]
    pub environments: Vec<EnvironmentRole>,
}

impl Access {
    /// The same role everywhere (API tokens, and users with no role set per environment).
    pub fn uniform(role: Role) -> Self {
        Access {
            role,
            environments: Vec::new(),
        }
    }

    /// `role` everywhere except where `environments` says otherwise.
    pub fn with(role: Role, mut environments: Vec<EnvironmentRole>) -> Self {
        environments.sort();
        environments.dedup_by(|a, b| a.environment == b.environment);
        Access { role, environments }
    }

    /// The role in `environment`; `None` when the reader may not see it at all.
    pub fn role_in(&self, environment: &str) -> Option<Role> {
        if self.environments.is_empty() {
            return Some(self.role);
        }
        match self
            .environments
            .binary_search_by(|e| e.environment.as_str().cmp(environment))
        {
            Ok(at) => self.environments[at].role,
            Err(_) => Some(self.role),
        }
    }

    /// Whether anything of `environment` may be shown to this reader.
    pub fn sees(&self, environment: &str) -> bool {
        self.role_in(environment).is_some()
    }

    /// The environments this reader may not see at all (what a store query leaves out).
    pub fn hidden(&self) -> Vec<String> {
        self.environments
            .iter()
            .filter(|e| e.role.is_none())
            .map(|e| e.environment.clone())
            .collect()
    }
}

/// How a role per environment is written on the command line and in forms: a role, `none`, or `default`
/// (no role of its own: the account's applies).
pub fn parse_environment_role(s: &str) -> Result<Option<Option<Role>>, String> {
    match s {
        "default" => Ok(None),
        "none" => Ok(Some(None)),
        other => other.parse::<Role>().map(|r| Some(Some(r))).map_err(|_| {
            format!(
                "unknown role '{}'; use viewer, operator, admin, none or default",
                other.chars().take(32).collect::<String>()
            )
        }),
    }
}

/// What a request may ask Watchpost to do. Every server function and route that does more than read names
/// its action, and [`Action::allowed`] is the one table that decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Read the dashboard, its history and the event stream.
    View,
    /// Write entries to the error log (agents, log shippers).
    IngestLogs,
    /// Acknowledge or silence an alert.
    Acknowledge,
    /// Run a configured command (its own configuration may ask for more).
    RunCommand,
    /// Add, change, disable and remove users; see user-management events.
    ManageUsers,
    /// Create and revoke API tokens.
    ManageTokens,
    /// Read the audit trail.
    ViewAudit,
    /// Report a deployment's status (CI systems, with a token).
    ReportDeployment,
    /// Add, change and remove alert rules on the Alerts page, and send test notifications.
    ManageAlerts,
    /// Put a host in maintenance (expected offline, no alerts) or end it.
    Maintain,
    /// Set a host's sampling interval from the hub (its agent applies it without a restart).
    ConfigureHost,
}

impl Action {
    pub const ALL: [Action; 11] = [
        Action::View,
        Action::IngestLogs,
        Action::Acknowledge,
        Action::RunCommand,
        Action::ManageUsers,
        Action::ManageTokens,
        Action::ViewAudit,
        Action::ReportDeployment,
        Action::ManageAlerts,
        Action::Maintain,
        Action::ConfigureHost,
    ];

    /// The least role that may take this action: the permission table.
    pub fn least_role(self) -> Role {
        match self {
            Action::View => Role::Viewer,
            Action::IngestLogs
            | Action::Acknowledge
            | Action::RunCommand
            | Action::ViewAudit
            | Action::ReportDeployment
            | Action::Maintain
            | Action::ConfigureHost => Role::Operator,
            Action::ManageUsers | Action::ManageTokens | Action::ManageAlerts => Role::Admin,
        }
    }

    pub fn allowed(self, role: Role) -> bool {
        role >= self.least_role()
    }

    /// How a refusal names the action.
    pub fn describe(self) -> &'static str {
        match self {
            Action::View => "view the dashboard",
            Action::IngestLogs => "ingest logs",
            Action::Acknowledge => "acknowledge alerts",
            Action::RunCommand => "run commands",
            Action::ManageUsers => "manage users",
            Action::ManageTokens => "manage API tokens",
            Action::ViewAudit => "read the audit trail",
            Action::ReportDeployment => "report deployments",
            Action::ManageAlerts => "manage alert rules and notification channels",
            Action::Maintain => "put hosts in maintenance",
            Action::ConfigureHost => "set hosts' sampling intervals",
        }
    }
}

/// A refusal by the permission table: who lacked which role for what. Its text is the one message every
/// refusal shows, wherever the table was consulted (a route, a server function, a command's target).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub needed: Role,
    /// What was refused, as a person reads it: "manage users", "run restart on web-1".
    pub what: String,
    pub who: String,
    pub role: Role,
    /// Set when `who` has no role at all in the environment the action is in: the refusal says that
    /// rather than naming a role.
    pub outside: Option<String>,
}

impl Refused {
    /// `who` (of `role`) may not take `action`.
    pub fn of(action: Action, who: &str, role: Role) -> Self {
        Refused {
            needed: action.least_role(),
            what: action.describe().to_owned(),
            who: who.to_owned(),
            role,
            outside: None,
        }
    }

    /// `who` may not take `action` in `environment`, where they have no role at all.
    pub fn outside(action: Action, who: &str, environment: &str) -> Self {
        Refused {
            outside: Some(environment.chars().take(64).collect()),
            ..Refused::of(action, who, Role::Viewer)
        }
    }
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.outside {
            Some(environment) => write!(
                f,
                "{} has no role in the environment '{environment}', so may not {} there",
                self.who, self.what
            ),
            None => write!(
                f,
                "only an {} or above may {}; {} is {}",
                self.needed, self.what, self.who, self.role
            ),
        }
    }
}

/// What an action is taken on, where the permission table looks past the action: a configured command
/// may ask more of the role than running commands in general does, per target.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    /// The action as a whole.
    Any,
    /// Running (or cancelling) a command on one of its targets.
    Command(&'a crate::CommandInfo, &'a str),
    /// Reading the output of a command's runs on a target.
    CommandOutput(&'a crate::CommandInfo, &'a str),
}

impl Action {
    /// The least role that may take this action on `target`: role × action × target, the whole table.
    pub fn least_role_on(self, target: Target<'_>) -> Role {
        let least = self.least_role();
        match target {
            Target::Any => least,
            Target::Command(info, name) => least.max(info.role_for(name)),
            Target::CommandOutput(info, name) => least.max(info.output_audience(name)),
        }
    }

    pub fn allowed_on(self, role: Role, target: Target<'_>) -> bool {
        role >= self.least_role_on(target)
    }
}

/// Who is asking, as the audit trail records it: the principal's name (a user, or `token:NAME`), role and
/// address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Caller {
    pub name: String,
    /// The role in the hub's own environment.
    pub role: Role,
    pub ip: String,
    /// The role in every environment, for an action on something of another environment than the hub's
    /// (an alert of an agent's host); `None`: `role` everywhere. Not part of what the audit trail keeps.
    #[serde(skip)]
    pub access: Option<Access>,
}

impl Caller {
    /// The caller's role in `environment`; `None` when they have none there.
    pub fn role_in(&self, environment: &str) -> Option<Role> {
        match &self.access {
            // In the hub's own environment this is `role`, unless the caller has no role there at all.
            Some(access) => access.role_in(environment),
            None => Some(self.role),
        }
    }
}

/// A user account as an admin page lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: i64,
    pub name: String,
    pub role: Role,
    pub disabled: bool,
    pub created_ms: i64,
    /// Roles set per environment, overriding `role` there.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub environments: Vec<EnvironmentRole>,
}

impl User {
    /// What this user may see and do, per environment.
    pub fn access(&self) -> Access {
        Access::with(self.role, self.environments.clone())
    }
}

/// An API token as the admin page lists it: never its secret, which is shown once when it is created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiToken {
    pub id: i64,
    pub name: String,
    pub role: Role,
    pub created_ms: i64,
    pub revoked_ms: Option<i64>,
}

/// Every account and token, as the admin page shows them: the whole current value, so one event converges
/// every admin's tab.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AccountsView {
    pub users: Vec<User>,
    pub tokens: Vec<ApiToken>,
}

/// A token just created: its listing, and the secret, shown this once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewToken {
    pub token: ApiToken,
    pub secret: String,
}

/// Who a request is from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Me {
    pub name: String,
    /// The role in the hub's own environment.
    pub role: Role,
    /// The role in every environment, where it differs (see [`Access`]); `None`: `role` everywhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<Access>,
}

impl Me {
    /// The role in `environment` (`None`: no access there).
    pub fn role_in(&self, environment: &str) -> Option<Role> {
        match &self.access {
            Some(access) if !access.environments.is_empty() => access.role_in(environment),
            _ => Some(self.role),
        }
    }
}

/// The rules a user name must follow: what a person can type and a log line can show unambiguously.
pub fn check_user_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.chars().count() > 64 {
        return Err("a user name has 1 to 64 characters".into());
    }
    if !name
        .chars()
        .all(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
    {
        return Err("a user name may hold letters, digits and . _ - @ only".into());
    }
    Ok(())
}

/// Shortest password accepted: NIST SP 800-63B's minimum for a password a person chose.
pub const MIN_PASSWORD_CHARS: usize = 8;

pub fn check_password(password: &str) -> Result<(), String> {
    let n = password.chars().count();
    if n < MIN_PASSWORD_CHARS {
        return Err(format!(
            "a password needs at least {MIN_PASSWORD_CHARS} characters"
        ));
    }
    // Argon2 takes any length, but a megabyte "password" is an attack on the hashing time, not a password.
    if password.len() > 1024 {
        return Err("a password may be at most 1024 bytes".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered_and_parse() {
        assert!(Role::Viewer < Role::Operator && Role::Operator < Role::Admin);
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>(), Ok(r));
        }
        assert!(
            "root"
                .parse::<Role>()
                .unwrap_err()
                .to_string()
                .contains("viewer")
        );
    }

    #[test]
    fn the_permission_table_grows_with_the_role() {
        use Action::*;
        let table: Vec<(Action, [bool; 3])> = Action::ALL
            .into_iter()
            .map(|a| (a, Role::ALL.map(|r| a.allowed(r))))
            .collect();
        assert_eq!(
            table,
            [
                (View, [true, true, true]),
                (IngestLogs, [false, true, true]),
                (Acknowledge, [false, true, true]),
                (RunCommand, [false, true, true]),
                (ManageUsers, [false, false, true]),
                (ManageTokens, [false, false, true]),
                (ViewAudit, [false, true, true]),
                (ReportDeployment, [false, true, true]),
                (ManageAlerts, [false, false, true]),
                (Maintain, [false, true, true]),
                (ConfigureHost, [false, true, true]),
            ]
        );
    }

    #[test]
    fn a_command_may_ask_more_per_target_and_never_less() {
        let info = crate::CommandInfo {
            name: "restart".into(),
            title: "Restart".into(),
            running_title: "Restarting…".into(),
            kind: crate::CommandKind::Action,
            targets: vec!["shop".into(), "db".into()],
            params: Vec::new(),
            role: Role::Operator,
            target_roles: [("db".to_string(), Role::Admin)].into(),
            exclusive: true,
            timeout_ms: 1000,
        };
        let run =
            |role, target| Action::RunCommand.allowed_on(role, Target::Command(&info, target));
        assert!(run(Role::Operator, "shop") && !run(Role::Viewer, "shop"));
        assert!(!run(Role::Operator, "db") && run(Role::Admin, "db"));
        // Output: what its target asks.
        assert_eq!(
            Action::View.least_role_on(Target::CommandOutput(&info, "db")),
            Role::Admin
        );
        assert_eq!(
            Action::View.least_role_on(Target::CommandOutput(&info, "shop")),
            Role::Operator
        );
        assert_eq!(Action::View.least_role_on(Target::Any), Role::Viewer);
    }

    #[test]
    fn a_role_per_environment_overrides_the_accounts() {
        let access = Access::with(
            Role::Viewer,
            vec![
                EnvironmentRole {
                    environment: "staging".into(),
                    role: Some(Role::Operator),
                },
                EnvironmentRole {
                    environment: "prod".into(),
                    role: None,
                },
            ],
        );
        assert_eq!(access.role_in("staging"), Some(Role::Operator));
        assert_eq!(access.role_in("prod"), None);
        assert_eq!(access.role_in("lab"), Some(Role::Viewer));
        assert!(!access.sees("prod") && access.sees("lab"));
        assert_eq!(access.hidden(), vec!["prod".to_string()]);
        assert_eq!(
            Access::uniform(Role::Admin).role_in("any"),
            Some(Role::Admin)
        );
        assert_eq!(parse_environment_role("none"), Ok(Some(None)));
        assert_eq!(parse_environment_role("default"), Ok(None));
        assert_eq!(
            parse_environment_role("operator"),
            Ok(Some(Some(Role::Operator)))
        );
        assert!(parse_environment_role("root").is_err());
    }

    #[test]
    fn names_and_passwords_are_checked() {
        assert!(check_user_name("ana.lee@ops").is_ok());
        assert!(check_user_name("").is_err());
        assert!(check_user_name("a b").is_err());
        assert!(check_user_name("<script>").is_err());
        assert!(check_password("short").is_err());
        assert!(check_password("long enough").is_ok());
        assert!(check_password(&"x".repeat(2000)).is_err());
    }
}
