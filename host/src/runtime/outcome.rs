//! How an invocation ended, classified so tenants, metering and alerts can tell a bug in a module
//! from a limit it hit.

use serde::Serialize;
use wasmtime::{Trap, WasmBacktrace};

use super::limits::{DeadlineExceeded, HostCallLimitExceeded, MemoryLimitExceeded};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// The module returned normally.
    Ok,
    /// The module returned its own error value.
    GuestError,
    /// The instruction budget (fuel) ran out.
    OutOfFuel,
    /// The wall-clock deadline passed.
    Deadline,
    /// Memory and tables together grew past the budget.
    MemoryLimit,
    /// Too many calls into host interfaces.
    HostCallLimit,
    /// The wasm stack overflowed (deep or infinite recursion).
    StackOverflow,
    /// `unreachable` executed: in Rust guests, a panic.
    Unreachable,
    /// Any other trap: out-of-bounds access, division by zero, bad indirect call, ...
    Trap,
    /// The host could not run the module (e.g. no instance slot); not the module's fault.
    HostError,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::GuestError => "guest-error",
            Outcome::OutOfFuel => "out-of-fuel",
            Outcome::Deadline => "deadline",
            Outcome::MemoryLimit => "memory-limit",
            Outcome::HostCallLimit => "host-call-limit",
            Outcome::StackOverflow => "stack-overflow",
            Outcome::Unreachable => "unreachable",
            Outcome::Trap => "trap",
            Outcome::HostError => "host-error",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Outcome::ALL.iter().copied().find(|o| o.as_str() == text)
    }

    pub const ALL: [Outcome; 10] = [
        Outcome::Ok,
        Outcome::GuestError,
        Outcome::OutOfFuel,
        Outcome::Deadline,
        Outcome::MemoryLimit,
        Outcome::HostCallLimit,
        Outcome::StackOverflow,
        Outcome::Unreachable,
        Outcome::Trap,
        Outcome::HostError,
    ];

    /// Whether the module was stopped by the host (as opposed to returning, well or badly).
    pub fn is_trap(self) -> bool {
        !matches!(self, Outcome::Ok | Outcome::GuestError | Outcome::HostError)
    }
}

/// Why an invocation did not produce a result, with everything needed to find the cause.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Failure {
    pub outcome: Outcome,
    pub message: String,
    /// The wasm call stack at the trap, innermost frame first, when the trap happened in wasm.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backtrace: Option<String>,
    /// What the module wrote to stderr (a panic message, for instance).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stderr: Option<String>,
}

/// Classifies an error returned by wasmtime for a call into a guest.
pub fn classify(error: &wasmtime::Error) -> (Outcome, String) {
    if let Some(limit) = error.downcast_ref::<MemoryLimitExceeded>() {
        return (Outcome::MemoryLimit, limit.to_string());
    }
    if let Some(limit) = error.downcast_ref::<HostCallLimitExceeded>() {
        return (Outcome::HostCallLimit, limit.to_string());
    }
    if let Some(limit) = error.downcast_ref::<DeadlineExceeded>() {
        return (Outcome::Deadline, limit.to_string());
    }
    if let Some(trap) = error.downcast_ref::<Trap>() {
        let outcome = match trap {
            Trap::OutOfFuel => Outcome::OutOfFuel,
            Trap::Interrupt => Outcome::Deadline,
            Trap::StackOverflow => Outcome::StackOverflow,
            Trap::UnreachableCodeReached => Outcome::Unreachable,
            _ => Outcome::Trap,
        };
        let message = match outcome {
            Outcome::OutOfFuel => {
                "out of fuel: the invocation used its whole instruction budget".to_string()
            }
            Outcome::Deadline => {
                "deadline exceeded: the invocation ran past its wall-clock limit".to_string()
            }
            _ => format!("wasm trap: {trap}"),
        };
        return (outcome, message);
    }
    (Outcome::Trap, format!("{error:#}"))
}

/// The wasm backtrace attached to a trap, one frame per line.
pub fn backtrace(error: &wasmtime::Error) -> Option<String> {
    let trace = error.downcast_ref::<WasmBacktrace>()?;
    let text = trace.to_string();
    (!text.trim().is_empty()).then(|| text.trim().to_string())
}
