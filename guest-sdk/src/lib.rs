//! Write switchboard modules in Rust.
//!
//! A switchboard module is a WebAssembly component that implements one of the platform's four
//! worlds. This crate holds the bindings for all of them, generated from the platform's WIT
//! contract (`switchboard:platform@0.1.0`), plus builders for every instruction (see
//! [building instructions](telephony#building-instructions)).
//!
//! | world | module | trait to implement | export macro |
//! |---|---|---|---|
//! | `telephony-handler` | [`telephony`] | [`telephony::Guest`] | [`export_telephony_handler!`] |
//! | `wait-state` | [`wait_state`] | [`wait_state::Guest`] | [`export_wait_state!`] |
//! | `workflow-rules` | [`workflow_rules`] | [`workflow_rules::Guest`] | [`export_workflow_rules!`] |
//! | `event-subscriber` | [`event_subscriber`] | [`event_subscriber::Guest`] | [`export_event_subscriber!`] |
//!
//! The host interfaces a module may call are [`kv`], [`log`], [`queues`], [`distribution`],
//! [`presence`], [`media`] and [`events`]; the records they share live in [`types`]. Each world
//! imports only some of them (see the module docs of each world): calling an interface outside
//! your world compiles, but the host refuses to instantiate the component.
//!
//! # Example
//!
//! A `cdylib` crate depending on this one, built with
//! `cargo build --target wasm32-wasip2 --release`:
//!
//! ```no_run
//! use switchboard_guest::telephony::{self, CallInfo, Guest, Instruction, Trigger};
//!
//! struct Hello;
//!
//! impl Guest for Hello {
//!     fn handle(_call: CallInfo, _trigger: Trigger) -> Result<Vec<Instruction>, String> {
//!         Ok(vec![telephony::say("Hello from switchboard"), telephony::hangup()])
//!     }
//! }
//!
//! switchboard_guest::export_telephony_handler!(Hello);
//! ```
//!
//! # What ends up in the component
//!
//! The bindings of all four worlds are compiled into this crate, yet a component built with it
//! implements only the world whose export macro it calls. This crate only embeds
//! import-only descriptions of the worlds; the export macro embeds the chosen world's exports, and
//! `wasm-component-ld` drops every host interface the code never calls (a module that never
//! touches [`kv`] does not import it). So no cargo feature selects the world.
//!
//! One trace of the other worlds remains: the component's WIT also lists, as type imports, the
//! records those worlds name at world level (`task`, `worker`, `queue-status`, ...). They are type
//! equalities with no runtime import behind them; hosts such as Wasmtime need nothing to satisfy
//! them.
//!
//! A component built for `wasm32-wasip2` also imports the `wasi:cli` and `wasi:io` interfaces the
//! Rust standard library uses (stdio for panic messages, environment, exit).

/// Generated bindings, one module per world. The modules worth naming are re-exported at the
/// crate root and in the per-world modules; the export macros refer to these paths, so they must
/// stay public.
#[doc(hidden)]
#[allow(
    clippy::too_many_arguments,
    reason = "wit-bindgen's export shims take one parameter per flattened core wasm value"
)]
pub mod bindings {
    /// The `telephony-handler` world. Generated first, so it also defines the `types` interface
    /// (including the records only other worlds use) and the host interfaces this world imports.
    pub mod telephony_handler {
        wit_bindgen::generate!({
            path: "../wit",
            world: "telephony-handler",
            generate_all,
            generate_unused_types: true,
            pub_export_macro: true,
            export_macro_name: "export_telephony_handler",
            default_bindings_module: "switchboard_guest::bindings::telephony_handler",
        });
    }

    /// The `wait-state` world; every interface it imports is already generated above.
    pub mod wait_state {
        wit_bindgen::generate!({
            path: "../wit",
            world: "wait-state",
            with: {
                "switchboard:platform/types@0.1.0": crate::types,
                "switchboard:platform/queues@0.1.0": crate::queues,
                "switchboard:platform/media@0.1.0": crate::media,
                "switchboard:platform/events@0.1.0": crate::events,
                "switchboard:platform/kv@0.1.0": crate::kv,
                "switchboard:platform/log@0.1.0": crate::log,
            },
            pub_export_macro: true,
            export_macro_name: "export_wait_state",
            default_bindings_module: "switchboard_guest::bindings::wait_state",
        });
    }

