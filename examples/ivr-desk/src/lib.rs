//! The branch of the IVR demo: receives the key pressed at `module:ivr`'s menu and connects the
//! caller to sales (1) or support (2), or to the operator (0). Any other key sends the caller back
//! to the menu, and so does reaching this module any other way than through the menu's gather.
//!
//! The operator is a registered client, `client:operator`. When it is online the caller is put
//! through to it; when it is offline, or does not answer, the caller waits in the `operator`
//! queue instead, so nobody is dropped because the operator stepped away.

use switchboard_guest::telephony::{self, CallInfo, DialStatus, Guest, Instruction, Trigger};

/// The menu this module answers for.
const MENU: &str = "module:ivr";
/// Where the operator's dial reports back.
const DESK: &str = "module:ivr-desk";
/// The operator's client identity, and the queue that stands in for it.
const OPERATOR: &str = "operator";
/// Seconds the operator's client rings before the caller is queued instead.
const OPERATOR_RING_SECONDS: u32 = 20;

struct IvrDesk;

impl Guest for IvrDesk {
    fn handle(_call: CallInfo, trigger: Trigger) -> Result<Vec<Instruction>, String> {
        if let Some(outcome) = trigger.dial_outcome() {
            return Ok(after_operator(outcome.status));
        }
        Ok(match trigger.gathered_digits() {
            Some("1") => connect("sales"),
            Some("2") => connect("support"),
            Some("0") => operator(telephony::client_online(OPERATOR)),
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

/// Rings the operator when it is online; queues the caller for it when not.
fn operator(online: bool) -> Vec<Instruction> {
    if online {
        vec![
            telephony::say("Connecting you to the operator."),
            telephony::dial_client(OPERATOR)
                .timeout(OPERATOR_RING_SECONDS)
                .action(DESK)
                .build(),
        ]
    } else {
        wait_for_operator()
    }
}

/// After the operator's dial: a finished conversation ends the call, anything else queues.
fn after_operator(status: DialStatus) -> Vec<Instruction> {
    match status {
        DialStatus::Completed | DialStatus::Answered => {
            vec![
                telephony::say("Thank you for calling. Goodbye."),
                telephony::hangup(),
            ]
        }
        _ => wait_for_operator(),
    }
}

fn wait_for_operator() -> Vec<Instruction> {
    vec![
        telephony::say("The operator is not available right now. Please hold."),
        telephony::enqueue(OPERATOR).build(),
    ]
}

switchboard_guest::export_telephony_handler!(IvrDesk);

#[cfg(test)]
mod tests {
    use super::*;

    fn said(instructions: &[Instruction]) -> Vec<String> {
        instructions
            .iter()
            .filter_map(|i| match i {
                Instruction::Say(say) => Some(say.text.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn an_online_operator_is_dialled_with_the_desk_as_action() {
        let instructions = operator(true);
        let Some(Instruction::Dial(dial)) = instructions.last() else {
            panic!("expected a dial, got {instructions:?}");
        };
        assert_eq!(dial.action.as_deref(), Some(DESK));
        assert_eq!(dial.timeout_seconds, OPERATOR_RING_SECONDS);
        assert!(
            matches!(&dial.targets[..], [telephony::DialTarget::Client(name)] if name == OPERATOR)
        );
    }

    #[test]
    fn an_offline_or_unanswering_operator_queues_the_caller() {
        for instructions in [
            operator(false),
            after_operator(DialStatus::NoAnswer),
            after_operator(DialStatus::Busy),
        ] {
            assert!(
                matches!(instructions.last(), Some(Instruction::Enqueue(e)) if e.queue == OPERATOR),
                "{instructions:?}"
            );
        }
        assert_eq!(
            said(&after_operator(DialStatus::Completed)),
            ["Thank you for calling. Goodbye."]
        );
    }
}
