//! The JSON shape of each world's inputs and outputs, as the dry-run API (`POST
//! /v1/Modules/{Name}/Invoke`) accepts and returns them: snake_case fields, kebab-case enum values,
//! tagged variants (`{"verb": "say", ...}`, `{"type": "gather", ...}`), and defaults for everything
//! a caller would rather not spell out.

use serde::{Deserialize, Serialize};

use super::bindings::types as wit;
use crate::sid::new_sid;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum CallDirection {
    #[default]
    Inbound,
    OutboundApi,
    OutboundDial,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum CallStatus {
    Queued,
    Ringing,
    #[default]
    InProgress,
    Completed,
    Busy,
    Failed,
    NoAnswer,
    Canceled,
}

impl CallDirection {
    pub fn as_str(self) -> &'static str {
        match self {
            CallDirection::Inbound => "inbound",
            CallDirection::OutboundApi => "outbound-api",
            CallDirection::OutboundDial => "outbound-dial",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Inbound, Self::OutboundApi, Self::OutboundDial]
            .into_iter()
            .find(|d| d.as_str() == text)
    }
}

impl CallStatus {
    pub const ALL: [CallStatus; 8] = [
        CallStatus::Queued,
        CallStatus::Ringing,
        CallStatus::InProgress,
        CallStatus::Completed,
        CallStatus::Busy,
        CallStatus::Failed,
        CallStatus::NoAnswer,
        CallStatus::Canceled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CallStatus::Queued => "queued",
            CallStatus::Ringing => "ringing",
            CallStatus::InProgress => "in-progress",
            CallStatus::Completed => "completed",
            CallStatus::Busy => "busy",
            CallStatus::Failed => "failed",
            CallStatus::NoAnswer => "no-answer",
            CallStatus::Canceled => "canceled",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Whether the call is over.
    pub fn is_final(self) -> bool {
        !matches!(
            self,
            CallStatus::Queued | CallStatus::Ringing | CallStatus::InProgress
        )
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HandlerFailure {
    pub code: u32,
    pub uri: String,
}

/// A call as a handler sees it. Every field may be left out: the sid is generated and the account is
/// always the caller's own.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct CallInfo {
    pub call_sid: Option<String>,
    pub from: String,
    pub to: String,
    pub direction: CallDirection,
    pub status: CallStatus,
    pub failure: Option<HandlerFailure>,
    pub parameters: Vec<(String, String)>,
}

impl CallInfo {
    pub fn to_wit(&self, account_sid: &str) -> wit::CallInfo {
        wit::CallInfo {
            call_sid: self.call_sid.clone().unwrap_or_else(|| new_sid("CA")),
            account_sid: account_sid.to_string(),
            from: self.from.clone(),
            to: self.to.clone(),
            direction: match self.direction {
                CallDirection::Inbound => wit::CallDirection::Inbound,
                CallDirection::OutboundApi => wit::CallDirection::OutboundApi,
                CallDirection::OutboundDial => wit::CallDirection::OutboundDial,
            },
            status: match self.status {
                CallStatus::Queued => wit::CallStatus::Queued,
                CallStatus::Ringing => wit::CallStatus::Ringing,
                CallStatus::InProgress => wit::CallStatus::InProgress,
                CallStatus::Completed => wit::CallStatus::Completed,
                CallStatus::Busy => wit::CallStatus::Busy,
                CallStatus::Failed => wit::CallStatus::Failed,
                CallStatus::NoAnswer => wit::CallStatus::NoAnswer,
                CallStatus::Canceled => wit::CallStatus::Canceled,
            },
            failure: self.failure.as_ref().map(|f| wit::HandlerFailure {
                code: f.code,
                uri: f.uri.clone(),
            }),
            parameters: self.parameters.clone(),
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum DialStatus {
    Completed,
    Answered,
    Busy,
    NoAnswer,
    Failed,
    Canceled,
}

impl DialStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DialStatus::Completed => "completed",
            DialStatus::Answered => "answered",
            DialStatus::Busy => "busy",
            DialStatus::NoAnswer => "no-answer",
            DialStatus::Failed => "failed",
            DialStatus::Canceled => "canceled",
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum QueueResult {
    Bridged,
    BridgingInProgress,
    QueueFull,
    Redirected,
    Hangup,
    Leave,
    Error,
    SystemError,
}

/// Why a handler is invoked.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Trigger {
    #[default]
    Incoming,
    Redirect,
    Gather {
        #[serde(default)]
        digits: String,
        #[serde(default)]
        timed_out: bool,
    },
    Dial {
        status: DialStatus,
        #[serde(default)]
        dial_call_sid: Option<String>,
        #[serde(default)]
        duration_seconds: u32,
    },
    Enqueue {
        result: QueueResult,
        #[serde(default)]
        queue_sid: Option<String>,
        #[serde(default)]
        queue_time_seconds: u32,
    },
}

impl Trigger {
    pub fn to_wit(&self) -> wit::Trigger {
        match self {
            Trigger::Incoming => wit::Trigger::Incoming,
            Trigger::Redirect => wit::Trigger::Redirect,
            Trigger::Gather { digits, timed_out } => wit::Trigger::Gather(wit::GatherOutcome {
                digits: digits.clone(),
                timed_out: *timed_out,
            }),
            Trigger::Dial {
                status,
                dial_call_sid,
                duration_seconds,
            } => wit::Trigger::Dial(wit::DialOutcome {
                status: match status {
                    DialStatus::Completed => wit::DialStatus::Completed,
                    DialStatus::Answered => wit::DialStatus::Answered,
                    DialStatus::Busy => wit::DialStatus::Busy,
                    DialStatus::NoAnswer => wit::DialStatus::NoAnswer,
                    DialStatus::Failed => wit::DialStatus::Failed,
                    DialStatus::Canceled => wit::DialStatus::Canceled,
                },
                dial_call_sid: dial_call_sid.clone(),
                duration_seconds: *duration_seconds,
            }),
            Trigger::Enqueue {
                result,
                queue_sid,
                queue_time_seconds,
            } => wit::Trigger::Enqueue(wit::EnqueueOutcome {
                result: match result {
                    QueueResult::Bridged => wit::QueueResult::Bridged,
                    QueueResult::BridgingInProgress => wit::QueueResult::BridgingInProgress,
                    QueueResult::QueueFull => wit::QueueResult::QueueFull,
                    QueueResult::Redirected => wit::QueueResult::Redirected,
                    QueueResult::Hangup => wit::QueueResult::Hangup,
                    QueueResult::Leave => wit::QueueResult::Leave,
                    QueueResult::Error => wit::QueueResult::Error,
                    QueueResult::SystemError => wit::QueueResult::SystemError,
                },
                queue_sid: queue_sid.clone(),
                queue_time_seconds: *queue_time_seconds,
            }),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Say {
    pub text: String,
    pub voice: Option<String>,
    pub language: Option<String>,
    pub loop_count: u32,
}

impl From<&wit::Say> for Say {
    fn from(say: &wit::Say) -> Self {
        Say {
            text: say.text.clone(),
            voice: say.voice.clone(),
            language: say.language.clone(),
            loop_count: say.loop_count,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Play {
    pub url: String,
    pub loop_count: u32,
}

impl From<&wit::Play> for Play {
    fn from(play: &wit::Play) -> Self {
        Play {
            url: play.url.clone(),
            loop_count: play.loop_count,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "verb", rename_all = "kebab-case")]
pub enum Prompt {
    Say(Say),
    Play(Play),
    Pause { length_seconds: u32 },
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Gather {
    pub num_digits: Option<u32>,
    pub timeout_seconds: u32,
    pub finish_on_key: Option<String>,
    pub action: Option<String>,
    pub prompts: Vec<Prompt>,
}

impl From<&wit::Gather> for Gather {
    fn from(gather: &wit::Gather) -> Self {
        Gather {
            num_digits: gather.num_digits,
            timeout_seconds: gather.timeout_seconds,
            finish_on_key: gather.finish_on_key.clone(),
            action: gather.action.clone(),
            prompts: gather
                .prompts
                .iter()
                .map(|prompt| match prompt {
                    wit::Prompt::Say(say) => Prompt::Say(say.into()),
                    wit::Prompt::Play(play) => Prompt::Play(play.into()),
                    wit::Prompt::Pause(seconds) => Prompt::Pause {
                        length_seconds: *seconds,
                    },
                })
                .collect(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum DialTarget {
    Number { number: String },
    Client { identity: String },
    Queue { name: String, url: Option<String> },
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Dial {
    pub targets: Vec<DialTarget>,
    pub timeout_seconds: u32,
    pub action: Option<String>,
    pub caller_id: Option<String>,
    pub time_limit_seconds: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Enqueue {
    pub queue: String,
    pub wait_uri: Option<String>,
    pub action: Option<String>,
    pub priority: i32,
    pub workflow_sid: Option<String>,
    pub task_attributes: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RejectReason {
    Rejected,
    Busy,
}

/// One instruction of a telephony handler's answer.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "verb", rename_all = "kebab-case")]
pub enum Instruction {
    Say(Say),
    Play(Play),
    Pause { length_seconds: u32 },
    Gather(Gather),
    Dial(Dial),
    Enqueue(Enqueue),
    Leave,
    Redirect { uri: String },
    Hangup,
    Reject { reason: RejectReason },
}

impl From<&wit::Instruction> for Instruction {
    fn from(instruction: &wit::Instruction) -> Self {
        match instruction {
            wit::Instruction::Say(say) => Instruction::Say(say.into()),
            wit::Instruction::Play(play) => Instruction::Play(play.into()),
            wit::Instruction::Pause(seconds) => Instruction::Pause {
                length_seconds: *seconds,
            },
            wit::Instruction::Gather(gather) => Instruction::Gather(gather.into()),
            wit::Instruction::Dial(dial) => Instruction::Dial(Dial {
                targets: dial
                    .targets
                    .iter()
                    .map(|target| match target {
                        wit::DialTarget::Number(number) => DialTarget::Number {
                            number: number.clone(),
                        },
                        wit::DialTarget::Client(identity) => DialTarget::Client {
                            identity: identity.clone(),
                        },
                        wit::DialTarget::Queue(queue) => DialTarget::Queue {
                            name: queue.name.clone(),
                            url: queue.url.clone(),
                        },
                    })
                    .collect(),
                timeout_seconds: dial.timeout_seconds,
                action: dial.action.clone(),
                caller_id: dial.caller_id.clone(),
                time_limit_seconds: dial.time_limit_seconds,
            }),
            wit::Instruction::Enqueue(enqueue) => Instruction::Enqueue(Enqueue {
                queue: enqueue.queue.clone(),
                wait_uri: enqueue.wait_uri.clone(),
                action: enqueue.action.clone(),
                priority: enqueue.priority,
                workflow_sid: enqueue.workflow_sid.clone(),
                task_attributes: enqueue.task_attributes.clone(),
            }),
            wit::Instruction::Leave => Instruction::Leave,
            wit::Instruction::Redirect(uri) => Instruction::Redirect { uri: uri.clone() },
            wit::Instruction::Hangup => Instruction::Hangup,
            wit::Instruction::Reject(reason) => Instruction::Reject {
                reason: match reason {
                    wit::RejectReason::Rejected => RejectReason::Rejected,
                    wit::RejectReason::Busy => RejectReason::Busy,
                },
            },
        }
    }
}

/// One instruction of a wait-state application's answer.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "verb", rename_all = "kebab-case")]
pub enum WaitInstruction {
    Say(Say),
    Play(Play),
    Pause { length_seconds: u32 },
    Gather(Gather),
    Redirect { uri: String },
    Leave,
    Hangup,
}

impl From<&wit::WaitInstruction> for WaitInstruction {
    fn from(instruction: &wit::WaitInstruction) -> Self {
        match instruction {
            wit::WaitInstruction::Say(say) => WaitInstruction::Say(say.into()),
            wit::WaitInstruction::Play(play) => WaitInstruction::Play(play.into()),
            wit::WaitInstruction::Pause(seconds) => WaitInstruction::Pause {
                length_seconds: *seconds,
            },
            wit::WaitInstruction::Gather(gather) => WaitInstruction::Gather(gather.into()),
            wit::WaitInstruction::Redirect(uri) => WaitInstruction::Redirect { uri: uri.clone() },
            wit::WaitInstruction::Leave => WaitInstruction::Leave,
            wit::WaitInstruction::Hangup => WaitInstruction::Hangup,
        }
    }
}

impl From<WaitInstruction> for Instruction {
    fn from(instruction: WaitInstruction) -> Self {
        match instruction {
            WaitInstruction::Say(say) => Instruction::Say(say),
            WaitInstruction::Play(play) => Instruction::Play(play),
            WaitInstruction::Pause { length_seconds } => Instruction::Pause { length_seconds },
            WaitInstruction::Gather(gather) => Instruction::Gather(gather),
            WaitInstruction::Redirect { uri } => Instruction::Redirect { uri },
            WaitInstruction::Leave => Instruction::Leave,
            WaitInstruction::Hangup => Instruction::Hangup,
        }
    }
}

/// A queued caller's figures, as a wait-state application receives them.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct QueueStatus {
    pub queue_sid: String,
    pub queue_name: String,
    pub position: u32,
    pub queue_time_seconds: u32,
    pub average_wait_seconds: u32,
    pub current_size: u32,
    pub max_size: u32,
}

impl Default for QueueStatus {
    fn default() -> Self {
        QueueStatus {
            queue_sid: new_sid("QU"),
            queue_name: "support".into(),
            position: 1,
            queue_time_seconds: 0,
            average_wait_seconds: 0,
            current_size: 1,
            max_size: 1000,
        }
    }
}

impl QueueStatus {
    pub fn to_wit(&self) -> wit::QueueStatus {
        wit::QueueStatus {
            queue_sid: self.queue_sid.clone(),
            queue_name: self.queue_name.clone(),
            position: self.position,
            queue_time_seconds: self.queue_time_seconds,
            average_wait_seconds: self.average_wait_seconds,
            current_size: self.current_size,
            max_size: self.max_size,
        }
    }
}

/// A task as a workflow rule receives it; `attributes` is any JSON object.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Task {
    pub sid: String,
    pub workspace_sid: String,
    pub workflow_sid: Option<String>,
    pub attributes: serde_json::Value,
    pub priority: i32,
    pub task_channel: String,
    pub age_seconds: u32,
    pub assignment_status: String,
}

impl Default for Task {
    fn default() -> Self {
        Task {
            sid: new_sid("WT"),
            workspace_sid: new_sid("WS"),
            workflow_sid: None,
            attributes: serde_json::json!({}),
            priority: 0,
            task_channel: "default".into(),
            age_seconds: 0,
            assignment_status: "pending".into(),
        }
    }
}

impl Task {
    pub fn to_wit(&self) -> wit::Task {
        wit::Task {
            sid: self.sid.clone(),
            workspace_sid: self.workspace_sid.clone(),
            workflow_sid: self.workflow_sid.clone(),
            attributes: self.attributes.to_string(),
            priority: self.priority,
            task_channel: self.task_channel.clone(),
            age_seconds: self.age_seconds,
            assignment_status: self.assignment_status.clone(),
        }
    }
}

/// A worker as a workflow rule receives it; `attributes` is any JSON object.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Worker {
    pub sid: String,
    pub friendly_name: String,
    pub attributes: serde_json::Value,
    pub activity_name: String,
    pub available: bool,
    pub idle_seconds: u32,
    pub active_tasks: u32,
}

impl Default for Worker {
    fn default() -> Self {
        Worker {
            sid: new_sid("WK"),
            friendly_name: "worker".into(),
            attributes: serde_json::json!({}),
            activity_name: "Available".into(),
            available: true,
            idle_seconds: 0,
            active_tasks: 0,
        }
    }
}

impl Worker {
    pub fn to_wit(&self) -> wit::Worker {
        wit::Worker {
            sid: self.sid.clone(),
            friendly_name: self.friendly_name.clone(),
            attributes: self.attributes.to_string(),
            activity_name: self.activity_name.clone(),
            available: self.available,
            idle_seconds: self.idle_seconds,
            active_tasks: self.active_tasks,
        }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RoutingTarget {
    pub queue: String,
    pub expression: Option<String>,
    pub priority: Option<i32>,
    pub timeout_seconds: Option<u32>,
}

/// A workflow rule's routing decision.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(tag = "decision", rename_all = "kebab-case")]
pub enum RoutingDecision {
    Targets { targets: Vec<RoutingTarget> },
    UseConfiguration,
    Cancel { reason: String },
}

impl From<&wit::RoutingDecision> for RoutingDecision {
    fn from(decision: &wit::RoutingDecision) -> Self {
        match decision {
            wit::RoutingDecision::Targets(targets) => RoutingDecision::Targets {
                targets: targets
                    .iter()
                    .map(|t| RoutingTarget {
                        queue: t.queue.clone(),
                        expression: t.expression.clone(),
                        priority: t.priority,
                        timeout_seconds: t.timeout_seconds,
                    })
                    .collect(),
            },
            wit::RoutingDecision::UseConfiguration => RoutingDecision::UseConfiguration,
            wit::RoutingDecision::Cancel(reason) => RoutingDecision::Cancel {
                reason: reason.clone(),
            },
        }
    }
}

/// An event as a subscriber receives it; `data` is any JSON object.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Event {
    pub id: String,
    pub sequence: u64,
    #[serde(rename = "type")]
    pub event_type: String,
    pub source: String,
    pub time: String,
    pub data: serde_json::Value,
}

impl Default for Event {
    fn default() -> Self {
        Event {
            id: new_sid("EV"),
            sequence: 1,
            event_type: "custom.test".into(),
            source: "/v1/Modules".into(),
            time: crate::store::rfc3339(crate::store::now_ms()),
            data: serde_json::json!({}),
        }
    }
}

impl Event {
    pub fn to_wit(&self, account_sid: &str) -> wit::Event {
        wit::Event {
            id: self.id.clone(),
            sequence: self.sequence,
            account_sid: account_sid.to_string(),
            type_: self.event_type.clone(),
            source: self.source.clone(),
            time: self.time.clone(),
            data: self.data.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_call_input_gets_defaults_and_the_callers_account() {
        let call: CallInfo =
            serde_json::from_value(serde_json::json!({"from": "+15550001"})).expect("valid input");
        let wit = call.to_wit("ACabc");
        assert_eq!(wit.account_sid, "ACabc");
        assert_eq!(wit.from, "+15550001");
        assert!(wit.call_sid.starts_with("CA"));
        assert!(matches!(wit.status, wit::CallStatus::InProgress));
    }

    #[test]
    fn unknown_fields_and_bad_variants_are_rejected() {
        assert!(serde_json::from_value::<CallInfo>(serde_json::json!({"frm": "x"})).is_err());
        assert!(serde_json::from_value::<Trigger>(serde_json::json!({"type": "nope"})).is_err());
        let gather: Trigger =
            serde_json::from_value(serde_json::json!({"type": "gather", "digits": "12"}))
                .expect("valid trigger");
        assert!(matches!(gather.to_wit(), wit::Trigger::Gather(g) if g.digits == "12"));
    }

    #[test]
    fn instructions_serialize_with_a_verb_tag() {
        let say = wit::Instruction::Say(wit::Say {
            text: "hi".into(),
            voice: None,
            language: None,
            loop_count: 1,
        });
        let json = serde_json::to_value(Instruction::from(&say)).expect("serializable");
        assert_eq!(json["verb"], "say");
        assert_eq!(json["text"], "hi");
        let hangup = serde_json::to_value(Instruction::from(&wit::Instruction::Hangup))
            .expect("serializable");
        assert_eq!(hangup, serde_json::json!({"verb": "hangup"}));
    }
}
