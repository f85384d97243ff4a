//! The `switchboard` command: runs the host, and talks to a running host for the common operator and
//! tenant actions so nobody needs curl for them.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use switchboard_host::app::{Server, write_private};
use switchboard_host::config::Config;
use switchboard_host::runtime::World;
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "switchboard",
    version,
    about = "Multi-tenant communications platform extended with WebAssembly"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the host.
    Serve(ServeArgs),
    /// Operator: create and list accounts.
    #[command(subcommand)]
    Account(AccountCommand),
    /// Tenant: upload, list and try modules.
    #[command(subcommand)]
    Module(ModuleCommand),
    /// Tenant: usage totals per module and version.
    Usage(UsageArgs),
    /// Tenant: create, list and delete the API keys that sign access tokens.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Mint an access token for a client, offline, from an API key (for development: production
    /// backends mint their own, e.g. with the reference platform's helper libraries).
    Token(TokenArgs),
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Create a key and print its sid and secret (the secret is shown only this once).
    Create {
        #[command(flatten)]
        credentials: TenantCredentials,
        /// A name for people.
        #[arg(long, default_value = "")]
        name: String,
    },
    /// List the account's keys.
    List {
        #[command(flatten)]
        credentials: TenantCredentials,
    },
    /// Delete a key, revoking every token it signed.
    Delete {
        #[command(flatten)]
        credentials: TenantCredentials,
        sid: String,
    },
}

#[derive(Args)]
struct TokenArgs {
    #[arg(long, env = "SWITCHBOARD_ACCOUNT_SID")]
    account_sid: String,
    /// The API key's sid (SK...).
    #[arg(long, env = "SWITCHBOARD_API_KEY_SID")]
    key_sid: String,
    /// The API key's secret, as printed when the key was created.
    #[arg(long, env = "SWITCHBOARD_API_KEY_SECRET", hide_env_values = true)]
    key_secret: String,
    /// The client identity the token registers as.
    #[arg(long)]
    identity: String,
    /// Leave out the incoming grant (the client then cannot register to receive calls).
    #[arg(long)]
    no_incoming: bool,
    /// Let the client place calls that run this application (AP...).
    #[arg(long)]
    outgoing_application: Option<String>,
    /// Seconds the token is valid, at most 86400.
    #[arg(long, default_value_t = 3600)]
    ttl: i64,
}

#[derive(Args)]
struct ServeArgs {
    /// TOML configuration file; flags and environment variables override it.
    #[arg(long, env = "SWITCHBOARD_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "SWITCHBOARD_BIND")]
    bind: Option<std::net::SocketAddr>,
    /// Directory for the SQLite database, compiled artifacts and the admin token [default: ./data].
    #[arg(long, env = "SWITCHBOARD_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// postgres://... to use PostgreSQL instead of SQLite.
    #[arg(long, env = "DATABASE_URL")]
    database_url: Option<String>,
    /// Operator token; generated and stored in the data directory when not given.
    #[arg(long, env = "SWITCHBOARD_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// Create (or reuse) a demo account and upload this module to it: NAME=KIND:PATH, e.g.
    /// hello=telephony-handler:target/guest/wasm32-wasip2/release/hello.wasm. Repeatable.
    #[arg(long = "demo-module")]
    demo_modules: Vec<String>,
    /// Log as JSON lines instead of text.
    #[arg(long, env = "SWITCHBOARD_LOG_JSON")]
    log_json: bool,
}

/// Where the host is and who is asking.
#[derive(Args)]
struct Remote {
    /// Base URL of the host.
    #[arg(long, env = "SWITCHBOARD_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
}

#[derive(Args)]
struct TenantCredentials {
    #[command(flatten)]
    remote: Remote,
    #[arg(long, env = "SWITCHBOARD_ACCOUNT_SID")]
    account_sid: String,
    #[arg(long, env = "SWITCHBOARD_AUTH_TOKEN", hide_env_values = true)]
    auth_token: String,
}

#[derive(Subcommand)]
enum AccountCommand {
    /// Create an account and print its sid and auth token.
    Create {
        #[command(flatten)]
        remote: Remote,
        #[arg(long, env = "SWITCHBOARD_ADMIN_TOKEN", hide_env_values = true)]
        admin_token: String,
        /// A name for people.
        #[arg(long, default_value = "")]
        name: String,
    },
    /// List accounts.
    List {
        #[command(flatten)]
        remote: Remote,
        #[arg(long, env = "SWITCHBOARD_ADMIN_TOKEN", hide_env_values = true)]
        admin_token: String,
    },
}