    /// The `workflow-rules` world; the only one besides `event-subscriber` that imports
    /// `distribution`, which is generated here.
    pub mod workflow_rules {
        wit_bindgen::generate!({
            path: "../wit",
            world: "workflow-rules",
            with: {
                "switchboard:platform/types@0.1.0": crate::types,
                "switchboard:platform/distribution@0.1.0": generate,
                "switchboard:platform/presence@0.1.0": crate::presence,
                "switchboard:platform/kv@0.1.0": crate::kv,
                "switchboard:platform/log@0.1.0": crate::log,
            },
            pub_export_macro: true,
            export_macro_name: "export_workflow_rules",
            default_bindings_module: "switchboard_guest::bindings::workflow_rules",
        });
    }

    /// The `event-subscriber` world; every interface it imports is already generated above.
    pub mod event_subscriber {
        wit_bindgen::generate!({
            path: "../wit",
            world: "event-subscriber",
            with: {
                "switchboard:platform/types@0.1.0": crate::types,
                "switchboard:platform/events@0.1.0": crate::events,
                "switchboard:platform/queues@0.1.0": crate::queues,
                "switchboard:platform/distribution@0.1.0": crate::distribution,
                "switchboard:platform/kv@0.1.0": crate::kv,
                "switchboard:platform/log@0.1.0": crate::log,
            },
            pub_export_macro: true,
            export_macro_name: "export_event_subscriber",
            default_bindings_module: "switchboard_guest::bindings::event_subscriber",
        });
    }
}

pub use bindings::telephony_handler::switchboard::platform::{
    events, kv, log, media, presence, queues, types,
};
pub use bindings::workflow_rules::switchboard::platform::distribution;

// The export macros are `#[macro_export]`ed under internal names and re-exported by wit-bindgen
// inside each world's bindings module; these re-exports give them stable crate-root paths.
pub use bindings::event_subscriber::export_event_subscriber;
pub use bindings::telephony_handler::export_telephony_handler;
pub use bindings::wait_state::export_wait_state;
pub use bindings::workflow_rules::export_workflow_rules;

use types::{CallInfo, DialOutcome, EnqueueOutcome, GatherOutcome, Play, Say, Trigger};

impl Say {
    /// Speaks `text` once, in the account's default voice and language.
    ///
    /// Use this rather than a struct literal: a `loop_count` of 0 means "repeat until the call
    /// moves on", so a zeroed `Say` would never stop talking. Chain [`voice`](Say::voice),
    /// [`language`](Say::language) and [`loop_count`](Say::loop_count) to change the rest:
    ///
    /// ```no_run
    /// use switchboard_guest::telephony::{Instruction, Say};
    ///
    /// let greeting: Instruction = Say::new("Bienvenue").voice("woman").language("fr-FR").into();
    /// ```
    pub fn new(text: impl Into<String>) -> Self {
        Say {
            text: text.into(),
            voice: None,
            language: None,
            loop_count: 1,
        }
    }

    /// Speaks in `voice` (`man`, `woman` or an engine-specific voice name) instead of the
    /// account's default.
    #[must_use]
    pub fn voice(mut self, voice: impl Into<String>) -> Self {
        self.voice = Some(voice.into());
        self
    }

    /// Speaks in `language`, a BCP 47 tag such as `en-US`, instead of the account's default.
    #[must_use]
    pub fn language(mut self, language: impl Into<String>) -> Self {
        self.language = Some(language.into());
        self
    }

    /// Says the text `count` times; 0 repeats it until the call moves on.
    #[must_use]
    pub fn loop_count(mut self, count: u32) -> Self {
        self.loop_count = count;
        self
    }
}

impl Play {
    /// Plays the audio at `url` (an http(s) URL or a `/v1/Media/...` address) once.
    ///
    /// As with [`Say::new`], the point is `loop_count: 1`: 0 would loop until the call moves on.
    pub fn new(url: impl Into<String>) -> Self {
        Play {
            url: url.into(),
            loop_count: 1,
        }
    }

    /// Plays the audio `count` times; 0 repeats it until the call moves on.
    #[must_use]
    pub fn loop_count(mut self, count: u32) -> Self {
        self.loop_count = count;
        self
    }
}

impl Trigger {
    /// The outcome of the gather that invoked the handler, if a gather did.
    pub fn gather_outcome(&self) -> Option<&GatherOutcome> {
        match self {
            Trigger::Gather(outcome) => Some(outcome),
            _ => None,
        }
    }

