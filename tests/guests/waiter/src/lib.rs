//! A wait-state module that behaves on request, for the host's end-to-end tests.
//!
//! The queue's name picks the behaviour (by prefix, so a test can give each case a queue of its
//! own, e.g. `leave-2`), and one component covers every case.
//!
//! | queue name starts with | `on-wait` returns |
//! |---|---|
//! | `trap` | nothing: panics (guest trap) |
//! | `leave` | `leave` |
//! | `hangup` | `hangup` |
//! | `gather` | `leave` when the call carries `Digits` = `0`; otherwise a one-digit gather (600 s timeout, no action, so the keys come back here) prompting "press 0 to leave" |
//! | anything else | say "position {position} of {current size} in {queue name}", then a 600 s pause; when the call carries `Digits`, say "heard {digits}" first |
//!
//! The long pauses keep the caller waiting, and the module silent, until the test moves the clock.
//! The default case reports the figures the host passed, so a test can check them by what is said.

use switchboard_guest::wait_state::{self, CallInfo, Guest, QueueStatus, WaitInstruction};

/// Long enough that nothing happens until the test moves the clock on purpose.
const LONG_SECONDS: u32 = 600;

struct Waiter;

impl Guest for Waiter {
    fn on_wait(call: CallInfo, status: QueueStatus) -> Vec<WaitInstruction> {
        let name = status.queue_name.as_str();
        let digits = call.parameter("Digits");
        if name.starts_with("trap") {
            panic!("waiter asked to trap");
        } else if name.starts_with("leave") {
            vec![wait_state::leave()]
        } else if name.starts_with("hangup") {
            vec![wait_state::hangup()]
        } else if name.starts_with("gather") {
            if digits == Some("0") {
                vec![wait_state::leave()]
            } else {
                vec![
                    wait_state::gather()
                        .num_digits(1)
                        .timeout(LONG_SECONDS)
                        .say("press 0 to leave")
                        .into(),
                ]
            }
        } else {
            let mut instructions = Vec::new();
            if let Some(digits) = digits {
                instructions.push(wait_state::say(format!("heard {digits}")));
            }
            instructions.push(wait_state::say(format!(
                "position {} of {} in {}",
                status.position, status.current_size, status.queue_name
            )));
            instructions.push(wait_state::pause(LONG_SECONDS));
            instructions
        }
    }
}

switchboard_guest::export_wait_state!(Waiter);
