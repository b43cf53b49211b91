//! Throw-away places on the machine's real engines, removed when a test ends: a PostgreSQL database
//! (127.0.0.1:5432, or `WATCHPOST_TEST_POSTGRES`) and a JetStream stream (127.0.0.1:4222, or
//! `WATCHPOST_TEST_NATS`), so runs and tests never see each other's data.

use server::BusSection;
use sqlx::ConnectOptions;
use sqlx::postgres::PgConnectOptions;
use std::str::FromStr;

/// A database of the test's own, dropped (with its connections) when this is.
pub struct ScratchDatabase {
    pub url: String,
    name: String,
    admin: PgConnectOptions,
}

impl ScratchDatabase {
    pub async fn new() -> ScratchDatabase {
        let admin_url = std::env::var("WATCHPOST_TEST_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let admin = PgConnectOptions::from_str(&admin_url).expect("a PostgreSQL URL");
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros());
        let name = format!("watchpost_test_server_{}_{stamp}", std::process::id());
        let mut conn = admin
            .connect()
            .await
            .expect("the machine's PostgreSQL answers");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .expect("a database of the test's own");
        let url = format!(
            "postgres://{}@{}:{}/{name}",
            admin.get_username(),
            admin.get_host(),
            admin.get_port()
        );
        ScratchDatabase { url, name, admin }
    }

    pub async fn count(&self, table: &str) -> i64 {
        let mut conn = self
            .admin
            .clone()
            .database(&self.name)
            .connect()
            .await
            .expect("the scratch database answers");
        sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(&mut conn)
            .await
            .expect("the table is there")
    }
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        let (name, admin) = (self.name.clone(), self.admin.clone());
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async move {
                if let Ok(mut conn) = admin.connect().await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut conn)
                        .await;
                }
            });
        })
        .join();
    }
}

/// A stream of the test's own on the machine's NATS, deleted when this is dropped.
pub struct ScratchStream {
    pub url: String,
    pub name: String,
}

impl ScratchStream {
    pub fn new(tag: &str) -> ScratchStream {
        let url =
            std::env::var("WATCHPOST_TEST_NATS").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros());
        let name = format!("wp_test_{tag}_{}_{stamp}", std::process::id());
        ScratchStream { url, name }
    }

    pub fn section(&self) -> BusSection {
        BusSection {
            url: self.url.clone(),
            stream: self.name.clone(),
        }
    }

    /// Deletes the stream now, as a NATS that lost its storage would.
    pub async fn delete(&self) {
        let client = async_nats::connect(&self.url).await.expect("NATS answers");
        let js = async_nats::jetstream::new(client);
        let _ = js.delete_stream(&self.name).await;
    }
}

impl Drop for ScratchStream {
    fn drop(&mut self) {
        let (url, name) = (self.url.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async move {
                if let Ok(client) = async_nats::connect(&url).await {
                    let js = async_nats::jetstream::new(client);
                    // The events, and the leases' bucket the instances made beside them.
                    let _ = js.delete_stream(&name).await;
                    let _ = js.delete_stream(format!("KV_{name}_leases")).await;
                }
            });
        })
        .join();
    }
}
