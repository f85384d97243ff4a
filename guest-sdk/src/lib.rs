//! Write switchboard modules in Rust.
//!
//! A switchboard module is a WebAssembly component that implements one of the platform's four
//! worlds. This crate holds the bindings for all of them, generated from the platform's WIT
//! contract (`switchboard:platform@0.1.0`), plus a few builders for the most common instructions.
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

use types::{Play, Say};

impl Say {
    /// Speaks `text` once, in the account's default voice and language.
    ///
    /// Use this rather than a struct literal: a `loop_count` of 0 means "repeat until the call
    /// moves on", so a zeroed `Say` would never stop talking.
    pub fn new(text: impl Into<String>) -> Self {
        Say {
            text: text.into(),
            voice: None,
            language: None,
            loop_count: 1,
        }
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

    pub use crate::bindings::telephony_handler::Guest;
    pub use crate::types::{
        CallDirection, CallInfo, CallStatus, Dial, DialOutcome, DialQueue, DialStatus, DialTarget,
        Enqueue, EnqueueOutcome, Gather, GatherOutcome, HandlerFailure, Instruction, Play, Prompt,
        QueueResult, RejectReason, Say, Trigger,
    };

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