    /// The keys the caller pressed (without the finishing key), if a gather invoked the handler.
    /// `Some("")` means the gather ended with no input.
    ///
    /// ```no_run
    /// use switchboard_guest::telephony::{self, Instruction, Trigger};
    ///
    /// fn menu_choice(trigger: &Trigger) -> Vec<Instruction> {
    ///     match trigger.gathered_digits() {
    ///         Some("1") => vec![telephony::say("Sales."), telephony::hangup()],
    ///         Some(_) => vec![telephony::say("Not a valid choice."), telephony::redirect("module:menu")],
    ///         None => vec![telephony::redirect("module:menu")],
    ///     }
    /// }
    /// ```
    pub fn gathered_digits(&self) -> Option<&str> {
        self.gather_outcome().map(|outcome| outcome.digits.as_str())
    }

    /// The outcome of the dial that invoked the handler, if a dial did.
    pub fn dial_outcome(&self) -> Option<&DialOutcome> {
        match self {
            Trigger::Dial(outcome) => Some(outcome),
            _ => None,
        }
    }

    /// The outcome of the stay in a queue that invoked the handler, if an enqueue did.
    pub fn enqueue_outcome(&self) -> Option<&EnqueueOutcome> {
        match self {
            Trigger::Enqueue(outcome) => Some(outcome),
            _ => None,
        }
    }
}

