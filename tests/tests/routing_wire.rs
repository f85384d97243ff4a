//! Wire compatibility with the reference's SDKs, two ways, each running the reference's
//! quickstart sequence against a real host:
//!
//! - a TaskRouter client written in Python with only the standard library, behaving like
//!   twilio-python (form-encoded PascalCase bodies, repeated keys for arrays, `If-Match`, Basic
//!   auth, paging by GETting `meta.next_page_url` as an absolute URL), whose checks of the wire
//!   format are its own;
//! - the official twilio-python SDK itself, pinned, installed into a virtual environment under
//!   `target/` the first time (from PyPI), with only its base URLs pointed here; it also checks
//!   the account, authenticates with an API key, and drives the voice resources.
//!
//! The scripts are in `tests/python/`. `python3` must be installed: without it, or without a way
//! to install the SDK, these tests fail rather than skip, since CI has both.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use switchboard_tests::{Tenant, TestApp};

/// How long a Python script may take before the test gives up on it.
const SCRIPT_DEADLINE: Duration = Duration::from_secs(180);

/// The SDK release the second test runs; a newer one is a deliberate change here.
const TWILIO_SDK: &str = "twilio==9.13.0";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stdlib_python_client_speaking_the_reference_wire_format_runs_the_quickstart() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    run_script(
        &app,
        &tenant,
        Path::new("python3"),
        "test_taskrouter_wire.py",
    )
    .await;
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_twilio_python_sdk_runs_the_quickstart_unchanged() {
    let python = twilio_python().await;
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;
    run_script(&app, &tenant, &python, "test_twilio_sdk.py").await;
    app.shutdown().await;
}

/// An interpreter with the pinned SDK: a virtual environment under the workspace's `target/`,
/// made and filled the first time.
async fn twilio_python() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("target")
        .join("twilio-python");
    let python = root.join("bin").join("python");
    let sdk = TWILIO_SDK.replace("==", "-");
    let marker = root.join(format!("{sdk}.installed"));
    if marker.is_file() {
        return python;
    }
    let steps: [(&Path, Vec<&str>); 2] = [
        (Path::new("python3"), vec!["-m", "venv", "--clear"]),
        (&python, vec!["-m", "pip", "install", "--quiet", TWILIO_SDK]),
    ];
    for (program, args) in steps {
        let mut command = tokio::process::Command::new(program);
        command.args(&args);
        if program == Path::new("python3") {
            command.arg(&root);
        }
        let output = tokio::time::timeout(Duration::from_secs(300), command.output())
            .await
            .unwrap_or_else(|_| panic!("{} {args:?} took more than 5 minutes", program.display()))
            .unwrap_or_else(|error| {
                panic!(
                    "could not run {} ({error}): this test needs python3 with venv and pip, and \
                     PyPI (or a local wheel index) to install {TWILIO_SDK}",
                    program.display()
                )
            });
        assert!(
            output.status.success(),
            "installing {TWILIO_SDK} into {} failed: {} {args:?}\n{}{}",
            root.display(),
            program.display(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    std::fs::write(&marker, TWILIO_SDK).expect("mark the SDK installed");
    python
}

/// Runs `tests/python/{script}` with `python` against the host as `tenant`; it must print
/// `ALL STEPS PASSED` and exit 0.
async fn run_script(app: &TestApp, tenant: &Tenant, python: &Path, script: &str) {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("python")
        .join(script);
    assert!(
        script.is_file(),
        "the wire test script is missing: {}",
        script.display()
    );

    let mut command = tokio::process::Command::new(python);
    command
        .arg("-B")
        .arg(&script)
        .current_dir(script.parent().expect("the script's directory"))
        .env("SWITCHBOARD_URL", &app.url)
        .env("SWITCHBOARD_ACCOUNT_SID", &tenant.sid)
        .env("SWITCHBOARD_AUTH_TOKEN", &tenant.token)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONUNBUFFERED", "1")
        // The client talks to 127.0.0.1 directly; keep any proxy settings out of the way.
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = match command.spawn() {
        Ok(child) => child,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => panic!(
            "{} is not installed (or not on PATH): this test needs it to run the \
             TaskRouter clients in tests/python/. Install Python 3.11+ \
             (e.g. `apt-get install python3`) and run the test again.",
            python.display()
        ),
        Err(error) => panic!("could not start {}: {error}", python.display()),
    };
    // The host runs on this test's runtime; awaiting the child keeps it serving meanwhile.
    let output = match tokio::time::timeout(SCRIPT_DEADLINE, child.wait_with_output()).await {
        Ok(output) => output.expect("wait for python3"),
        Err(_) => panic!(
            "the Python wire test did not finish within {}s",
            SCRIPT_DEADLINE.as_secs()
        ),
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the Python wire test failed ({}):\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}",
        output.status
    );
    println!("{stdout}");
    assert!(
        stdout.contains("ALL STEPS PASSED"),
        "the Python wire test exited 0 without finishing:\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}"
    );
}
