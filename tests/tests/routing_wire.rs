//! Wire compatibility with the reference's SDKs: a TaskRouter client written in Python with only
//! the standard library, behaving like twilio-python (form-encoded PascalCase bodies, repeated
//! keys for arrays, `If-Match`, Basic auth, paging by GETting `meta.next_page_url` as an absolute
//! URL), runs the reference's quickstart sequence against a real host.
//!
//! The client and the script are in `tests/python/`. `python3` must be installed: without it this
//! test fails rather than skips, since CI installs it.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use switchboard_tests::TestApp;

/// How long the Python script may take before the test gives up on it.
const SCRIPT_DEADLINE: Duration = Duration::from_secs(180);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stdlib_python_client_speaking_the_reference_wire_format_runs_the_quickstart() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant().await;

    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("python")
        .join("test_taskrouter_wire.py");
    assert!(
        script.is_file(),
        "the wire test script is missing: {}",
        script.display()
    );

    let mut command = tokio::process::Command::new("python3");
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
            "python3 is not installed (or not on PATH): this test needs it to run the \
             standard-library TaskRouter client in tests/python/. Install Python 3.11+ \
             (e.g. `apt-get install python3`) and run the test again."
        ),
        Err(error) => panic!("could not start python3: {error}"),
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
    app.shutdown().await;
}