impl CallInfo {
    /// The value of the extra call parameter `name` (first match), as an HTTP application would
    /// read a form field.
    pub fn parameter(&self, name: &str) -> Option<&str> {
        self.parameters
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

pub mod telephony {
    //! The `telephony-handler` world: answers calls.
    //!
    //! Implement [`Guest`] and export it with [`export_telephony_handler!`](crate::export_telephony_handler).
    //! The host calls [`Guest::handle`] when a call reaches the module's URI and again when an action
    //! it asked for (a gather, a dial, a stay in a queue) names the module; the [`Trigger`] says which.
    //!
    //! Imports: [`queues`](crate::queues), [`presence`](crate::presence), [`media`](crate::media),
    //! [`events`](crate::events), [`kv`](crate::kv), [`log`](crate::log).
    //!
    //! # Building instructions
    //!
    //! Every instruction has a builder here, with the defaults of the matching TwiML verb, so a
    //! handler never spells out a WIT record: [`say`], [`play`], [`pause`], [`gather`], [`dial_number`]
    //! / [`dial_client`] / [`dial_queue`], [`enqueue`], [`leave`], [`redirect`], [`hangup`],
    //! [`reject`] and [`reject_busy`]. Builders that take options ([`GatherBuilder`],
    //! [`DialBuilder`], [`EnqueueBuilder`]) end with `.build()` or `.into()`.
    //!
    //! ```no_run
    //! use switchboard_guest::telephony::{self, Instruction};
    //!
    //! let instructions: Vec<Instruction> = vec![
    //!     telephony::gather()
    //!         .num_digits(1)
    //!         .action("module:menu-choice")
    //!         .say("Press 1 to talk to an agent.")
    //!         .build(),
    //!     telephony::dial_number("+15005550006").timeout(20).build(),
    //!     telephony::hangup(),
    //! ];
    //! ```

    pub use crate::bindings::telephony_handler::Guest;
    pub use crate::types::{
        CallDirection, CallInfo, CallStatus, Dial, DialOutcome, DialQueue, DialStatus, DialTarget,
        Enqueue, EnqueueOutcome, Gather, GatherOutcome, HandlerFailure, Instruction, Play, Prompt,
        QueueResult, RejectReason, Say, Trigger,
    };

    /// Seconds a gather waits for the first or next key: TwiML's `timeout` default.
    pub const DEFAULT_GATHER_TIMEOUT_SECONDS: u32 = 5;
    /// The key that ends a gather's input: TwiML's `finishOnKey` default.
    pub const DEFAULT_FINISH_ON_KEY: &str = "#";
    /// Seconds a dial rings before giving up: TwiML's `timeout` default.
    pub const DEFAULT_DIAL_TIMEOUT_SECONDS: u32 = 30;

    /// Speaks `text` once in the default voice; see [`Say::new`].
    pub fn say(text: impl Into<String>) -> Instruction {
        Instruction::Say(Say::new(text))
    }

    /// Plays the audio at `url` once; see [`Play::new`].
    pub fn play(url: impl Into<String>) -> Instruction {
        Instruction::Play(Play::new(url))
    }

    /// Keeps the line silent for `seconds`.
    pub fn pause(seconds: u32) -> Instruction {
        Instruction::Pause(seconds)
    }

    /// Hands the call to another handler: a `module:` URI or an http(s) URL.
    pub fn redirect(uri: impl Into<String>) -> Instruction {
        Instruction::Redirect(uri.into())
    }

    /// Ends the call.
    pub fn hangup() -> Instruction {
        Instruction::Hangup
    }

    /// Takes the call out of the queue it is waiting in; the enqueue's `action` runs next.
    pub fn leave() -> Instruction {
        Instruction::Leave
    }

    /// Refuses the call without answering it, as rejected.
    pub fn reject() -> Instruction {
        Instruction::Reject(RejectReason::Rejected)
    }

    /// Refuses the call without answering it, with a busy signal.
    pub fn reject_busy() -> Instruction {
        Instruction::Reject(RejectReason::Busy)
    }

    impl From<Say> for Instruction {
        fn from(say: Say) -> Self {
            Instruction::Say(say)
        }
    }

    impl From<Play> for Instruction {
        fn from(play: Play) -> Self {
            Instruction::Play(play)
        }
    }

    impl From<Gather> for Instruction {
        fn from(gather: Gather) -> Self {
            Instruction::Gather(gather)
        }
    }

    impl From<Dial> for Instruction {
        fn from(dial: Dial) -> Self {
            Instruction::Dial(dial)
        }
    }

    impl From<Enqueue> for Instruction {
        fn from(enqueue: Enqueue) -> Self {
            Instruction::Enqueue(enqueue)
        }
    }

    impl From<Say> for Prompt {
        fn from(say: Say) -> Self {
            Prompt::Say(say)
        }
    }

    impl From<Play> for Prompt {
        fn from(play: Play) -> Self {
            Prompt::Play(play)
        }
    }

    /// Starts a gather: collects keys from the caller while its prompts play.
    ///
    /// Defaults as in TwiML: no digit count (input ends on `#` or after 5 seconds of silence), the
    /// outcome goes back to the current handler, no prompts. When the caller presses nothing the
    /// call falls through to the next instruction, so a gather is usually followed by a fallback.
    ///
    /// ```no_run
    /// use switchboard_guest::telephony::{self, Instruction, Say};
    ///
    /// let instructions: Vec<Instruction> = vec![
    ///     telephony::gather()
    ///         .num_digits(4)
    ///         .timeout(10)
    ///         .finish_on_key(Some("*"))
    ///         .action("module:check-pin")
    ///         .prompt(Say::new("Enter your PIN.").voice("woman"))
    ///         .pause(1)
    ///         .play("https://example.com/beep.wav")
    ///         .build(),
    ///     telephony::say("Goodbye."),
    /// ];
    /// ```
    pub fn gather() -> GatherBuilder {
        GatherBuilder {
            gather: Gather {
                num_digits: None,
                timeout_seconds: DEFAULT_GATHER_TIMEOUT_SECONDS,
                finish_on_key: Some(DEFAULT_FINISH_ON_KEY.to_string()),
                action: None,
                prompts: Vec::new(),
            },
        }
    }

    /// A [`Gather`] under construction; see [`gather`].
    #[derive(Debug, Clone)]
    #[must_use = "a gather does nothing until it is built into an instruction"]
    pub struct GatherBuilder {
        gather: Gather,
    }

    impl GatherBuilder {
        /// Ends the gather once the caller has pressed `count` keys.
        pub fn num_digits(mut self, count: u32) -> Self {
            self.gather.num_digits = Some(count);
            self
        }

        /// Ends the gather after `seconds` of silence following the prompts or the last key
        /// (default 5).
        pub fn timeout(mut self, seconds: u32) -> Self {
            self.gather.timeout_seconds = seconds;
            self
        }

        /// The key that ends input (default `#`); `None` disables it.
        pub fn finish_on_key(mut self, key: Option<&str>) -> Self {
            self.gather.finish_on_key = key.map(str::to_string);
            self
        }

        /// Sends the outcome to `uri` (a `module:` URI or an http(s) URL) instead of back to the
        /// current handler.
        pub fn action(mut self, uri: impl Into<String>) -> Self {
            self.gather.action = Some(uri.into());
            self
        }

        /// Adds a prompt that speaks `text` once in the default voice.
        pub fn say(self, text: impl Into<String>) -> Self {
            self.prompt(Say::new(text))
        }

        /// Adds a prompt that plays the audio at `url` once.
        pub fn play(self, url: impl Into<String>) -> Self {
            self.prompt(Play::new(url))
        }

        /// Adds `seconds` of silence to the prompts.
        pub fn pause(self, seconds: u32) -> Self {
            self.prompt(Prompt::Pause(seconds))
        }

        /// Adds any prompt, e.g. a [`Say`] with a voice or a [`Play`] that loops.
        pub fn prompt(mut self, prompt: impl Into<Prompt>) -> Self {
            self.gather.prompts.push(prompt.into());
            self
        }

        /// The finished instruction.
        pub fn build(self) -> Instruction {
            Instruction::Gather(self.gather)
        }
    }

    impl From<GatherBuilder> for Gather {
        fn from(builder: GatherBuilder) -> Self {
            builder.gather
        }
    }

    impl From<GatherBuilder> for Instruction {
        fn from(builder: GatherBuilder) -> Self {
            builder.build()
        }
    }

    /// Starts a dial that rings the E.164 `number`.
    ///
    /// Defaults as in TwiML: rings for 30 seconds, then the call continues with the next
    /// instruction; no caller id override, no time limit. Add more targets to ring them at once.
    ///
    /// ```no_run
    /// use switchboard_guest::telephony::{self, Instruction};
    ///
    /// let dial: Instruction = telephony::dial_number("+15005550006")
    ///     .client("alice")
    ///     .timeout(20)
    ///     .caller_id("+15005550001")
    ///     .time_limit(3600)
    ///     .action("module:after-dial")
    ///     .build();
    /// ```
    pub fn dial_number(number: impl Into<String>) -> DialBuilder {
        DialBuilder::new().number(number)
    }

    /// Starts a dial that rings the registered client `identity`; see [`dial_number`].
    pub fn dial_client(identity: impl Into<String>) -> DialBuilder {
        DialBuilder::new().client(identity)
    }

    /// Whether the client `identity` has at least one registered endpoint now (a
    /// [`presence::lookup`](crate::presence::lookup) that fails counts as offline).
    ///
    /// Pair it with [`dial_client`] to ring a client only when it can answer:
    ///
    /// ```no_run
    /// use switchboard_guest::telephony::{self, Instruction};
    ///
    /// fn operator() -> Vec<Instruction> {
    ///     if telephony::client_online("operator") {
    ///         vec![telephony::dial_client("operator").timeout(20).action("module:after-operator").build()]
    ///     } else {
    ///         vec![telephony::enqueue("operator").build()]
    ///     }
    /// }
    /// ```
    pub fn client_online(identity: &str) -> bool {
        crate::presence::lookup(identity).is_ok_and(|status| status.online)
    }

    /// Starts a dial that bridges the caller to whoever waits at the head of the queue `name`;
    /// see [`dial_number`] and [`DialBuilder::queue_with_url`].
    pub fn dial_queue(name: impl Into<String>) -> DialBuilder {
        DialBuilder::new().queue(name)
    }

    /// A [`Dial`] under construction; see [`dial_number`], [`dial_client`] and [`dial_queue`].
    #[derive(Debug, Clone)]
    #[must_use = "a dial does nothing until it is built into an instruction"]
    pub struct DialBuilder {
        dial: Dial,
    }

    impl DialBuilder {
        fn new() -> Self {
            DialBuilder {
                dial: Dial {
                    targets: Vec::new(),
                    timeout_seconds: DEFAULT_DIAL_TIMEOUT_SECONDS,
                    action: None,
                    caller_id: None,
                    time_limit_seconds: None,
                },
            }
        }

        /// Also rings the E.164 `number`.
        pub fn number(self, number: impl Into<String>) -> Self {
            self.target(DialTarget::Number(number.into()))
        }

        /// Also rings the registered client `identity`.
        pub fn client(self, identity: impl Into<String>) -> Self {
            self.target(DialTarget::Client(identity.into()))
        }

        /// Also connects to the head of the queue `name`.
        pub fn queue(self, name: impl Into<String>) -> Self {
            self.target(DialTarget::Queue(DialQueue {
                name: name.into(),
                url: None,
            }))
        }

        /// Also connects to the head of the queue `name`, first running `url` (a `module:` URI or
        /// an http(s) URL) on the dequeued caller.
        pub fn queue_with_url(self, name: impl Into<String>, url: impl Into<String>) -> Self {
            self.target(DialTarget::Queue(DialQueue {
                name: name.into(),
                url: Some(url.into()),
            }))
        }

        /// Also rings `target`.
        pub fn target(mut self, target: DialTarget) -> Self {
            self.dial.targets.push(target);
            self
        }

        /// Rings for `seconds` before giving up with `no-answer` (default 30).
        pub fn timeout(mut self, seconds: u32) -> Self {
            self.dial.timeout_seconds = seconds;
            self
        }

        /// Sends the outcome to `uri` (a `module:` URI or an http(s) URL); without it the call
        /// continues with the next instruction.
        pub fn action(mut self, uri: impl Into<String>) -> Self {
            self.dial.action = Some(uri.into());
            self
        }

        /// Presents `caller_id` to the dialled party instead of the caller's number.
        pub fn caller_id(mut self, caller_id: impl Into<String>) -> Self {
            self.dial.caller_id = Some(caller_id.into());
            self
        }

        /// Ends the bridge after `seconds`.
        pub fn time_limit(mut self, seconds: u32) -> Self {
            self.dial.time_limit_seconds = Some(seconds);
            self
        }

        /// The finished instruction.
        pub fn build(self) -> Instruction {
            Instruction::Dial(self.dial)
        }
    }

    impl From<DialBuilder> for Dial {
        fn from(builder: DialBuilder) -> Self {
            builder.dial
        }
    }

    impl From<DialBuilder> for Instruction {
        fn from(builder: DialBuilder) -> Self {
            builder.build()
        }
    }

    /// Starts an enqueue: puts the caller in the queue `queue` (created on first use).
    ///
    /// Defaults: the host's hold music while waiting, priority 0, no task, and when the caller
    /// leaves the queue the call continues with the next instruction.
    ///
    /// ```no_run
    /// use switchboard_guest::telephony::{self, Instruction};
    ///
    /// let enqueue: Instruction = telephony::enqueue("support")
    ///     .wait_uri("module:hold-music")
    ///     .action("module:after-queue")
    ///     .priority(10)
    ///     .workflow_sid("WW0123456789abcdef0123456789abcdef")
    ///     .task_attributes(r#"{"skill":"billing"}"#)
    ///     .build();
    /// ```
    pub fn enqueue(queue: impl Into<String>) -> EnqueueBuilder {
        EnqueueBuilder {
            enqueue: Enqueue {
                queue: queue.into(),
                wait_uri: None,
                action: None,
                priority: 0,
                workflow_sid: None,
                task_attributes: None,
            },
        }
    }

    /// An [`Enqueue`] under construction; see [`enqueue`].
    #[derive(Debug, Clone)]
    #[must_use = "an enqueue does nothing until it is built into an instruction"]
    pub struct EnqueueBuilder {
        enqueue: Enqueue,
    }

    impl EnqueueBuilder {
        /// Runs `uri` (a `module:` URI of a wait-state module or an http(s) URL) while the caller
        /// waits, instead of the default hold music.
        pub fn wait_uri(mut self, uri: impl Into<String>) -> Self {
            self.enqueue.wait_uri = Some(uri.into());
            self
        }

        /// Sends the outcome to `uri` when the caller leaves the queue.
        pub fn action(mut self, uri: impl Into<String>) -> Self {
            self.enqueue.action = Some(uri.into());
            self
        }

        /// Serves this caller before those of lower priority (default 0).
        pub fn priority(mut self, priority: i32) -> Self {
            self.enqueue.priority = priority;
            self
        }

        /// Creates a task in the workflow `sid` to route the caller to a worker.
        pub fn workflow_sid(mut self, sid: impl Into<String>) -> Self {
            self.enqueue.workflow_sid = Some(sid.into());
            self
        }

        /// Merges the JSON object `json` into the task's attributes.
        pub fn task_attributes(mut self, json: impl Into<String>) -> Self {
            self.enqueue.task_attributes = Some(json.into());
            self
        }

        /// The finished instruction.
        pub fn build(self) -> Instruction {
            Instruction::Enqueue(self.enqueue)
        }
    }

    impl From<EnqueueBuilder> for Enqueue {
        fn from(builder: EnqueueBuilder) -> Self {
            builder.enqueue
        }
    }

    impl From<EnqueueBuilder> for Instruction {
        fn from(builder: EnqueueBuilder) -> Self {
            builder.build()
        }
    }
}

pub mod wait_state {
    //! The `wait-state` world: decides what a queued caller hears.
    //!
    //! Implement [`Guest`] and export it with [`export_wait_state!`](crate::export_wait_state). The host
    //! calls [`Guest::on_wait`] when a caller enters the queue and again each time the returned list
    //! has been played through.
    //!
    //! Imports: [`queues`](crate::queues), [`media`](crate::media), [`events`](crate::events),
    //! [`kv`](crate::kv), [`log`](crate::log).

    pub use crate::bindings::wait_state::Guest;
    pub use crate::types::{CallInfo, Gather, Play, Prompt, QueueStatus, Say, WaitInstruction};

    /// Speaks `text` once in the default voice; see [`Say::new`].
    pub fn say(text: impl Into<String>) -> WaitInstruction {
        WaitInstruction::Say(Say::new(text))
    }

    /// Plays the audio at `url` once; see [`Play::new`].
    pub fn play(url: impl Into<String>) -> WaitInstruction {
        WaitInstruction::Play(Play::new(url))
    }

    /// Keeps the line silent for `seconds`.
    pub fn pause(seconds: u32) -> WaitInstruction {
        WaitInstruction::Pause(seconds)
    }

    /// Hands the queued caller's wait to another wait-state URI.
    pub fn redirect(uri: impl Into<String>) -> WaitInstruction {
        WaitInstruction::Redirect(uri.into())
    }

    /// Takes the caller out of the queue; the enqueue's `action` runs next.
    pub fn leave() -> WaitInstruction {
        WaitInstruction::Leave
    }

    /// Ends the call.
    pub fn hangup() -> WaitInstruction {
        WaitInstruction::Hangup
    }

    /// A gather for a queued caller, e.g. "press 1 to leave a message": the builder is
    /// [`telephony::gather`](crate::telephony::gather)'s, turned into a [`WaitInstruction`] with
    /// `.into()`.
    ///
    /// ```no_run
    /// use switchboard_guest::wait_state::{self, WaitInstruction};
    ///
    /// let offer: WaitInstruction = wait_state::gather()
    ///     .num_digits(1)
    ///     .action("module:hold-menu")
    ///     .say("Press 1 to leave a message.")
    ///     .into();
    /// ```
    pub fn gather() -> GatherBuilder {
        crate::telephony::gather()
    }

    pub use crate::telephony::GatherBuilder;

    impl From<Say> for WaitInstruction {
        fn from(say: Say) -> Self {
            WaitInstruction::Say(say)
        }
    }

    impl From<Play> for WaitInstruction {
        fn from(play: Play) -> Self {
            WaitInstruction::Play(play)
        }
    }

    impl From<Gather> for WaitInstruction {
        fn from(gather: Gather) -> Self {
            WaitInstruction::Gather(gather)
        }
    }

    impl From<GatherBuilder> for WaitInstruction {
        fn from(builder: GatherBuilder) -> Self {
            WaitInstruction::Gather(builder.into())
        }
    }
}

pub mod workflow_rules {
    //! The `workflow-rules` world: routes tasks to workers.
    //!
    //! Implement [`Guest`] and export it with [`export_workflow_rules!`](crate::export_workflow_rules).
    //!
    //! Imports: [`distribution`](crate::distribution), [`presence`](crate::presence),
    //! [`kv`](crate::kv), [`log`](crate::log).

    pub use crate::bindings::workflow_rules::Guest;
    pub use crate::types::{RoutingDecision, RoutingTarget, Task, Worker};
}

pub mod event_subscriber {
    //! The `event-subscriber` world: receives the events of the channels it subscribes to.
    //!
    //! Implement [`Guest`] and export it with [`export_event_subscriber!`](crate::export_event_subscriber).
    //!
    //! Imports: [`events`](crate::events), [`queues`](crate::queues),
    //! [`distribution`](crate::distribution), [`kv`](crate::kv), [`log`](crate::log).

    pub use crate::bindings::event_subscriber::Guest;
    pub use crate::types::Event;
}

#[cfg(test)]
mod tests {
    use crate::telephony::{
        self, DialQueue, DialTarget, Instruction, Prompt, RejectReason, Say, Trigger,
    };
    use crate::types::GatherOutcome;

    #[test]
    fn gather_defaults_mirror_twiml() {
        let Instruction::Gather(gather) = telephony::gather().build() else {
            panic!("not a gather");
        };
        assert_eq!(gather.num_digits, None);
        assert_eq!(gather.timeout_seconds, 5);
        assert_eq!(gather.finish_on_key.as_deref(), Some("#"));
        assert_eq!(gather.action, None);
        assert!(gather.prompts.is_empty());
    }

    #[test]
    fn gather_options_and_prompts_in_order() {
        let Instruction::Gather(gather) = telephony::gather()
            .num_digits(1)
            .timeout(7)
            .finish_on_key(None)
            .action("module:next")
            .say("hi")
            .pause(2)
            .play("https://example.com/a.wav")
            .into()
        else {
            panic!("not a gather");
        };
        assert_eq!(gather.num_digits, Some(1));
        assert_eq!(gather.timeout_seconds, 7);
        assert_eq!(gather.finish_on_key, None);
        assert_eq!(gather.action.as_deref(), Some("module:next"));
        match gather.prompts.as_slice() {
            [Prompt::Say(say), Prompt::Pause(2), Prompt::Play(play)] => {
                assert_eq!(say.text, "hi");
                assert_eq!(say.loop_count, 1);
                assert_eq!(play.url, "https://example.com/a.wav");
                assert_eq!(play.loop_count, 1);
            }
            other => panic!("unexpected prompts {other:?}"),
        }
    }

    #[test]
    fn say_builder_sets_voice_language_and_loop() {
        let say = Say::new("hola")
            .voice("woman")
            .language("es-ES")
            .loop_count(3);
        assert_eq!(say.voice.as_deref(), Some("woman"));
        assert_eq!(say.language.as_deref(), Some("es-ES"));
        assert_eq!(say.loop_count, 3);
        assert!(matches!(Instruction::from(say), Instruction::Say(_)));
    }

    #[test]
    fn dial_defaults_and_several_targets() {
        let Instruction::Dial(dial) = telephony::dial_number("+15005550006")
            .client("alice")
            .queue_with_url("support", "module:whisper")
            .build()
        else {
            panic!("not a dial");
        };
        assert_eq!(dial.timeout_seconds, 30);
        assert_eq!(dial.action, None);
        assert_eq!(dial.caller_id, None);
        assert_eq!(dial.time_limit_seconds, None);
        match dial.targets.as_slice() {
            [
                DialTarget::Number(number),
                DialTarget::Client(client),
                DialTarget::Queue(DialQueue { name, url }),
            ] => {
                assert_eq!(number, "+15005550006");
                assert_eq!(client, "alice");
                assert_eq!(name, "support");
                assert_eq!(url.as_deref(), Some("module:whisper"));
            }
            other => panic!("unexpected targets {other:?}"),
        }
    }

    #[test]
    fn dial_options() {
        let Instruction::Dial(dial) = telephony::dial_queue("sales")
            .timeout(10)
            .action("module:after")
            .caller_id("+15005550001")
            .time_limit(60)
            .into()
        else {
            panic!("not a dial");
        };
        assert_eq!(dial.timeout_seconds, 10);
        assert_eq!(dial.action.as_deref(), Some("module:after"));
        assert_eq!(dial.caller_id.as_deref(), Some("+15005550001"));
        assert_eq!(dial.time_limit_seconds, Some(60));
        assert!(matches!(
            dial.targets.as_slice(),
            [DialTarget::Queue(DialQueue { url: None, .. })]
        ));
    }

    #[test]
    fn enqueue_defaults_and_options() {
        let Instruction::Enqueue(plain) = telephony::enqueue("support").build() else {
            panic!("not an enqueue");
        };
        assert_eq!(plain.queue, "support");
        assert_eq!(plain.priority, 0);
        assert!(plain.wait_uri.is_none() && plain.action.is_none());
        assert!(plain.workflow_sid.is_none() && plain.task_attributes.is_none());

        let Instruction::Enqueue(full) = telephony::enqueue("support")
            .wait_uri("module:hold")
            .action("module:after")
            .priority(-2)
            .workflow_sid("WW1")
            .task_attributes("{}")
            .build()
        else {
            panic!("not an enqueue");
        };
        assert_eq!(full.wait_uri.as_deref(), Some("module:hold"));
        assert_eq!(full.action.as_deref(), Some("module:after"));
        assert_eq!(full.priority, -2);
        assert_eq!(full.workflow_sid.as_deref(), Some("WW1"));
        assert_eq!(full.task_attributes.as_deref(), Some("{}"));
    }

    #[test]
    fn bare_instructions() {
        assert!(matches!(telephony::leave(), Instruction::Leave));
        assert!(matches!(
            telephony::reject(),
            Instruction::Reject(RejectReason::Rejected)
        ));
        assert!(matches!(
            telephony::reject_busy(),
            Instruction::Reject(RejectReason::Busy)
        ));
    }

    #[test]
    fn trigger_helpers() {
        let gather = Trigger::Gather(GatherOutcome {
            digits: "42".into(),
            timed_out: false,
        });
        assert_eq!(gather.gathered_digits(), Some("42"));
        assert!(gather.dial_outcome().is_none());
        assert_eq!(Trigger::Incoming.gathered_digits(), None);
        assert!(Trigger::Redirect.enqueue_outcome().is_none());
    }
}
