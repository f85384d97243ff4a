//! The branch of the IVR demo: receives the key pressed at `module:ivr`'s menu and connects the
//! caller to sales (1) or support (2). Any other key sends the caller back to the menu, and so does
//! reaching this module any other way than through the menu's gather.

use switchboard_guest::telephony::{self, CallInfo, Guest, Instruction, Trigger};

/// The menu this module answers for.
const MENU: &str = "module:ivr";

struct IvrDesk;

impl Guest for IvrDesk {
    fn handle(_call: CallInfo, trigger: Trigger) -> Result<Vec<Instruction>, String> {
        Ok(match trigger.gathered_digits() {
            Some("1") => connect("sales"),
            Some("2") => connect("support"),
            Some(_) => vec![
                telephony::say("Sorry, that is not a valid choice."),
                telephony::redirect(MENU),
            ],
            None => vec![telephony::redirect(MENU)],
        })
    }
}

fn connect(desk: &str) -> Vec<Instruction> {
    vec![
        telephony::say(format!("Connecting you to {desk}.")),
        telephony::hangup(),
    ]
}

switchboard_guest::export_telephony_handler!(IvrDesk);
