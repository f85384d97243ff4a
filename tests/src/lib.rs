//! Helpers for end-to-end tests: spawn the real host on an ephemeral port with its own data
//! directory and database, build the guest components, and talk to the host over HTTP.
//!
//! Set `SWITCHBOARD_TEST_DATABASE_URL=postgres://...` to run every test against PostgreSQL: each
//! app then gets a database of its own, created on that server and dropped when the test ends.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use reqwest::StatusCode;
use serde_json::Value;
use switchboard_host::app::Server;
use switchboard_host::config::Config;
use tempfile::TempDir;

pub use serde_json::json;

/// Workspace root, for building guests.
fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

/// Builds the guest components once per test process and returns the bytes of `name`.
///
/// Guests build into their own target directory so this nested cargo never waits on the lock of
/// the cargo running the tests.
pub fn guest(name: &str) -> Vec<u8> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        let target = workspace().join("target").join("guest");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let output = std::process::Command::new(cargo)
            .current_dir(workspace())
            .args(["build", "--release", "--target", "wasm32-wasip2", "-p", "hello", "-p", "misbehave", "--target-dir"])
            .arg(&target)
            .output()
            .map_err(|e| format!("could not run cargo: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "building the guests failed (is the wasm32-wasip2 target installed? `rustup target add wasm32-wasip2`):\n{}",
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        Ok(target.join("wasm32-wasip2").join("release"))
    });
    match dir {
        Ok(dir) => std::fs::read(dir.join(format!("{name}.wasm")))
            .unwrap_or_else(|e| panic!("guest {name}.wasm missing: {e}")),
        Err(message) => panic!("{message}"),
    }
}

/// A PostgreSQL database made for one app, dropped at the end of the test.
struct PgDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl PgDatabase {
    async fn create(base: &str) -> PgDatabase {
        use sqlx::Connection;
        let name = format!("sb_test_{}", switchboard_host::sid::new_secret(6));
        let (prefix, _) = base
            .rsplit_once('/')
            .expect("SWITCHBOARD_TEST_DATABASE_URL must name a database, e.g. postgres://postgres@127.0.0.1:5432/test");
        let mut conn = sqlx::PgConnection::connect(base)
            .await
            .expect("connect to the PostgreSQL test server");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .expect("create a test database");
        PgDatabase {
            admin_url: base.to_string(),
            url: format!("{prefix}/{name}"),
            name,
        }
    }

    async fn drop_database(&self) {
        use sqlx::Connection;
        if let Ok(mut conn) = sqlx::PgConnection::connect(&self.admin_url).await {
            let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            )))
            .execute(&mut conn)
            .await;
        }
    }
}

/// A running host plus what it takes to restart it on the same storage.
pub struct TestApp {
    pub url: String,
    pub admin_token: String,
    pub client: reqwest::Client,
    server: Option<Server>,
    config: Config,
    _data_dir: Arc<TempDir>,
    database: Option<Arc<PgDatabase>>,
}

/// Tenant credentials.
#[derive(Debug, Clone)]
pub struct Tenant {
    pub sid: String,
    pub token: String,
}

impl TestApp {
    /// A host with default settings.
    pub async fn spawn() -> TestApp {
        Self::spawn_with(|_| {}).await
    }