#[derive(Subcommand)]
enum ModuleCommand {
    /// Upload a new version of a module.
    Upload {
        #[command(flatten)]
        credentials: TenantCredentials,
        /// Module name.
        #[arg(long)]
        name: String,
        /// telephony-handler, wait-state, workflow-rules or event-subscriber.
        #[arg(long)]
        kind: String,
        /// The component (.wasm).
        file: PathBuf,
    },
    /// List the latest version of each module.
    List {
        #[command(flatten)]
        credentials: TenantCredentials,
    },
    /// Run a module once with a JSON input (see the README) and print its output and usage.
    Invoke {
        #[command(flatten)]
        credentials: TenantCredentials,
        name: String,
        /// JSON input; empty uses the world's defaults.
        #[arg(long, default_value = "")]
        input: String,
    },
}

#[derive(Args)]
struct UsageArgs {
    #[command(flatten)]
    credentials: TenantCredentials,
    /// RFC 3339 start (inclusive).
    #[arg(long)]
    start: Option<String>,
    /// RFC 3339 end (exclusive).
    #[arg(long)]
    end: Option<String>,
    #[arg(long)]
    module: Option<String>,
}

fn main() -> ExitCode {
    switchboard_host::memory::limit_arenas();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: could not start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve(args).await,
        Command::Account(AccountCommand::Create {
            remote,
            admin_token,
            name,
        }) => {
            let response = reqwest::Client::new()
                .post(format!("{}/v1/Accounts", remote.url))
                .bearer_auth(admin_token)
                .form(&[("FriendlyName", name)])
                .send()
                .await;
            print_response(response).await
        }
        Command::Account(AccountCommand::List {
            remote,
            admin_token,
        }) => {
            let response = reqwest::Client::new()
                .get(format!("{}/v1/Accounts", remote.url))
                .bearer_auth(admin_token)
                .send()
                .await;
            print_response(response).await
        }
        Command::Module(ModuleCommand::Upload {
            credentials,
            name,
            kind,
            file,
        }) => {
            let bytes = std::fs::read(&file)
                .with_context(|| format!("could not read {}", file.display()))?;
            let form = reqwest::multipart::Form::new()
                .text("Name", name)
                .text("Kind", kind)
                .part(
                    "Module",
                    reqwest::multipart::Part::bytes(bytes).file_name("module.wasm"),
                );
            let response = tenant(&credentials, reqwest::Method::POST, "/v1/Modules")
                .multipart(form)
                .send()
                .await;
            print_response(response).await
        }
        Command::Module(ModuleCommand::List { credentials }) => {
            let response = tenant(&credentials, reqwest::Method::GET, "/v1/Modules")
                .send()
                .await;
            print_response(response).await
        }
        Command::Module(ModuleCommand::Invoke {
            credentials,
            name,
            input,
        }) => {
            let response = tenant(
                &credentials,
                reqwest::Method::POST,
                &format!("/v1/Modules/{name}/Invoke"),
            )
            .header("content-type", "application/json")
            .body(input)
            .send()
            .await;
            print_response(response).await
        }
        Command::Key(KeyCommand::Create { credentials, name }) => {
            let response = tenant(&credentials, reqwest::Method::POST, "/v1/Keys")
                .form(&[("FriendlyName", name)])
                .send()
                .await;
            print_response(response).await
        }
        Command::Key(KeyCommand::List { credentials }) => {
            let response = tenant(&credentials, reqwest::Method::GET, "/v1/Keys")
                .send()
                .await;
            print_response(response).await
        }
        Command::Key(KeyCommand::Delete { credentials, sid }) => {
            let response = tenant(
                &credentials,
                reqwest::Method::DELETE,
                &format!("/v1/Keys/{sid}"),
            )
            .send()
            .await;
            print_response(response).await
        }
        Command::Token(args) => {
            if !(1..=switchboard_host::presence::token::MAX_LIFETIME_SECONDS).contains(&args.ttl) {
                bail!("--ttl must be from 1 to 86400 seconds");
            }
            let spec = switchboard_host::presence::token::TokenSpec {
                account_sid: args.account_sid,
                key_sid: args.key_sid,
                key_secret: args.key_secret,
                identity: args.identity,
                incoming: !args.no_incoming,
                outgoing_application_sid: args.outgoing_application,
                issued_at: switchboard_host::store::now_ms() / 1000,
                ttl_seconds: args.ttl,
            };
            println!("{}", switchboard_host::presence::token::mint(&spec)?);
            Ok(())
        }
        Command::Usage(args) => {
            let mut query = Vec::new();
            if let Some(start) = args.start {
                query.push(("StartTime", start));
            }
            if let Some(end) = args.end {
                query.push(("EndTime", end));
            }
            if let Some(module) = args.module {
                query.push(("ModuleName", module));
            }
            let response = tenant(&args.credentials, reqwest::Method::GET, "/v1/Usage/Modules")
                .query(&query)
                .send()
                .await;
            print_response(response).await
        }
    }
}

