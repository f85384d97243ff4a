//! Assembles the host from its parts and runs it: database, its writer, runtime, registry, HTTP.

use std::net::SocketAddr;
use std::ops::Deref;
use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;

use crate::accounts::Accounts;
use crate::clock::Clock;
use crate::config::Config;
use crate::events::Events;
use crate::metering::Meter;
use crate::modules::Registry;
use crate::queues::Queues;
use crate::routing::Routing;
use crate::runtime::{HostServices, Runtime};
use crate::sid::new_secret;
use crate::store::Db;
use crate::store::batch::Writer;
use crate::telephony::Telephony;

/// Everything request handlers share.
pub struct App {
    pub config: Config,
    pub db: Db,
    pub accounts: Accounts,
    pub registry: Registry,
    pub runtime: Arc<Runtime>,
    pub meter: Meter,
    /// Group-commit writer for state changes (calls, segments, events).
    pub writer: Writer,
    pub telephony: Telephony,
    pub queues: Queues,
    pub routing: Routing,
    pub events: Events,
    pub media: Arc<crate::media::Media>,
    pub presence: crate::presence::Presence,
    pub admin_token: String,
    pub metrics: PrometheusHandle,
}

/// A cheap handle on the [`App`], as axum state.
#[derive(Clone)]
pub struct AppState(pub Arc<App>);

impl Deref for AppState {
    type Target = App;

    fn deref(&self) -> &App {
        &self.0
    }
}

/// The process-wide Prometheus recorder (the `metrics` facade allows one per process).
fn metrics_handle() -> anyhow::Result<PrometheusHandle> {
    static HANDLE: Mutex<Option<PrometheusHandle>> = Mutex::new(None);
    let mut installed = HANDLE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(handle) = installed.as_ref() {
        return Ok(handle.clone());
    }
    let handle = PrometheusBuilder::new()
        .set_buckets(&[
            0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1,
            0.25, 0.5, 1.0, 2.5, 5.0,
        ])
        .context("invalid histogram buckets")?
        .install_recorder()
        .context("could not install the metrics recorder")?;
    *installed = Some(handle.clone());
    Ok(handle)
}

/// The operator token: from the config (or `SWITCHBOARD_ADMIN_TOKEN`), else the one generated at
/// first start and kept in the data directory. A newly generated token is printed once.
fn admin_token(config: &Config) -> anyhow::Result<String> {
    if let Some(token) = config.admin_token.as_deref().filter(|t| !t.is_empty()) {
        return Ok(token.to_string());
    }
    let path = config.data_dir.join("admin-token");
    if let Ok(token) = std::fs::read_to_string(&path) {
        let token = token.trim().to_string();
        if !token.is_empty() {
            return Ok(token);
        }
    }
    std::fs::create_dir_all(&config.data_dir)?;
    let token = new_secret(24);
    write_private(&path, &token)?;
    println!(
        "Generated the operator admin token (stored in {}):\n  {token}",
        path.display()
    );
    Ok(token)
}

/// Writes a secret readable by the owner only.
pub fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("could not write {}", path.display()))?;
    file.write_all(text.as_bytes())?;
    Ok(())
}

impl App {
    /// Opens the database and starts the background parts; nothing listens yet.
    pub async fn build(config: Config) -> anyhow::Result<AppState> {
        config.database.check()?;
        config.accounts.check()?;
        let metrics = metrics_handle()?;
        let db = Db::open(config.database_url.as_deref(), &config.data_dir).await?;
        let admin_token = admin_token(&config)?;
        let writer = Writer::start(db.clone(), &config.database)?;
        let meter = Meter::new(writer.clone());
        let clock = Clock::new(config.telephony.clock);
        let queues = Queues::new(db.clone(), writer.clone(), clock.clone());
        let routing = Routing::new(
            db.clone(),
            writer.clone(),
            clock.clone(),
            crate::telephony::handler::http_client(&config.telephony),
            queues.clone(),
        );
        let events = Events::new(
            db.clone(),
            writer.clone(),
            clock.clone(),
            config.events.clone(),
        );
        let media = Arc::new(
            crate::media::Media::open(&config.media, &config.data_dir)
                .context("could not open the media cache")?,
        );
        let media_client = crate::media::MediaClient::in_process(media.clone());
        let accounts = Accounts::new(db.clone(), &config.accounts, clock.clone());
        let presence = crate::presence::Presence::new(
            db.clone(),
            writer.clone(),
            clock.clone(),
            config.presence.clone(),
            accounts.clone(),
            routing.clone(),
        );
        let services = Arc::new(HostServices {
            presence: presence.clone(),
            media: media_client.clone(),
            db: db.clone(),
            queues: queues.clone(),
            routing: routing.clone(),
            events: events.clone(),
        });
        let runtime = Arc::new(Runtime::new(
            &config.runtime,
            config.data_dir.join("artifacts"),
            services,
            meter.clone(),
        )?);
        let registry = Registry::new(
            db.clone(),
            runtime.clone(),
            config.modules.clone(),
            config.limits,
        );
        routing.attach(registry.clone(), accounts.clone(), runtime.clone());
        events.attach(registry.clone(), accounts.clone(), runtime.clone());
        events.start().await?;
        routing.recover().await?;
        let telephony = Telephony::new(
            db.clone(),
            writer.clone(),
            clock,
            config.telephony.clone(),
            registry.clone(),
            runtime.clone(),
            accounts.clone(),
            queues.clone(),
            routing.clone(),
            media_client,
            presence.clone(),
        );
        routing.attach_telephony(telephony.handle());
        presence.attach_telephony(telephony.handle());
        telephony.recover().await?;
        let app = App {
            accounts,
            writer,
            telephony,
            queues,
            routing,
            events,
            media,
            presence,
            config,
            db,
            registry,
            runtime,
            meter,
            admin_token,
            metrics,
        };
        Ok(AppState(Arc::new(app)))
    }
}

/// A host bound to its port and serving.
pub struct Server {
    pub state: AppState,
    pub addr: SocketAddr,
    shutdown: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Server {
    /// Binds `config.bind` (port 0 picks a free port) and serves until [`Server::stop`] or until
    /// `until` resolves.
    pub async fn start(config: Config) -> anyhow::Result<Server> {
        let state = App::build(config).await?;
        let listener = TcpListener::bind(state.config.bind)
            .await
            .with_context(|| format!("could not listen on {}", state.config.bind))?;
        let addr = listener.local_addr()?;
        let router = crate::api::router(state.clone());
        let (shutdown, mut stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = stopped.wait_for(|stop| *stop).await;
                })
                .await
        });
        state.registry.warm_up();
        tracing::info!(%addr, "switchboard is listening");
        Ok(Server {
            state,
            addr,
            shutdown,
            task,
        })
    }

    /// Stops accepting requests, lets in-flight ones finish, hangs up live calls, commits pending
    /// changes and usage, and closes the database.
    pub async fn stop(self) -> anyhow::Result<()> {
        // Live event streams never end by themselves; end them so the graceful shutdown can finish.
        self.state.events.shutdown();
        // Client sockets neither: close them, which also takes their endpoints offline.
        self.state
            .presence
            .stop(std::time::Duration::from_secs(2))
            .await;
        let _ = self.shutdown.send(true);
        self.task.await??;
        self.state
            .telephony
            .hang_up_all(std::time::Duration::from_secs(5))
            .await;
        self.state.writer.flush().await;
        self.state.meter.flush().await;
        self.state.db.close().await;
        Ok(())
    }
}