    /// A host whose config `adjust` may change (limits, upload size, ...).
    pub async fn spawn_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
        let data_dir = Arc::new(tempfile::tempdir().expect("temp dir"));
        let database = match std::env::var("SWITCHBOARD_TEST_DATABASE_URL") {
            Ok(url) if !url.is_empty() => Some(Arc::new(PgDatabase::create(&url).await)),
            _ => None,
        };
        let mut config = Config {
            bind: "127.0.0.1:0".parse().expect("address"),
            data_dir: data_dir.path().to_path_buf(),
            database_url: database.as_ref().map(|d| d.url.clone()),
            admin_token: Some("test-admin-token".into()),
            ..Config::default()
        };
        config.runtime.max_concurrent_invocations = 32;
        adjust(&mut config);
        Self::start(config, data_dir, database).await
    }

    async fn start(
        config: Config,
        data_dir: Arc<TempDir>,
        database: Option<Arc<PgDatabase>>,
    ) -> TestApp {
        let server = Server::start(config.clone()).await.expect("start the host");
        TestApp {
            url: format!("http://{}", server.addr),
            admin_token: config.admin_token.clone().unwrap_or_default(),
            client: reqwest::Client::new(),
            server: Some(server),
            config,
            _data_dir: data_dir,
            database,
        }
    }

    /// Stops the host and starts a new one on the same data directory and database.
    pub async fn restart(mut self) -> TestApp {
        if let Some(server) = self.server.take() {
            server.stop().await.expect("stop the host");
        }
        let database = self.database.take();
        let data_dir = self._data_dir.clone();
        Self::start(self.config.clone(), data_dir, database).await
    }

    /// Stops the host and removes its database.
    pub async fn shutdown(mut self) {
        if let Some(server) = self.server.take() {
            server.stop().await.expect("stop the host");
        }
        if let Some(database) = self.database.take() {
            database.drop_database().await;
        }
    }

    pub fn path(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// Creates an account through the operator API.
    pub async fn tenant(&self) -> Tenant {
        let response = self
            .client
            .post(self.path("/v1/Accounts"))
            .bearer_auth(&self.admin_token)
            .form(&[("FriendlyName", "test")])
            .send()
            .await
            .expect("create account");
        assert_eq!(response.status(), StatusCode::CREATED);
        let body: Value = response.json().await.expect("json");
        Tenant {
            sid: body["sid"].as_str().expect("sid").to_string(),
            token: body["auth_token"].as_str().expect("auth_token").to_string(),
        }
    }

    /// Sets an account's limits through the operator API, e.g. `[("FuelLimit", "1000")]`.
    pub async fn set_limits(&self, tenant: &Tenant, limits: &[(&str, &str)]) {
        let response = self
            .client
            .post(self.path(&format!("/v1/Accounts/{}", tenant.sid)))
            .bearer_auth(&self.admin_token)
            .form(limits)
            .send()
            .await
            .expect("update account");
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "{}",
            response.text().await.unwrap_or_default()
        );
    }

    pub async fn get(&self, tenant: &Tenant, path: &str) -> (StatusCode, Value) {
        let response = self
            .client
            .get(self.path(path))
            .basic_auth(&tenant.sid, Some(&tenant.token))
            .send()
            .await
            .expect("GET");
        read(response).await
    }

    pub async fn delete(&self, tenant: &Tenant, path: &str) -> StatusCode {
        self.client
            .delete(self.path(path))
            .basic_auth(&tenant.sid, Some(&tenant.token))
            .send()
            .await
            .expect("DELETE")
            .status()
    }

    pub async fn upload(
        &self,
        tenant: &Tenant,
        name: &str,
        kind: &str,
        bytes: Vec<u8>,
    ) -> (StatusCode, Value) {
        let form = reqwest::multipart::Form::new()
            .text("Name", name.to_string())
            .text("Kind", kind.to_string())
            .part(
                "Module",
                reqwest::multipart::Part::bytes(bytes).file_name("module.wasm"),
            );
        let response = self
            .client
            .post(self.path("/v1/Modules"))
            .basic_auth(&tenant.sid, Some(&tenant.token))
            .multipart(form)
            .send()
            .await
            .expect("upload");
        read(response).await
    }

    pub async fn invoke(&self, tenant: &Tenant, name: &str, input: Value) -> (StatusCode, Value) {
        let response = self
            .client
            .post(self.path(&format!("/v1/Modules/{name}/Invoke")))
            .basic_auth(&tenant.sid, Some(&tenant.token))
            .json(&input)
            .send()
            .await
            .expect("invoke");
        read(response).await
    }

    /// Invokes the misbehave module with `to` choosing its behaviour.
    pub async fn misbehave(&self, tenant: &Tenant, to: &str) -> Value {
        let (status, body) = self
            .invoke(tenant, "misbehave", json!({"call": {"to": to}}))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }
}

async fn read(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body)
}
