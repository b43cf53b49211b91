//! The store on PostgreSQL, for the scale-out mode: several Watchpost instances share one database. The
//! schema is `migrations/postgres`, the same tables as SQLite's with PostgreSQL's types, brought up to date
//! when the store connects (a database migrated by a newer Watchpost is refused rather than touched, as on
//! SQLite). Its parts arrive one store trait at a time, each tested against both engines with the same
//! test body.

mod history;

use crate::StoreError;
use crate::timing::{Timed, Timings};
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use std::collections::HashMap;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// How long a connection may take to open: a database that does not answer is an error at start, not a
/// hang.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub struct PgStore {
    pub(crate) pool: PgPool,
    /// Series name → id, filled as series are first written or read (an id never changes once given).
    ids: Mutex<HashMap<String, i64>>,
    /// Calls and total time per operation since start, for the database panel.
    timings: Timings,
}

/// The database a URL names, without its password: what messages and logs may say of it.
pub fn describe(options: &PgConnectOptions) -> String {
    format!(
        "postgres://{}@{}:{}/{}",
        options.get_username(),
        options.get_host(),
        options.get_port(),
        options.get_database().unwrap_or(options.get_username())
    )
}

impl PgStore {
    /// Connects to the database `url` names (`postgres://user[:password]@host:port/database`) with at most
    /// `max_connections`, and brings its schema up to date.
    pub async fn connect(url: &str, max_connections: u32) -> Result<PgStore, StoreError> {
        let options = PgConnectOptions::from_str(url).map_err(|source| StoreError::Open {
            path: PathBuf::from("the PostgreSQL URL given"),
            source,
        })?;
        PgStore::connect_with(options, max_connections).await
    }

    pub async fn connect_with(
        options: PgConnectOptions,
        max_connections: u32,
    ) -> Result<PgStore, StoreError> {
        let target = PathBuf::from(describe(&options));
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(CONNECT_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(|source| StoreError::Open {
                path: target.clone(),
                source,
            })?;
        MIGRATOR.run(&pool).await.map_err(|e| match e {
            MigrateError::VersionMissing(version) => StoreError::Newer {
                path: target.clone(),
                version,
            },
            other => StoreError::Migrate {
                path: target.clone(),
                message: other.to_string(),
            },
        })?;
        Ok(PgStore {
            pool,
            ids: Mutex::default(),
            timings: Timings::default(),
        })
    }

    pub(crate) fn timed(&self, kind: &'static str) -> Timed<'_> {
        self.timings.start(kind)
    }
}

/// A database of its own for one test, on the machine's PostgreSQL (`WATCHPOST_TEST_POSTGRES`, else
/// `postgres://postgres@127.0.0.1:5432/postgres`), removed when the test ends — passed or panicked — so
/// tests and runs never see each other's data.
#[cfg(test)]
pub(crate) struct Scratch {
    pub store: PgStore,
    name: String,
    admin: PgConnectOptions,
}

#[cfg(test)]
pub(crate) async fn scratch() -> Scratch {
    use sqlx::ConnectOptions;
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let url = std::env::var("WATCHPOST_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let admin =
        PgConnectOptions::from_str(&url).expect("WATCHPOST_TEST_POSTGRES is a PostgreSQL URL");
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros());
    let name = format!(
        "watchpost_test_{}_{}_{stamp}",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let mut conn = admin.connect().await.unwrap_or_else(|e| {
        panic!(
            "the store's tests need PostgreSQL at {}: {e}",
            describe(&admin)
        )
    });
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .expect("a database of the test's own");
    let store = PgStore::connect_with(admin.clone().database(&name), 4)
        .await
        .expect("the scratch database opens and migrates");
    Scratch { store, name, admin }
}

#[cfg(test)]
impl Scratch {
    /// Another store on the same database: a second Watchpost instance.
    pub async fn another(&self) -> PgStore {
        PgStore::connect_with(self.admin.clone().database(&self.name), 4)
            .await
            .expect("the scratch database opens again")
    }
}

#[cfg(test)]
impl Drop for Scratch {
    fn drop(&mut self) {
        // Dropped inside the test's runtime, which is blocked while this runs: the database is removed from
        // a thread and runtime of their own, and `FORCE` ends the store's connections (they belong to the
        // blocked runtime, so they cannot be closed from here).
        let (name, admin) = (self.name.clone(), self.admin.clone());
        let removed = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime to remove the scratch database");
            runtime.block_on(async move {
                use sqlx::ConnectOptions;
                let mut conn = admin.connect().await?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut conn)
                    .await
                    .map(drop)
            })
        })
        .join();
        if !matches!(removed, Ok(Ok(()))) {
            eprintln!(
                "could not remove the scratch database {}: {removed:?}",
                self.name
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_migration_applies_and_a_scratch_database_is_removed_after() {
        let scratch = scratch().await;
        let applied: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success")
                .fetch_one(&scratch.store.pool)
                .await
                .unwrap();
        assert_eq!(applied as usize, MIGRATOR.iter().count());
        let (name, admin) = (scratch.name.clone(), scratch.admin.clone());
        drop(scratch);
        use sqlx::ConnectOptions;
        let mut conn = admin.connect().await.unwrap();
        let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM pg_database WHERE datname = $1")
            .bind(&name)
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(left, 0, "the scratch database is gone");
    }

    #[tokio::test]
    async fn a_database_that_does_not_answer_is_an_error_naming_it_without_its_password() {
        // A port nothing listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("postgres://ana:secret@127.0.0.1:{port}/watchpost");
        let e = PgStore::connect(&url, 1).await.err().expect("refused");
        let text = e.to_string();
        assert!(
            text.contains(&format!("127.0.0.1:{port}/watchpost")),
            "{text}"
        );
        assert!(!text.contains("secret"), "{text}");
    }
}