fn tenant(
    credentials: &TenantCredentials,
    method: reqwest::Method,
    path: &str,
) -> reqwest::RequestBuilder {
    reqwest::Client::new()
        .request(method, format!("{}{path}", credentials.remote.url))
        .basic_auth(&credentials.account_sid, Some(&credentials.auth_token))
}

/// Prints the body as pretty JSON; an error status becomes the command's error.
async fn print_response(response: reqwest::Result<reqwest::Response>) -> anyhow::Result<()> {
    let response = response
        .context("could not reach the host: is `switchboard serve` running, and is --url right?")?;
    let status = response.status();
    let text = response
        .text()
        .await
        .context("could not read the host's answer")?;
    let pretty = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|value| serde_json::to_string_pretty(&value).ok())
        .unwrap_or(text);
    if status.is_success() {
        println!("{pretty}");
        Ok(())
    } else {
        bail!("the host answered {status}:\n{pretty}")
    }
}

fn init_logging(json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    init_logging(args.log_json);
    let mut config = match &args.config {
        Some(path) => Config::from_file(path)?,
        None => Config::default(),
    };
    if let Some(bind) = args.bind {
        config.bind = bind;
    }
    if let Some(dir) = args.data_dir {
        config.data_dir = dir;
    }
    if args.database_url.is_some() {
        config.database_url = args.database_url;
    }
    if args.admin_token.is_some() {
        config.admin_token = args.admin_token;
    }
    let server = Server::start(config).await?;
    if !args.demo_modules.is_empty() {
        demo(&server, &args.demo_modules).await?;
    }
    shutdown_signal().await;
    tracing::info!("shutting down: finishing in-flight requests and committing usage");
    server.stop().await
}

/// Resolves on ctrl-c or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    let mut terminate =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = interrupt => {}
        _ = async {
            match terminate.as_mut() {
                Some(signal) => { signal.recv().await; }
                None => std::future::pending::<()>().await,
            }
        } => {}
    }
}

/// Sets up the quickstart: a demo account (kept across restarts in the data directory) with the
/// given modules uploaded, then prints how to use it.
async fn demo(server: &Server, specs: &[String]) -> anyhow::Result<()> {
    let state = &server.state;
    let path = state.config.data_dir.join("demo-account");
    let saved = std::fs::read_to_string(&path).ok().and_then(|text| {
        let (sid, token) = text.trim().split_once(':')?;
        Some((sid.to_string(), token.to_string()))
    });
    let existing = match &saved {
        Some((sid, token)) => state
            .accounts
            .authenticate(sid, token)
            .await?
            .map(|a| (a, token.clone())),
        None => None,
    };
    let (account, token) = match existing {
        Some(found) => found,
        None => {
            let (account, token) = state.accounts.create("demo").await?;
            write_private(&path, &format!("{}:{token}", account.sid))?;
            (account, token)
        }
    };
    for spec in specs {
        let (name, rest) = spec
            .split_once('=')
            .with_context(|| format!("--demo-module {spec:?} must look like NAME=KIND:PATH"))?;
        let (kind, file) = rest
            .split_once(':')
            .with_context(|| format!("--demo-module {spec:?} must look like NAME=KIND:PATH"))?;
        let world = World::parse(kind)
            .with_context(|| format!("unknown kind {kind:?} in --demo-module"))?;
        let bytes = std::fs::read(file).with_context(|| format!("could not read {file}"))?;
        let sha = {
            use sha2::Digest;
            hex::encode(sha2::Sha256::digest(&bytes))
        };
        let latest = state.registry.get(&account.sid, name, None).await?;
        if latest.is_some_and(|m| m.sha256 == sha) {
            continue;
        }
        state
            .registry
            .upload(&account.sid, name, world, bytes)
            .await
            .map_err(|error| {
                anyhow::anyhow!("could not upload the demo module {name}: {}", error.message)
            })?;
    }
    let url = format!("http://{}", server.addr);
    println!(
        "\nswitchboard is running at {url}\n\
         Demo account (saved in {path}):\n  \
         export SWITCHBOARD_ACCOUNT_SID={sid}\n  export SWITCHBOARD_AUTH_TOKEN={token}\n\
         Try the hello module:\n  \
         curl -s -u {sid}:{token} -X POST {url}/v1/Modules/hello/Invoke -d '{{\"call\": {{\"from\": \"+15550001\"}}}}'\n\
         Operator token: SWITCHBOARD_ADMIN_TOKEN, or the file {admin}\n",
        path = path.display(),
        sid = account.sid,
        admin = state.config.data_dir.join("admin-token").display(),
    );
    Ok(())
}
