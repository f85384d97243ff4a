//! A telephony handler that misbehaves on request, for the host's end-to-end tests.
//!
//! The call's `to` field picks the behaviour, so one component covers every case and a test only
//! has to choose the number it dials. On a real call, where `to` is a phone number (`+...`), the
//! caller's `from` picks it instead. When the module runs as a fallback (the call carries the
//! primary's failure) it says which error it recovers from, whatever the behaviour.
//!
//! | `to` | behaviour |
//! |---|---|
//! | `loop` | spins forever (fuel / epoch interruption) |
//! | `grow` | allocates 1 MiB chunks forever and keeps them (memory limit) |
//! | `trap` | panics (guest trap) |
//! | `error` | returns an error (handler failure) |
//! | `kv` | increments the `visits` counter and says its new value |
//! | `log` | writes one structured log line |
//! | `hostcalls` | writes a million log lines (cost of host calls) |
//! | `recurse` | recurses without bound (shadow-stack overflow, an out-of-bounds trap) |
//! | `speak` | has "hello from a module" synthesized through `media` and says how long it is |
//! | anything else | says "ok" and hangs up |

use std::hint::black_box;

use switchboard_guest::log::{self, Level};
use switchboard_guest::telephony::{self, CallInfo, Guest, Instruction, Trigger};
use switchboard_guest::{kv, media};

struct Misbehave;

impl Guest for Misbehave {
    fn handle(call: CallInfo, _trigger: Trigger) -> Result<Vec<Instruction>, String> {
        if let Some(failure) = &call.failure {
            return Ok(vec![
                telephony::say(format!(
                    "recovered from error {} at {}",
                    failure.code, failure.uri
                )),
                telephony::hangup(),
            ]);
        }
        let behaviour = if call.to.starts_with('+') {
            call.from.as_str()
        } else {
            call.to.as_str()
        };
        match behaviour {
            "loop" => spin(),
            "grow" => grow(),
            "trap" => panic!("misbehave asked to trap"),
            "error" => Err("misbehave returned an error".to_string()),
            "kv" => {
                let visits = kv::increment("visits", 1).map_err(|e| e.to_string())?;
                Ok(vec![telephony::say(format!("visit {visits}"))])
            }
            "log" => {
                log::log(
                    Level::Info,
                    "misbehave says hi",
                    &[("k".into(), "v".into())],
                );
                Ok(vec![telephony::say("logged")])
            }
            "hostcalls" => {
                // Trace, so that a host filtering at the usual levels is not flooded with lines.
                for _ in 0..1_000_000 {
                    log::log(Level::Trace, "misbehave host call", &[]);
                }
                Ok(vec![telephony::say("done")])
            }
            "recurse" => {
                recurse(black_box(0));
                Ok(vec![telephony::say("unreachable")])
            }
            "speak" => {
                let speech = media::synthesize("hello from a module", None, None)?;
                Ok(vec![telephony::say(format!(
                    "spoke for {} ms",
                    speech.duration_ms
                ))])
            }
            _ => Ok(vec![telephony::say("ok"), telephony::hangup()]),
        }
    }
}

/// Burns CPU forever; `black_box` keeps the optimiser from proving the loop has no effect.
fn spin() -> ! {
    let mut counter = 0u64;
    loop {
        counter = black_box(counter.wrapping_add(1));
    }
}

/// Grows linear memory without bound: every chunk is filled with a non-zero byte, so the pages
/// are really written, and kept alive, so the allocator cannot reuse them.
fn grow() -> ! {
    const CHUNK: usize = 1 << 20;
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    loop {
        chunks.push(vec![0xA5; CHUNK]);
        black_box(&chunks);
    }
}

/// Recurses until the stack overflows. Each frame holds a 4 KiB array that is used after the
/// recursive call, so the call cannot become a loop and the frame cannot shrink away.
///
/// The array lives on the shadow stack in linear memory (1 MiB, placed below the data), not on the
/// engine's native stack: after about 256 frames the stack pointer wraps below address 0 and the
/// next store traps as an out-of-bounds memory access, long before the engine's own stack limit.
#[allow(unconditional_recursion, reason = "overflowing the stack is the point")]
#[inline(never)]
fn recurse(depth: u64) -> u64 {
    let frame = black_box([depth.to_le_bytes()[0]; 4096]);
    let deeper = recurse(black_box(depth + 1));
    deeper.wrapping_add(u64::from(frame[depth as usize % frame.len()]))
}

switchboard_guest::export_telephony_handler!(Misbehave);
