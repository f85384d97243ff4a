//! The menu of the IVR demo: asks the caller to press 1 for sales, 2 for support or 0 for the
//! operator, and sends the key to `module:ivr-desk`. A caller who presses nothing hears a goodbye and is hung up on.
//!
//! The prompt is a one-digit gather; when it times out without input the call falls through to the
//! instructions after it, which is where the goodbye lives.

use switchboard_guest::telephony::{self, CallInfo, Guest, Instruction, Trigger};

/// Where the chosen key goes.
const DESK: &str = "module:ivr-desk";

struct Ivr;

impl Guest for Ivr {
    fn handle(_call: CallInfo, trigger: Trigger) -> Result<Vec<Instruction>, String> {
        Ok(match trigger.gathered_digits() {
            // Only reached if a gather ever names this module as its action: no key means no input.
            Some("") => no_input(),
            _ => {
                let mut instructions = vec![menu()];
                instructions.extend(no_input());
                instructions
            }
        })
    }
}

fn menu() -> Instruction {
    telephony::gather()
        .num_digits(1)
        .timeout(5)
        .action(DESK)
        .say("Welcome to switchboard. Press 1 for sales, 2 for support, 0 for the operator.")
        .build()
}

fn no_input() -> Vec<Instruction> {
    vec![
        telephony::say("We did not receive any input. Goodbye."),
        telephony::hangup(),
    ]
}

switchboard_guest::export_telephony_handler!(Ivr);
