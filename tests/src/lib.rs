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
            .args(["build", "--release", "--target", "wasm32-wasip2", "-p", "hello", "-p", "misbehave", "-p", "ivr", "-p", "ivr-desk", "-p", "hold-music", "-p", "waiter", "-p", "queue-agent", "-p", "trapping-rule", "-p", "skills-router", "-p", "assigner", "-p", "audit-subscriber", "--target-dir"])
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
    /// A host running on a runtime of its own, which [`TestApp::crash`] can drop at once.
    isolated: Option<Isolated>,
    config: Config,
    _data_dir: Arc<TempDir>,
    database: Option<Arc<PgDatabase>>,
}

/// A host on its own thread and tokio runtime.
struct Isolated {
    crash: std::sync::mpsc::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

/// A write lock on the host's database held by a test; see [`TestApp::hold_write_lock`].
pub struct WriteLock(sqlx::pool::PoolConnection<sqlx::Any>);

impl WriteLock {
    pub async fn release(mut self) {
        sqlx::raw_sql("ROLLBACK")
            .execute(&mut *self.0)
            .await
            .expect("release the write lock");
    }
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
        // Tests serve media from loopback HTTP servers.
        config.media.allow_private_addresses = true;
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
            isolated: None,
            config,
            _data_dir: data_dir,
            database,
        }
    }

    /// Like [`TestApp::spawn_with`], but the host runs on a thread and runtime of its own, so that
    /// [`TestApp::crash`] can stop it the way `kill -9` would.
    pub async fn spawn_crashable(adjust: impl FnOnce(&mut Config)) -> TestApp {
        let mut app = Self::spawn_with(adjust).await;
        if let Some(server) = app.server.take() {
            server.stop().await.expect("stop the host");
        }
        let config = app.config.clone();
        let (started, addr) = std::sync::mpsc::channel();
        let (crash, crashed) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("a runtime for the host");
            let server = runtime
                .block_on(Server::start(config))
                .expect("start the host");
            let _ = started.send(server.addr);
            let _ = crashed.recv();
            // Every task (sessions, the writers, the HTTP server) is dropped wherever it is:
            // what was committed stays, what was waiting for a commit is lost.
            runtime.shutdown_background();
            drop(server);
        });
        let addr = tokio::task::spawn_blocking(move || addr.recv())
            .await
            .expect("join")
            .expect("the host started");
        app.url = format!("http://{addr}");
        app.isolated = Some(Isolated { crash, thread });
        app
    }

    /// Stops a host made by [`TestApp::spawn_crashable`] abruptly, with nothing flushed and no
    /// call ended, then starts a new one on the same data directory and database.
    pub async fn crash_and_restart(mut self) -> TestApp {
        let isolated = self.isolated.take().expect("a crashable host");
        let _ = isolated.crash.send(());
        tokio::task::spawn_blocking(move || isolated.thread.join())
            .await
            .expect("join")
            .expect("the host's thread ended");
        let database = self.database.take();
        let data_dir = self._data_dir.clone();
        Self::start(self.config.clone(), data_dir, database).await
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

    /// The host's data directory (database, artifacts, media cache).
    pub fn data_dir(&self) -> &std::path::Path {
        self._data_dir.path()
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

impl TestApp {
    /// POSTs a form as the tenant.
    pub async fn post_form(
        &self,
        tenant: &Tenant,
        path: &str,
        form: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        let response = self
            .client
            .post(self.path(path))
            .basic_auth(&tenant.sid, Some(&tenant.token))
            .form(form)
            .send()
            .await
            .expect("POST");
        read(response).await
    }

    /// GETs an operator endpoint.
    pub async fn operator_get(&self, path: &str) -> (StatusCode, Value) {
        let response = self
            .client
            .get(self.path(path))
            .bearer_auth(&self.admin_token)
            .send()
            .await
            .expect("GET");
        read(response).await
    }

    /// Suspends an account in the host's database without going through the host, as another
    /// host sharing the database would.
    pub async fn suspend_elsewhere(&self, account_sid: &str) {
        let server = self
            .server
            .as_ref()
            .expect("a host running in this runtime");
        let done = sqlx::query("UPDATE accounts SET status = 'suspended' WHERE sid = $1")
            .bind(account_sid)
            .execute(server.state.db.pool())
            .await
            .expect("suspend the account in the database");
        assert_eq!(done.rows_affected(), 1);
    }

    /// State changes waiting for this host's writer now. Read from the host itself: the
    /// `/metrics` gauge is shared by every host of the test process.
    pub fn writer_backlog(&self) -> usize {
        self.server
            .as_ref()
            .expect("a host running in this runtime")
            .state
            .writer
            .backlog()
    }

    /// Holds the database's write lock from outside the host, as another program's long
    /// transaction would, until [`WriteLock::release`]: on SQLite an immediate transaction (the
    /// host's writer waits up to its 10 s busy timeout), on PostgreSQL an exclusive lock on the
    /// workspaces table. Release it within a few seconds.
    pub async fn hold_write_lock(&self) -> WriteLock {
        let server = self
            .server
            .as_ref()
            .expect("a host running in this runtime");
        let mut conn = server
            .state
            .db
            .pool()
            .acquire()
            .await
            .expect("a database connection");
        let statements: &[&str] = if server.state.db.sqlite_path().is_some() {
            &["BEGIN IMMEDIATE"]
        } else {
            &["BEGIN", "LOCK TABLE workspaces IN EXCLUSIVE MODE"]
        };
        for statement in statements {
            sqlx::raw_sql(sqlx::AssertSqlSafe(*statement))
                .execute(&mut *conn)
                .await
                .expect("take the write lock");
        }
        WriteLock(conn)
    }

    /// Moves the host's manual clock forward.
    pub async fn advance_clock(&self, ms: i64) -> Value {
        let response = self
            .client
            .post(self.path("/v1/Sim/Clock"))
            .bearer_auth(&self.admin_token)
            .form(&[("AdvanceMs", ms.to_string())])
            .send()
            .await
            .expect("advance the clock");
        let (status, body) = read(response).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    /// The tenant's `2010-04-01` path prefix.
    pub fn account_path(&self, tenant: &Tenant, rest: &str) -> String {
        format!("/2010-04-01/Accounts/{}/{rest}", tenant.sid)
    }

    /// Provisions `number` for the tenant with the given voice settings (e.g. `("VoiceUrl", ..)`).
    pub async fn buy_number(
        &self,
        tenant: &Tenant,
        number: &str,
        settings: &[(&str, &str)],
    ) -> Value {
        let mut form = vec![("PhoneNumber", number)];
        form.extend_from_slice(settings);
        let (status, body) = self
            .post_form(
                tenant,
                &self.account_path(tenant, "IncomingPhoneNumbers.json"),
                &form,
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body
    }

    /// Places a sim call and returns its sid.
    pub async fn place_call(&self, tenant: &Tenant, from: &str, to: &str) -> String {
        let (status, body) = self
            .post_form(tenant, "/v1/Sim/Calls", &[("From", from), ("To", to)])
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["sid"].as_str().expect("call sid").to_string()
    }

    /// Sends a sim action (`Digits`, `Hangup`, `Answer`, ...) to a call.
    pub async fn sim(
        &self,
        tenant: &Tenant,
        call_sid: &str,
        action: &str,
        form: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        self.post_form(tenant, &format!("/v1/Sim/Calls/{call_sid}/{action}"), form)
            .await
    }

    /// Polls a call's timeline until `done` holds for it. Gives up (panics, showing the timeline)
    /// after a generous bound, so a broken session fails the test instead of hanging it.
    pub async fn wait_for(
        &self,
        tenant: &Tenant,
        call_sid: &str,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let mut last = Value::Null;
        for _ in 0..2_000 {
            let (status, body) = self
                .get(tenant, &format!("/v1/Sim/Calls/{call_sid}/Timeline"))
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            if done(&body) {
                return body;
            }
            last = body;
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("the call never reached the expected state; its timeline: {last:#}");
    }

    /// Waits until the call has ended and its session is gone, and returns its timeline.
    pub async fn wait_ended(&self, tenant: &Tenant, call_sid: &str) -> Value {
        self.wait_for(tenant, call_sid, |t| t["live"] == json!(false))
            .await
    }
}

/// POSTs a form as the tenant and answers the body, failing the test unless it succeeded.
pub async fn post(app: &TestApp, tenant: &Tenant, path: &str, form: &[(&str, &str)]) -> Value {
    let (status, body) = app.post_form(tenant, path, form).await;
    assert!(status.is_success(), "POST {path} {form:?}: {status} {body}");
    body
}

/// GETs as the tenant and answers the body, failing the test unless it was 200.
pub async fn get(app: &TestApp, tenant: &Tenant, path: &str) -> Value {
    let (status, body) = app.get(tenant, path).await;
    assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
    body
}

/// The `type` of each timeline entry, in order.
pub fn experience_types(timeline: &Value) -> Vec<String> {
    timeline["timeline"]
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .filter_map(|e| e["type"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether the timeline has an entry of `kind` (e.g. `gather`).
pub fn has_experience(timeline: &Value, kind: &str) -> bool {
    experience_types(timeline).iter().any(|t| t == kind)
}

/// A request an [`HttpApp`] received.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub params: Vec<(String, String)>,
}

impl Received {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// How an [`HttpApp`] answers one path.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub content_type: Option<&'static str>,
    pub body: Vec<u8>,
    /// Seconds to wait before answering (to trip the host's timeout).
    pub delay_ms: u64,
}

impl Reply {
    pub fn twiml(body: &str) -> Reply {
        Reply {
            status: 200,
            content_type: Some("text/xml"),
            body: body.as_bytes().to_vec(),
            delay_ms: 0,
        }
    }

    pub fn audio(content_type: &'static str, body: Vec<u8>) -> Reply {
        Reply {
            status: 200,
            content_type: Some(content_type),
            body,
            delay_ms: 0,
        }
    }
}

/// A real HTTP server standing in for a tenant's web application (TwiML and status callbacks).
pub struct HttpApp {
    pub url: String,
    received: Arc<std::sync::Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
}

impl HttpApp {
    /// Serves `routes` (path → reply); unknown paths answer 404. Records every request.
    pub async fn start(routes: Vec<(&str, Reply)>) -> HttpApp {
        use axum::extract::Request;
        let routes: Arc<std::collections::HashMap<String, Reply>> = Arc::new(
            routes
                .into_iter()
                .map(|(path, reply)| (path.to_string(), reply))
                .collect(),
        );
        let received = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = received.clone();
        let app = axum::Router::new().fallback(move |request: Request| {
            let routes = routes.clone();
            let seen = seen.clone();
            async move {
                let path = request.uri().path().to_string();
                let query = request.uri().query().unwrap_or_default().to_string();
                let body = axum::body::to_bytes(request.into_body(), 1 << 20)
                    .await
                    .unwrap_or_default();
                let mut params: Vec<(String, String)> =
                    serde_urlencoded::from_str(&query).unwrap_or_default();
                params.extend(
                    serde_urlencoded::from_bytes::<Vec<(String, String)>>(&body)
                        .unwrap_or_default(),
                );
                seen.lock().expect("lock").push(Received {
                    path: path.clone(),
                    params,
                });
                let Some(reply) = routes.get(&path).cloned() else {
                    return axum::response::Response::builder()
                        .status(404)
                        .body(axum::body::Body::from("not found"))
                        .expect("response");
                };
                if reply.delay_ms > 0 {
                    tokio::time::sleep(std::time::Duration::from_millis(reply.delay_ms)).await;
                }
                let mut builder = axum::response::Response::builder().status(reply.status);
                if let Some(content_type) = reply.content_type {
                    builder = builder.header("content-type", content_type);
                }
                builder
                    .body(axum::body::Body::from(reply.body))
                    .expect("response")
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the HTTP app");
        let addr = listener.local_addr().expect("address");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        HttpApp {
            url: format!("http://{addr}"),
            received,
            task,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// Requests received so far, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().expect("lock").clone()
    }
}

impl Drop for HttpApp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn read(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body)
}
