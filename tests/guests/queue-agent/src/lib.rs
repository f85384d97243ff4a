//! A telephony handler that works the `support` queue through the host's `queues` interface, for
//! the host's end-to-end tests.
//!
//! The caller's `from` picks the behaviour, so a test only has to choose the number it places the
//! call from. Every answer is one `say` followed by a hangup; a `queues` call that fails makes the
//! say "queues error: {error}" instead.
//!
//! | `from` | behaviour | says |
//! |---|---|---|
//! | `+15550000001` ([`DEQUEUE`]) | `info("support")`, `members("support")`, then `dequeue("support", "module:hello")` | "dequeued {call sid}", or "queue empty" |
//! | `+15550000002` ([`REPORT`]) | `info("support")`, `members("support")` | "support has {current size} waiting, head {call sid of the first member, or none}", or "no queue support" when the queue does not exist |
//! | anything else | nothing | "agent ready" |

use switchboard_guest::queues;
use switchboard_guest::telephony::{self, CallInfo, Guest, Instruction, Trigger};

/// Calls from this number take the caller at the head of the queue.
pub const DEQUEUE: &str = "+15550000001";
/// Calls from this number report the queue's size and head.
pub const REPORT: &str = "+15550000002";

/// The queue this agent works.
const QUEUE: &str = "support";
/// Where the dequeued caller is sent.
const DEQUEUED_URI: &str = "module:hello";

struct QueueAgent;

impl Guest for QueueAgent {
    fn handle(call: CallInfo, _trigger: Trigger) -> Result<Vec<Instruction>, String> {
        let text = match call.from.as_str() {
            DEQUEUE => dequeue(),
            REPORT => report(),
            _ => Ok("agent ready".to_string()),
        }
        .unwrap_or_else(|e| format!("queues error: {e}"));
        Ok(vec![telephony::say(text), telephony::hangup()])
    }
}

/// Reads the queue's figures and members first, so the test also covers those calls on the way
/// to the dequeue.
fn dequeue() -> Result<String, String> {
    queues::info(QUEUE)?;
    queues::members(QUEUE)?;
    Ok(match queues::dequeue(QUEUE, DEQUEUED_URI)? {
        Some(sid) => format!("dequeued {sid}"),
        None => "queue empty".to_string(),
    })
}

fn report() -> Result<String, String> {
    let Some(info) = queues::info(QUEUE)? else {
        return Ok(format!("no queue {QUEUE}"));
    };
    let members = queues::members(QUEUE)?;
    let head = members
        .first()
        .map_or("none", |member| member.call_sid.as_str());
    Ok(format!(
        "{QUEUE} has {} waiting, head {head}",
        info.current_size
    ))
}

switchboard_guest::export_telephony_handler!(QueueAgent);
