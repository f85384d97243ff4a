//! The smallest useful switchboard module: greets every caller, then hangs up.

use switchboard_guest::telephony::{self, CallInfo, Guest, Instruction, Trigger};

struct Hello;

impl Guest for Hello {
    fn handle(_call: CallInfo, _trigger: Trigger) -> Result<Vec<Instruction>, String> {
        Ok(vec![
            telephony::say("Hello from switchboard"),
            telephony::hangup(),
        ])
    }
}

switchboard_guest::export_telephony_handler!(Hello);
