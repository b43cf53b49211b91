//! Which store an instance keeps its state in: the embedded SQLite file under the data directory (the
//! default, nothing to set up), or a PostgreSQL database (`--store postgres://…`), which several instances
//! can share. Both keep the same tables and give readers the same answers (the store crate tests each trait
//! on both); the choice is made once, here, and the rest of the server sees only the store's traits.

use sqlx::postgres::PgConnectOptions;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use store::{Database, OpenOptions, PgStore, SqliteStore, StoreError};

/// The database file under the data directory.
pub const DATABASE_FILE: &str = "watchpost.db";

/// Connections an instance keeps to a PostgreSQL store: enough for the collector's writes, the maintenance
/// round and the pages' reads at once, few enough that three instances stay well within PostgreSQL's
/// default of 100.
const POSTGRES_CONNECTIONS: u32 = 16;

/// Where the store is.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum StoreChoice {
    /// `watchpost.db` in the data directory.
    #[default]
    Embedded,
    /// Boxed: the connect options are large, and the choice is made once.
    Postgres(Box<StoreUrl>),
}

/// A PostgreSQL store's URL. Its `Debug` and [`StoreUrl::shown`] leave the password out, since
/// `check-config` and the logs print them.
#[derive(Clone)]
pub struct StoreUrl {
    options: PgConnectOptions,
    shown: String,
}

impl StoreUrl {
    /// `postgres://user@host:port/database`, without the password.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// `--store-url-file`: the URL is the file's one line, so the password is in neither the command line
    /// (`ps` shows it to every local user) nor the environment.
    pub fn from_file(path: &Path) -> Result<StoreUrl, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let url = text.trim();
        if url.is_empty() || url.contains(char::is_whitespace) {
            return Err(format!("{} must hold one URL on one line", path.display()));
        }
        url.parse()
    }
}

impl std::fmt::Debug for StoreUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

impl PartialEq for StoreUrl {
    fn eq(&self, other: &Self) -> bool {
        self.shown == other.shown
    }
}

impl FromStr for StoreUrl {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let url = s.trim();
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(
                "the store is a PostgreSQL URL, postgres://user@host:port/database (the embedded \
                 SQLite store is the default and needs no setting)"
                    .into(),
            );
        }
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| format!("not a PostgreSQL URL: {e}"))?
            .application_name("watchpost");
        Ok(StoreUrl {
            shown: store::describe_postgres(&options),
            options,
        })
    }
}

/// Opens the store `choice` names (the embedded one in `data_dir`, limited to `quota`) and brings its
/// schema up to date.
pub async fn open(
    choice: &StoreChoice,
    data_dir: &Path,
    quota: Option<u64>,
) -> Result<Arc<dyn Database>, StoreError> {
    Ok(match choice {
        StoreChoice::Embedded => Arc::new(
            SqliteStore::open(
                &data_dir.join(DATABASE_FILE),
                &OpenOptions { quota_bytes: quota },
            )
            .await?,
        ),
        StoreChoice::Postgres(url) => {
            Arc::new(PgStore::connect_with(url.options.clone(), POSTGRES_CONNECTIONS).await?)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_url_never_shows_its_password() {
        let url: StoreUrl = "postgres://watchpost:s3cret@db.internal:5433/watchpost"
            .parse()
            .unwrap();
        assert_eq!(
            url.shown(),
            "postgres://watchpost@db.internal:5433/watchpost"
        );
        assert!(!format!("{url:?}").contains("s3cret"));
    }

    #[test]
    fn anything_but_a_postgres_url_is_refused_with_what_is_expected() {
        for bad in ["sqlite://w.db", "db.internal:5432", ""] {
            let e = bad.parse::<StoreUrl>().unwrap_err();
            assert!(
                e.contains("postgres://user@host:port/database"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn a_url_file_holds_one_url() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store-url");
        std::fs::write(&path, "postgres://w:pw@127.0.0.1/w\n").unwrap();
        assert_eq!(
            StoreUrl::from_file(&path).unwrap().shown(),
            "postgres://w@127.0.0.1:5432/w"
        );
        std::fs::write(&path, "postgres://a/b postgres://c/d\n").unwrap();
        assert!(
            StoreUrl::from_file(&path)
                .unwrap_err()
                .contains("one URL on one line")
        );
        let missing = StoreUrl::from_file(&dir.path().join("none")).unwrap_err();
        assert!(missing.starts_with("cannot read"), "{missing}");
    }
}
