//! Hold music for a queue: tells waiting callers where they are in line and roughly how long they
//! have left, plays music (or keeps quiet) for a while, and lets them press 0 to leave a message.
//!
//! Name it as an enqueue's wait URI, with an action that takes the message:
//!
//! ```text
//! telephony::enqueue("support").wait_uri("module:hold-music").action("module:take-message")
//! ```
//!
//! # Each cycle
//!
//! The caller hears an announcement such as "Thank you for holding. You are number 3 in line.
//! Your estimated wait is about 2 minutes. Press 0 to leave a message.", then the music once (or
//! `interval-seconds` of silence when no music is configured). When that runs out the host asks
//! the module again with fresh queue figures, so the announcement repeats, up to date, every cycle.
//!
//! The announcement is spoken as several prompts, the figures apart from the words around them
//! and each figure in parts ("Thank you for holding. You are number", "2000", "500", "43", "in
//! line. ..."), the way telephone systems string recorded phrases together. The host synthesizes
//! each distinct text once and keeps the clip, so every position and estimate is said with about
//! a hundred and thirty clips, made once, instead of a new sentence every time any caller's
//! position or estimate changes.
//!
//! Both parts are prompts of a one-digit gather with no action, so a key pressed at any moment
//! comes straight back to this module as the call's `Digits` parameter:
//!
//! - **0** says "Connecting you to voicemail." and leaves the queue; the enqueue's action then runs
//!   with `QueueResult=leave`, and that is where the message is taken.
//! - Any other key is not an option and the caller simply keeps holding (the cycle starts over).
//!
//! # Estimated wait
//!
//! The host reports the average wait of recently served callers and how long this caller has
//! waited. The estimate is the difference, rounded up to whole minutes ("about 1 minute", "about
//! 3 minutes"). When there is no average yet, or the caller has already waited longer than it, no
//! figure would be honest, so the caller hears "You will be connected shortly." instead. The caller
//! at the head of the queue hears "You are next in line."
//!
//! # Configuration
//!
//! Read from the account's key-value store ([`kv`]) on every cycle, so a change reaches callers
//! already waiting without a new module version:
//!
//! | key | value | default |
//! |---|---|---|
//! | `hold-music/interval-seconds` | seconds of silence between announcements, as decimal text; clamped to 5..=600 | 30 |
//! | `hold-music/music-url` | an http(s) URL or `/v1/Media/...` address, played once between announcements instead of the silence (`interval-seconds` then has no effect) | none: silence |
//!
//! A missing, malformed or unreadable value means the default: a caller on hold should hear the
//! queue's usual announcements even while the store is unavailable, not lose their place to an
//! error. Read failures are logged as warnings.

use switchboard_guest::kv;
use switchboard_guest::log::{self, Level};
use switchboard_guest::wait_state::{self, CallInfo, Guest, QueueStatus, WaitInstruction};

/// Store key of the silence between announcements, in seconds.
const INTERVAL_KEY: &str = "hold-music/interval-seconds";
/// Store key of the music played between announcements.
const MUSIC_URL_KEY: &str = "hold-music/music-url";

const DEFAULT_INTERVAL_SECONDS: u32 = 30;
/// Shorter than this and the announcement would leave no time for anything else.
const MIN_INTERVAL_SECONDS: u32 = 5;
/// Longer than this and the position announced would go stale.
const MAX_INTERVAL_SECONDS: u32 = 600;

/// The key that takes the caller out of the queue to leave a message.
const LEAVE_KEY: &str = "0";

struct HoldMusic;

impl Guest for HoldMusic {
    fn on_wait(call: CallInfo, status: QueueStatus) -> Vec<WaitInstruction> {
        match call.parameter("Digits") {
            Some(LEAVE_KEY) => leave_for_message(),
            // Any other key (or none, when the host asks because the last cycle ran out): hold on.
            _ => vec![hold_cycle(&status, &Config::load())],
        }
    }
}

/// What the tenant configured, with the defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Config {
    interval_seconds: u32,
    music_url: Option<String>,
}

