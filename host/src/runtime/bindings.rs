//! Host-side bindings generated from `wit/`, one module per world.
//!
//! The interfaces shared between worlds are generated once (in `telephony`, or `workflow` for
//! `distribution`) and reused by the other worlds through `with`, so one host implementation of
//! each interface serves every world.

pub mod telephony {
    wasmtime::component::bindgen!({
        world: "telephony-handler",
        path: "../wit",
        imports: { default: async | trappable },
        exports: { default: async },
    });
}

pub mod workflow {
    wasmtime::component::bindgen!({
        world: "workflow-rules",
        path: "../wit",
        imports: { default: async | trappable },
        exports: { default: async },
        with: {
            "switchboard:platform/types": super::telephony::switchboard::platform::types,
            "switchboard:platform/presence": super::telephony::switchboard::platform::presence,
            "switchboard:platform/kv": super::telephony::switchboard::platform::kv,
            "switchboard:platform/log": super::telephony::switchboard::platform::log,
        },
    });
}

pub mod wait_state {
    wasmtime::component::bindgen!({
        world: "wait-state",
        path: "../wit",
        imports: { default: async | trappable },
        exports: { default: async },
        with: {
            "switchboard:platform/types": super::telephony::switchboard::platform::types,
            "switchboard:platform/queues": super::telephony::switchboard::platform::queues,
            "switchboard:platform/media": super::telephony::switchboard::platform::media,
            "switchboard:platform/events": super::telephony::switchboard::platform::events,
            "switchboard:platform/kv": super::telephony::switchboard::platform::kv,
            "switchboard:platform/log": super::telephony::switchboard::platform::log,
        },
    });
}

pub mod subscriber {
    wasmtime::component::bindgen!({
        world: "event-subscriber",
        path: "../wit",
        imports: { default: async | trappable },
        exports: { default: async },
        with: {
            "switchboard:platform/types": super::telephony::switchboard::platform::types,
            "switchboard:platform/queues": super::telephony::switchboard::platform::queues,
            "switchboard:platform/events": super::telephony::switchboard::platform::events,
            "switchboard:platform/kv": super::telephony::switchboard::platform::kv,
            "switchboard:platform/log": super::telephony::switchboard::platform::log,
            "switchboard:platform/distribution": super::workflow::switchboard::platform::distribution,
        },
    });
}

pub use telephony::switchboard::platform::{events, kv, log, media, presence, queues, types};
pub use workflow::switchboard::platform::distribution;
