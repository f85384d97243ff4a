//! The parts of the `switchboard` command that need no running host.

use std::process::Command;

use switchboard_host::presence::token;

fn switchboard(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(args)
        .env_remove("SWITCHBOARD_ACCOUNT_SID")
        .env_remove("SWITCHBOARD_API_KEY_SID")
        .env_remove("SWITCHBOARD_API_KEY_SECRET")
        .output()
        .expect("run switchboard")
}

#[test]
fn token_mints_an_access_token_that_verifies_with_the_key() {
    let account = format!("AC{}", "a".repeat(32));
    let key = format!("SK{}", "b".repeat(32));
    let application = format!("AP{}", "c".repeat(32));
    let minting = [
        "token",
        "--account-sid",
        &account,
        "--key-sid",
        &key,
        "--key-secret",
        "the-secret",
        "--identity",
        "alice",
    ];
    let output = switchboard(
        &[
            &minting[..],
            &["--outgoing-application", &application, "--ttl", "600"],
        ]
        .concat(),
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let minted = String::from_utf8(output.stdout).expect("utf-8");
    let now = switchboard_host::store::now_ms() / 1000;
    let claims = token::verify(minted.trim(), "the-secret", now, 30).expect("verifies");
    assert_eq!(claims.iss, key);
    assert_eq!(claims.sub, account);
    assert_eq!(claims.identity(), Some("alice"));
    assert!(claims.allows_incoming());
    assert_eq!(
        claims.outgoing().map(|o| o.application_sid.as_str()),
        Some(application.as_str())
    );
    assert!(
        (590..=610).contains(&(claims.exp - now)),
        "{}",
        claims.exp - now
    );
    assert!(token::verify(minted.trim(), "another-secret", now, 30).is_err());

    let refused = switchboard(&[&minting[..], &["--ttl", "172800"]].concat());
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--ttl"));
}