impl Config {
    /// Reads the configuration from the store.
    fn load() -> Self {
        Config::from_values(
            read(INTERVAL_KEY).as_deref(),
            read(MUSIC_URL_KEY).as_deref(),
        )
    }

    /// The configuration for the raw stored values (`None` when unset).
    fn from_values(interval: Option<&[u8]>, music_url: Option<&[u8]>) -> Self {
        Config {
            interval_seconds: interval
                .and_then(|raw| std::str::from_utf8(raw).ok())
                .and_then(|text| text.trim().parse::<u64>().ok())
                .map_or(DEFAULT_INTERVAL_SECONDS, |seconds| {
                    let clamped = seconds.clamp(
                        u64::from(MIN_INTERVAL_SECONDS),
                        u64::from(MAX_INTERVAL_SECONDS),
                    );
                    u32::try_from(clamped).unwrap_or(DEFAULT_INTERVAL_SECONDS)
                }),
            music_url: music_url
                .and_then(|raw| std::str::from_utf8(raw).ok())
                .map(str::trim)
                .filter(|url| !url.is_empty())
                .map(str::to_string),
        }
    }
}

/// The stored value of `key`; `None` when it is unset or the store cannot be read.
fn read(key: &str) -> Option<Vec<u8>> {
    kv::get(key).unwrap_or_else(|error| {
        log::log(
            Level::Warn,
            "hold-music: cannot read configuration, using the default",
            &[
                ("key".to_string(), key.to_string()),
                ("error".to_string(), error.to_string()),
            ],
        );
        None
    })
}

/// One cycle of holding: the announcement, then the music or the silence.
///
/// Both are prompts of a gather so the caller can press 0 at any moment, not only in a window
/// after the music. The gather sends keys back to this module (no action), ends after one key (so
/// no finishing key is needed) and waits only a second after the prompts: with no key pressed it
/// ends, the list runs out, and the host asks for the next cycle.
fn hold_cycle(status: &QueueStatus, config: &Config) -> WaitInstruction {
    let gather = announcement(status).into_iter().fold(
        wait_state::gather()
            .num_digits(1)
            .timeout(1)
            .finish_on_key(None),
        |gather, prompt| gather.say(prompt),
    );
    match &config.music_url {
        Some(url) => gather.play(url.as_str()),
        None => gather.pause(config.interval_seconds),
    }
    .into()
}

/// The answer to the leave key: the enqueue's action takes it from here.
fn leave_for_message() -> Vec<WaitInstruction> {
    vec![
        wait_state::say("Connecting you to voicemail."),
        wait_state::leave(),
    ]
}

/// What the caller hears at the start of each cycle, as the texts of its prompts: every figure
/// is a prompt of its own, the words around it are the same for every caller.
fn announcement(status: &QueueStatus) -> Vec<String> {
    let mut prompts = Vec::new();
    let mut words = String::from("Thank you for holding.");
    match status.position {
        // 0 should not happen; if it does, the caller is certainly not behind anyone.
        0 | 1 => words.push_str(" You are next in line."),
        position => {
            words.push_str(" You are number");
            prompts.push(std::mem::take(&mut words));
            prompts.extend(number_parts(position));
            words.push_str("in line.");
        }
    }
    match estimated_minutes(status.queue_time_seconds, status.average_wait_seconds) {
        Some(minutes) => {
            words.push_str(" Your estimated wait is about");
            prompts.push(std::mem::take(&mut words));
            prompts.extend(number_parts(minutes));
            words.push_str(if minutes == 1 { "minute." } else { "minutes." });
        }
        None => words.push_str(" You will be connected shortly."),
    }
    words.push_str(&format!(" Press {LEAVE_KEY} to leave a message."));
    prompts.push(words);
    prompts
}

/// A number as the figures it is said with: thousands, hundreds, then the rest (2543 is "2000",
/// "500", "43"), so any number up to 9999 is said with the same 117 clips. Above that the
/// thousands are said the same way, followed by "thousand".
fn number_parts(number: u32) -> Vec<String> {
    if number == 0 {
        return vec!["0".to_string()];
    }
    let mut parts = Vec::new();
    let (thousands, rest) = (number / 1000, number % 1000);
    match thousands {
        0 => {}
        1..=9 => parts.push(format!("{thousands}000")),
        _ => {
            parts.extend(number_parts(thousands));
            parts.push("thousand".to_string());
        }
    }
    let (hundreds, rest) = (rest / 100, rest % 100);
    if hundreds > 0 {
        parts.push(format!("{hundreds}00"));
    }
    if rest > 0 {
        parts.push(rest.to_string());
    }
    parts
}

/// The caller's remaining wait in whole minutes, rounded up; `None` when there is no average to
/// go by (0) or the caller has already waited at least as long as it.
fn estimated_minutes(waited_seconds: u32, average_wait_seconds: u32) -> Option<u32> {
    average_wait_seconds
        .checked_sub(waited_seconds)
        .filter(|&remaining| remaining > 0)
        .map(|remaining| remaining.div_ceil(60))
}

switchboard_guest::export_wait_state!(HoldMusic);

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_guest::types::{CallDirection, CallStatus};
    use switchboard_guest::wait_state::Prompt;

    fn status(position: u32, waited: u32, average: u32) -> QueueStatus {
        QueueStatus {
            queue_sid: "QU1".to_string(),
            queue_name: "support".to_string(),
            position,
            queue_time_seconds: waited,
            average_wait_seconds: average,
            current_size: position,
            max_size: 100,
        }
    }

    fn call_with_digits(digits: &str) -> CallInfo {
        CallInfo {
            call_sid: "CA1".to_string(),
            account_sid: "AC1".to_string(),
            from: "+15550000100".to_string(),
            to: "+15550000200".to_string(),
            direction: CallDirection::Inbound,
            status: CallStatus::InProgress,
            failure: None,
            parameters: vec![("Digits".to_string(), digits.to_string())],
        }
    }

    fn default_config() -> Config {
        Config::from_values(None, None)
    }

    #[test]
    fn estimate_rounds_remaining_wait_up_to_minutes() {
        assert_eq!(estimated_minutes(40, 100), Some(1));
        assert_eq!(estimated_minutes(0, 60), Some(1));
        assert_eq!(estimated_minutes(0, 61), Some(2));
        assert_eq!(estimated_minutes(10, 200), Some(4));
    }

    #[test]
    fn no_estimate_without_an_average_or_once_it_is_exceeded() {
        for (waited, average) in [(0, 0), (30, 0), (100, 100), (150, 100)] {
            assert_eq!(estimated_minutes(waited, average), None);
        }
    }

    #[test]
    fn announcement_keeps_every_figure_in_a_prompt_of_its_own() {
        assert_eq!(
            announcement(&status(3, 30, 130)),
            [
                "Thank you for holding. You are number",
                "3",
                "in line. Your estimated wait is about",
                "2",
                "minutes. Press 0 to leave a message.",
            ]
        );
        assert_eq!(
            announcement(&status(4, 40, 100)),
            [
                "Thank you for holding. You are number",
                "4",
                "in line. Your estimated wait is about",
                "1",
                "minute. Press 0 to leave a message.",
            ]
        );
        assert_eq!(
            announcement(&status(2, 0, 0)),
            [
                "Thank you for holding. You are number",
                "2",
                "in line. You will be connected shortly. Press 0 to leave a message.",
            ]
        );
        assert_eq!(
            announcement(&status(2543, 0, 0)),
            [
                "Thank you for holding. You are number",
                "2000",
                "500",
                "43",
                "in line. You will be connected shortly. Press 0 to leave a message.",
            ]
        );
        assert_eq!(
            announcement(&status(1, 0, 130)),
            [
                "Thank you for holding. You are next in line. Your estimated wait is about",
                "3",
                "minutes. Press 0 to leave a message.",
            ]
        );
        assert_eq!(
            announcement(&status(1, 0, 0)),
            ["Thank you for holding. You are next in line. \
              You will be connected shortly. Press 0 to leave a message."]
        );
    }

    #[test]
    fn numbers_are_said_in_parts() {
        let parts = |n: u32| number_parts(n);
        assert_eq!(parts(0), ["0"]);
        assert_eq!(parts(7), ["7"]);
        assert_eq!(parts(43), ["43"]);
        assert_eq!(parts(100), ["100"]);
        assert_eq!(parts(2543), ["2000", "500", "43"]);
        assert_eq!(parts(1005), ["1000", "5"]);
        assert_eq!(parts(5000), ["5000"]);
        assert_eq!(parts(25_310), ["25", "thousand", "300", "10"]);
    }

    #[test]
    fn every_position_and_estimate_is_said_with_few_clips() {
        let texts: std::collections::HashSet<String> = (1..=5000)
            .flat_map(|position| {
                [0, 30, 600, 6000, 60_000]
                    .into_iter()
                    .flat_map(move |average| announcement(&status(position, 10, average)))
            })
            .collect();
        assert!(texts.len() <= 130, "{} different texts", texts.len());
    }

    #[test]
    fn interval_defaults_parses_and_clamps() {
        let interval = |raw: Option<&[u8]>| Config::from_values(raw, None).interval_seconds;
        assert_eq!(interval(None), 30);
        assert_eq!(interval(Some(b"45")), 45);
        assert_eq!(interval(Some(b" 45\n")), 45);
        assert_eq!(interval(Some(b"2")), 5);
        assert_eq!(interval(Some(b"0")), 5);
        assert_eq!(interval(Some(b"99999999999")), 600);
        assert_eq!(interval(Some(b"-10")), 30);
        assert_eq!(interval(Some(b"half a minute")), 30);
        assert_eq!(interval(Some(b"")), 30);
        assert_eq!(interval(Some(&[0xff, 0xfe])), 30);
    }

    #[test]
    fn music_url_is_trimmed_and_blank_means_none() {
        let music = |raw: Option<&[u8]>| Config::from_values(None, raw).music_url;
        assert_eq!(music(None), None);
        assert_eq!(music(Some(b"  ")), None);
        assert_eq!(music(Some(&[0xff])), None);
        assert_eq!(
            music(Some(b" https://example.com/hold.mp3\n")).as_deref(),
            Some("https://example.com/hold.mp3")
        );
    }

    #[test]
    fn cycle_without_music_is_silence_inside_a_one_key_gather() {
        let WaitInstruction::Gather(gather) = hold_cycle(&status(2, 0, 0), &default_config())
        else {
            panic!("not a gather");
        };
        assert_eq!(gather.num_digits, Some(1));
        assert_eq!(gather.timeout_seconds, 1);
        assert_eq!(gather.finish_on_key, None);
        assert_eq!(gather.action, None);
        match gather.prompts.as_slice() {
            [
                Prompt::Say(words),
                Prompt::Say(position),
                Prompt::Say(rest),
                Prompt::Pause(30),
            ] => {
                assert_eq!(words.text, "Thank you for holding. You are number");
                assert_eq!(position.text, "2");
                assert!(rest.text.starts_with("in line."));
                assert_eq!(position.loop_count, 1);
            }
            other => panic!("unexpected prompts {other:?}"),
        }
    }

    #[test]
    fn cycle_with_music_plays_it_once() {
        let config = Config::from_values(Some(b"60"), Some(b"/v1/Media/ME1"));
        let WaitInstruction::Gather(gather) = hold_cycle(&status(2, 0, 0), &config) else {
            panic!("not a gather");
        };
        match gather.prompts.as_slice() {
            [
                Prompt::Say(_),
                Prompt::Say(_),
                Prompt::Say(_),
                Prompt::Play(play),
            ] => {
                assert_eq!(play.url, "/v1/Media/ME1");
                assert_eq!(play.loop_count, 1);
            }
            other => panic!("unexpected prompts {other:?}"),
        }
    }

    #[test]
    fn zero_leaves_the_queue() {
        // The leave key is answered before the configuration is read, so no host call is made.
        let answer = HoldMusic::on_wait(call_with_digits("0"), status(2, 0, 0));
        match answer.as_slice() {
            [WaitInstruction::Say(say), WaitInstruction::Leave] => {
                assert_eq!(say.text, "Connecting you to voicemail.");
            }
            other => panic!("unexpected answer {other:?}"),
        }
    }
}
