//! TwiML documents: turning an HTTP application's answer into [`Instruction`]s, and checking
//! instruction lists however they were produced.
//!
//! A call's instructions come either from a wasm module (which returns [`Instruction`]s directly) or
//! from an HTTP application (which returns a TwiML document). The call interpreter must not care which,
//! so the value rules live in one place, [`validate`], and [`parse`] runs it on what it built: a value a
//! module may not return cannot be smuggled in through XML, and the other way round.
//!
//! Errors carry the reference platform's codes so tenants can look them up as they would there:
//! [`DOCUMENT_PARSE_FAILURE`] (12100) when the document is not a TwiML document at all (not
//! well-formed XML, root not `<Response>`, text outside verbs, empty body) and
//! [`SCHEMA_VALIDATION_FAILURE`] (12200) when it is one but asks for something this host cannot run
//! (unknown verb, verb nested where it may not be, attribute with an invalid value, missing body).
//! Every message names what was wrong and where (element, line and column, attribute and value),
//! because the tenant reading it has only the message and their document to go on.
//!
//! Attributes this host does not act on (`statusCallback`, `record`, `speechTimeout`, ...) are
//! ignored, as the reference platform ignores attributes it does not know; an attribute that differs
//! from a known one only by letter case is rejected, because silently ignoring `numdigits` would leave
//! the tenant wondering why their gather never ends. Attributes this host cannot honour and whose
//! silent omission would change what the caller experiences (`<Play digits>`, `<Gather
//! input="speech">`, `<Gather actionOnEmptyResult="true">`, `<Client><Parameter>`) are rejected
//! rather than ignored.
//!
//! Bounds, chosen to match the reference platform where it documents one and to stop runaway values
//! where it does not (a module computing a loop count must not tie a line up for hours):
//!
//! | value | bound |
//! |---|---|
//! | document size | at most [`MAX_DOCUMENT_BYTES`] (256 KiB) |
//! | element nesting | at most 8 deep (TwiML needs 4: `Response/Dial/Client/Identity`) |
//! | `Say` text | not blank, at most 4096 characters |
//! | `Say`/`Play` loop | 0 to 1000 (0 = repeat until the call moves on) |
//! | `Pause` length | 1 to 600 seconds |
//! | `Gather` numDigits | 1 to 100 (absent = until the finishing key or the timeout) |
//! | `Gather` timeout | 1 to 600 seconds (0 would end the gather before anyone could press a key) |
//! | `Gather` finishOnKey | one of `0`-`9`, `#`, `*`, or none (`finishOnKey=""`) |
//! | `Dial` targets | 1 to [`MAX_DIAL_TARGETS`] (10) |
//! | `Dial` timeout | 5 to 600 seconds |
//! | `Dial` timeLimit | 1 to 86400 seconds |
//! | number | `+` and 1 to 15 digits (E.164), or 1 to 15 digits |
//! | client identity | 1 to 256 characters, no whitespace, control or URI delimiter characters |
//! | queue name | 1 to 64 characters |
//! | `Enqueue` priority | 0 to 2147483647 |
//! | `Enqueue` workflowSid | `WW` and 32 lowercase hex digits |
//! | `Task` body | a JSON object; only with a workflowSid |
//! | URIs | not empty, at most 4096 characters, no whitespace or control characters |

use std::fmt;

use quick_xml::Reader;
use quick_xml::errors::IllFormedError;
use quick_xml::escape::resolve_xml_entity;
use quick_xml::events::{BytesStart, Event};

use crate::runtime::io::{
    Dial, DialTarget, Enqueue, Gather, Instruction, Play, Prompt, RejectReason, Say,
};

/// The reference platform's code for a document that is not a TwiML document at all.
pub const DOCUMENT_PARSE_FAILURE: u32 = 12100;
/// The reference platform's code for a TwiML document (or instruction list) that cannot run.
pub const SCHEMA_VALIDATION_FAILURE: u32 = 12200;
/// The largest document [`parse`] accepts; fetchers may stop reading a body at this size.
pub const MAX_DOCUMENT_BYTES: usize = 256 * 1024;
/// How many numbers, clients and queues one `Dial` may ring at once (the reference platform's limit).
pub const MAX_DIAL_TARGETS: usize = 10;

/// Deepest element nesting accepted while reading: twice what TwiML needs, so that documents nested a
/// little too deep still get the precise "may not be nested here" message, while a hostile document
/// cannot make the reader build an arbitrarily deep tree.
const MAX_DEPTH: usize = 8;
const MAX_SAY_CHARS: usize = 4096;
const MAX_URI_CHARS: usize = 4096;
const MAX_QUEUE_NAME_CHARS: usize = 64;
const MAX_IDENTITY_CHARS: usize = 256;
const MAX_CALLER_ID_CHARS: usize = 256;
const MAX_VOICE_CHARS: usize = 64;
const MAX_LANGUAGE_CHARS: usize = 35;
const MAX_NUMBER_DIGITS: usize = 15;
/// Characters a client identity may not contain: URI delimiters and "unwise" characters, which would
/// break `client:<identity>` addresses in webhooks.
const IDENTITY_FORBIDDEN: &str = "<>\"#%{}|\\^[]`";

const SAY_LOOP: Bound = Bound::new(0, 1000);
const PLAY_LOOP: Bound = Bound::new(0, 1000);
const PAUSE_LENGTH: Bound = Bound::new(1, 600);
const GATHER_NUM_DIGITS: Bound = Bound::new(1, 100);
const GATHER_TIMEOUT: Bound = Bound::new(1, 600);
const DIAL_TIMEOUT: Bound = Bound::new(5, 600);
const DIAL_TIME_LIMIT: Bound = Bound::new(1, 86_400);
const PRIORITY: Bound = Bound::new(0, i32::MAX.unsigned_abs());

const DEFAULT_LOOP: u32 = 1;
const DEFAULT_PAUSE_SECONDS: u32 = 1;
const DEFAULT_GATHER_TIMEOUT: u32 = 5;
const DEFAULT_FINISH_ON_KEY: &str = "#";
const DEFAULT_DIAL_TIMEOUT: u32 = 30;

const SUPPORTED_VERBS: [&str; 10] = [
    "Say", "Play", "Pause", "Gather", "Dial", "Enqueue", "Leave", "Redirect", "Hangup", "Reject",
];
const DIAL_NOUNS: [&str; 7] = [
    "Number",
    "Client",
    "Queue",
    "Sip",
    "Conference",
    "Application",
    "WhatsApp",
];

/// Why a document or an instruction list cannot run. `code` is the reference platform's error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct InvalidInstructions {
    pub code: u32,
    pub message: String,
}

impl InvalidInstructions {
    fn parse_failure(message: impl Into<String>) -> Self {
        InvalidInstructions {
            code: DOCUMENT_PARSE_FAILURE,
            message: message.into(),
        }
    }

    fn schema(message: impl Into<String>) -> Self {
        InvalidInstructions {
            code: SCHEMA_VALIDATION_FAILURE,
            message: message.into(),
        }
    }
}

type Result<T, E = InvalidInstructions> = std::result::Result<T, E>;

/// Parses a TwiML document into instructions. Verb and attribute names are case-sensitive as in TwiML.
///
/// The document is read into a small tree first (so that structure errors can point at the element
/// at fault, with its line and column), then each verb is mapped to its [`Instruction`], and finally
/// the result goes through [`validate`] so both ways of producing instructions obey the same rules.
pub fn parse(document: &str) -> Result<Vec<Instruction>, InvalidInstructions> {
    let root = read_tree(document)?;
    let mut instructions = Vec::new();
    for element in root.elements() {
        instructions.push(verb(element)?);
    }
    validate(&instructions)?;
    Ok(instructions)
}

/// Checks instructions however they were produced (a wasm module returns them directly): the same
/// value rules [`parse`] enforces, with the bounds listed in the module documentation. Messages name
/// the instruction by position (1-based) and the field by its name in the JSON/WIT shape.
pub fn validate(instructions: &[Instruction]) -> Result<(), InvalidInstructions> {
    for (index, instruction) in instructions.iter().enumerate() {
        let site = Site(format!(
            "instruction {} ({})",
            index + 1,
            instruction_name(instruction)
        ));
        validate_instruction(instruction, &site)?;
    }
    Ok(())
}

/// Checks what a wait-state application answered (over HTTP; a module's answer type already allows
/// nothing else): only the instructions that keep a caller in its queue or take it out of it.
pub fn validate_wait(instructions: &[Instruction]) -> Result<(), InvalidInstructions> {
    for (index, instruction) in instructions.iter().enumerate() {
        match instruction {
            Instruction::Say(_)
            | Instruction::Play(_)
            | Instruction::Pause { .. }
            | Instruction::Gather(_)
            | Instruction::Redirect { .. }
            | Instruction::Leave
            | Instruction::Hangup => {}
            other => {
                return Err(InvalidInstructions::schema(format!(
                    "instruction {} ({}) is not allowed while a caller waits in a queue; a wait document may use say, play, pause, gather, redirect, leave and hangup",
                    index + 1,
                    instruction_name(other)
                )));
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Value rules shared by the parser and the validator. Each returns the reason a value is wrong as a
// clause ("it is empty") that both callers wrap with their own notion of where the value came from.
// ---------------------------------------------------------------------------------------------

/// An inclusive range for a whole-number value.
#[derive(Debug, Clone, Copy)]
struct Bound {
    min: u32,
    max: u32,
}

impl Bound {
    const fn new(min: u32, max: u32) -> Self {
        Bound { min, max }
    }

    fn check(self, value: u32) -> Result<(), String> {
        if (self.min..=self.max).contains(&value) {
            Ok(())
        } else {
            Err(self.describe())
        }
    }

    fn describe(self) -> String {
        format!(
            "it must be a whole number from {} to {}",
            self.min, self.max
        )
    }
}

fn check_length(value: &str, max: usize) -> Result<(), String> {
    let length = value.chars().count();
    if length > max {
        Err(format!(
            "it is {length} characters long; the limit is {max}"
        ))
    } else {
        Ok(())
    }
}

fn check_say_text(text: &str) -> Result<(), String> {
    if text.trim().is_empty() {
        return Err("it is empty, so there is nothing to speak".into());
    }
    check_length(text, MAX_SAY_CHARS)
}

fn check_uri(uri: &str) -> Result<(), String> {
    if uri.is_empty() {
        return Err("it is empty".into());
    }
    check_length(uri, MAX_URI_CHARS)?;
    if uri.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("it contains whitespace or control characters".into());
    }
    Ok(())
}

/// A wait URI may be empty: on the reference platform `waitUrl=""` means the caller waits in silence.
fn check_wait_uri(uri: &str) -> Result<(), String> {
    if uri.is_empty() {
        Ok(())
    } else {
        check_uri(uri)
    }
}

fn check_voice(voice: &str) -> Result<(), String> {
    if voice.is_empty() {
        return Err("it is empty; leave it out to use the account's default voice".into());
    }
    check_length(voice, MAX_VOICE_CHARS)?;
    if !voice
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
    {
        return Err(
            "it may contain only letters, digits, '.', '-' and '_' (e.g. woman or Polly.Joanna)"
                .into(),
        );
    }
    Ok(())
}

/// A BCP 47 language tag in the shape TTS engines accept: a 2-3 letter language, then subtags.
fn check_language(language: &str) -> Result<(), String> {
    const SHAPE: &str = "it must be a language tag such as en-US, en-GB or fr-FR";
    if language.is_empty() {
        return Err("it is empty; leave it out to use the account's default language".into());
    }
    check_length(language, MAX_LANGUAGE_CHARS)?;
    let mut subtags = language.split('-');
    let primary = subtags.next().unwrap_or_default();
    if !(2..=3).contains(&primary.len()) || !primary.chars().all(|c| c.is_ascii_alphabetic()) {
        return Err(SHAPE.into());
    }
    if !subtags
        .all(|tag| (1..=8).contains(&tag.len()) && tag.chars().all(|c| c.is_ascii_alphanumeric()))
    {
        return Err(SHAPE.into());
    }
    Ok(())
}

fn check_finish_on_key(key: &str) -> Result<(), String> {
    let mut chars = key.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) if c.is_ascii_digit() || c == '#' || c == '*' => Ok(()),
        _ => Err(
            "it must be a single key: one of 0-9, # or * (or empty, in TwiML, to disable it)"
                .into(),
        ),
    }
}

fn check_number(number: &str) -> Result<(), String> {
    let digits = number.strip_prefix('+').unwrap_or(number);
    if (1..=MAX_NUMBER_DIGITS).contains(&digits.len()) && digits.chars().all(|c| c.is_ascii_digit())
    {
        Ok(())
    } else {
        Err(format!(
            "it must be an E.164 number such as +14155550100, or digits only (at most {MAX_NUMBER_DIGITS})"
        ))
    }
}

pub(crate) fn check_identity(identity: &str) -> Result<(), String> {
    if identity.is_empty() {
        return Err("it is empty".into());
    }
    check_length(identity, MAX_IDENTITY_CHARS)?;
    if let Some(c) = identity
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || IDENTITY_FORBIDDEN.contains(*c))
    {
        return Err(format!(
            "it contains {c:?}; an identity may not contain whitespace, control characters or any of {IDENTITY_FORBIDDEN}"
        ));
    }
    Ok(())
}

fn check_queue_name(name: &str) -> Result<(), String> {
    if name.trim().is_empty() {
        return Err("it is empty".into());
    }
    check_length(name, MAX_QUEUE_NAME_CHARS)?;
    if name.chars().any(char::is_control) {
        return Err("it contains control characters".into());
    }
    Ok(())
}

fn check_caller_id(caller_id: &str) -> Result<(), String> {
    if caller_id.is_empty() {
        return Err("it is empty; leave it out to use the caller's number".into());
    }
    check_length(caller_id, MAX_CALLER_ID_CHARS)?;
    if caller_id
        .chars()
        .any(|c| c.is_whitespace() || c.is_control())
    {
        return Err("it contains whitespace or control characters".into());
    }
    Ok(())
}

fn check_workflow_sid(sid: &str) -> Result<(), String> {
    if crate::sid::is_sid("WW", sid) {
        Ok(())
    } else {
        Err("it must be a workflow sid: WW followed by 32 lowercase hex digits".into())
    }
}

fn check_task_attributes(json: &str) -> Result<(), String> {
    match serde_json::from_str::<serde_json::Value>(json) {
        Ok(serde_json::Value::Object(_)) => Ok(()),
        Ok(_) => Err("it must be a JSON object such as {\"language\": \"en\"}".into()),
        Err(error) => Err(format!("it is not valid JSON ({error})")),
    }
}

/// A short, quoted rendering of a value for an error message: enough to recognise it, never the whole
/// 4096-character text.
fn preview(value: &str) -> String {
    const LIMIT: usize = 40;
    if value.chars().count() > LIMIT {
        let head: String = value.chars().take(LIMIT).collect();
        format!("{:?}...", head)
    } else {
        format!("{value:?}")
    }
}

// ---------------------------------------------------------------------------------------------
// The validator.
// ---------------------------------------------------------------------------------------------

/// Where in an instruction list a value sits, e.g. `instruction 2 (gather), prompt 1 (say)`.
struct Site(String);

impl Site {
    fn nested(&self, what: fmt::Arguments<'_>) -> Site {
        Site(format!("{}, {what}", self.0))
    }

    fn error(&self, message: impl fmt::Display) -> InvalidInstructions {
        InvalidInstructions::schema(format!("{}: {message}", self.0))
    }

    fn number(&self, field: &str, value: u32, bound: Bound) -> Result<()> {
        bound
            .check(value)
            .map_err(|reason| self.error(format_args!("{field} {value} is invalid: {reason}")))
    }

    fn text(&self, field: &str, value: &str, check: fn(&str) -> Result<(), String>) -> Result<()> {
        check(value).map_err(|reason| {
            self.error(format_args!(
                "{field} {} is invalid: {reason}",
                preview(value)
            ))
        })
    }

    fn optional_text(
        &self,
        field: &str,
        value: Option<&str>,
        check: fn(&str) -> Result<(), String>,
    ) -> Result<()> {
        value.map_or(Ok(()), |value| self.text(field, value, check))
    }
}

pub fn instruction_name(instruction: &Instruction) -> &'static str {
    match instruction {
        Instruction::Say(_) => "say",
        Instruction::Play(_) => "play",
        Instruction::Pause { .. } => "pause",
        Instruction::Gather(_) => "gather",
        Instruction::Dial(_) => "dial",
        Instruction::Enqueue(_) => "enqueue",
        Instruction::Leave => "leave",
        Instruction::Redirect { .. } => "redirect",
        Instruction::Hangup => "hangup",
        Instruction::Reject { .. } => "reject",
    }
}

fn validate_instruction(instruction: &Instruction, site: &Site) -> Result<()> {
    match instruction {
        Instruction::Say(say) => validate_say(say, site),
        Instruction::Play(play) => validate_play(play, site),
        Instruction::Pause { length_seconds } => {
            site.number("length_seconds", *length_seconds, PAUSE_LENGTH)
        }
        Instruction::Gather(gather) => validate_gather(gather, site),
        Instruction::Dial(dial) => validate_dial(dial, site),
        Instruction::Enqueue(enqueue) => validate_enqueue(enqueue, site),
        Instruction::Redirect { uri } => site.text("uri", uri, check_uri),
        Instruction::Leave | Instruction::Hangup | Instruction::Reject { .. } => Ok(()),
    }
}

fn validate_say(say: &Say, site: &Site) -> Result<()> {
    site.text("text", &say.text, check_say_text)?;
    site.optional_text("voice", say.voice.as_deref(), check_voice)?;
    site.optional_text("language", say.language.as_deref(), check_language)?;
    site.number("loop_count", say.loop_count, SAY_LOOP)
}

fn validate_play(play: &Play, site: &Site) -> Result<()> {
    site.text("url", &play.url, check_uri)?;
    site.number("loop_count", play.loop_count, PLAY_LOOP)
}

fn validate_gather(gather: &Gather, site: &Site) -> Result<()> {
    if let Some(num_digits) = gather.num_digits {
        site.number("num_digits", num_digits, GATHER_NUM_DIGITS)?;
    }
    site.number("timeout_seconds", gather.timeout_seconds, GATHER_TIMEOUT)?;
    site.optional_text(
        "finish_on_key",
        gather.finish_on_key.as_deref(),
        check_finish_on_key,
    )?;
    site.optional_text("action", gather.action.as_deref(), check_uri)?;
    for (index, prompt) in gather.prompts.iter().enumerate() {
        let position = index + 1;
        match prompt {
            Prompt::Say(say) => {
                validate_say(say, &site.nested(format_args!("prompt {position} (say)")))?
            }
            Prompt::Play(play) => {
                validate_play(play, &site.nested(format_args!("prompt {position} (play)")))?
            }
            Prompt::Pause { length_seconds } => site
                .nested(format_args!("prompt {position} (pause)"))
                .number("length_seconds", *length_seconds, PAUSE_LENGTH)?,
        }
    }
    Ok(())
}

fn validate_dial(dial: &Dial, site: &Site) -> Result<()> {
    if dial.targets.is_empty() {
        return Err(
            site.error("targets is empty; a dial needs at least one number, client or queue")
        );
    }
    if dial.targets.len() > MAX_DIAL_TARGETS {
        return Err(site.error(format_args!(
            "targets has {} entries; at most {MAX_DIAL_TARGETS} may be dialed at once",
            dial.targets.len()
        )));
    }
    if dial.targets.len() > 1
        && dial
            .targets
            .iter()
            .any(|t| matches!(t, DialTarget::Queue { .. }))
    {
        return Err(site.error(
            "targets mixes a queue with other targets; a dial to a queue connects to its head caller and rings nothing else",
        ));
    }
    for (index, target) in dial.targets.iter().enumerate() {
        let position = index + 1;
        match target {
            DialTarget::Number { number } => site
                .nested(format_args!("target {position} (number)"))
                .text("number", number, check_number)?,
            DialTarget::Client { identity } => site
                .nested(format_args!("target {position} (client)"))
                .text("identity", identity, check_identity)?,
            DialTarget::Queue { name, url } => {
                let target = site.nested(format_args!("target {position} (queue)"));
                target.text("name", name, check_queue_name)?;
                target.optional_text("url", url.as_deref(), check_uri)?;
            }
        }
    }
    site.number("timeout_seconds", dial.timeout_seconds, DIAL_TIMEOUT)?;
    if let Some(limit) = dial.time_limit_seconds {
        site.number("time_limit_seconds", limit, DIAL_TIME_LIMIT)?;
    }
    site.optional_text("action", dial.action.as_deref(), check_uri)?;
    site.optional_text("caller_id", dial.caller_id.as_deref(), check_caller_id)
}

fn validate_enqueue(enqueue: &Enqueue, site: &Site) -> Result<()> {
    site.text("queue", &enqueue.queue, check_queue_name)?;
    site.optional_text("wait_uri", enqueue.wait_uri.as_deref(), check_wait_uri)?;
    site.optional_text("action", enqueue.action.as_deref(), check_uri)?;
    if enqueue.priority < 0 {
        return Err(site.error(format_args!(
            "priority {} is invalid: {}",
            enqueue.priority,
            PRIORITY.describe()
        )));
    }
    site.optional_text(
        "workflow_sid",
        enqueue.workflow_sid.as_deref(),
        check_workflow_sid,
    )?;
    site.optional_text(
        "task_attributes",
        enqueue.task_attributes.as_deref(),
        check_task_attributes,
    )?;
    if enqueue.task_attributes.is_some() && enqueue.workflow_sid.is_none() {
        return Err(site.error(
            "task_attributes is set without workflow_sid; task attributes only mean something when a workflow routes the caller",
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Reading the document into a tree.
// ---------------------------------------------------------------------------------------------

/// An element of the document, with the position of its `<` for error messages.
#[derive(Debug)]
struct Element {
    name: String,
    attributes: Vec<(String, String)>,
    children: Vec<Node>,
    line: usize,
    column: usize,
}

#[derive(Debug)]
enum Node {
    Element(Element),
    /// Character data, with entities resolved and CDATA sections merged in.
    Text(String),
}

/// Turns byte offsets into 1-based line and column numbers. Offsets arrive in increasing order, so it
/// walks forward from the last one instead of rescanning the document for each element.
struct Positions<'a> {
    bytes: &'a [u8],
    offset: usize,
    line: usize,
    column: usize,
}

impl<'a> Positions<'a> {
    fn new(document: &'a str) -> Self {
        Positions {
            bytes: document.as_bytes(),
            offset: 0,
            line: 1,
            column: 1,
        }
    }

    fn at(&mut self, offset: u64) -> (usize, usize) {
        let offset = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(self.bytes.len());
        if offset < self.offset {
            self.offset = 0;
            self.line = 1;
            self.column = 1;
        }
        for &byte in &self.bytes[self.offset..offset] {
            if byte == b'\n' {
                self.line += 1;
                self.column = 1;
            } else if byte & 0xC0 != 0x80 {
                // Count characters, not bytes: skip UTF-8 continuation bytes.
                self.column += 1;
            }
        }
        self.offset = offset;
        (self.line, self.column)
    }
}

fn read_tree(document: &str) -> Result<Element> {
    if document.len() > MAX_DOCUMENT_BYTES {
        return Err(InvalidInstructions::parse_failure(format!(
            "the document is {} bytes long; the limit is {MAX_DOCUMENT_BYTES} bytes",
            document.len()
        )));
    }
    if document.trim_start_matches('\u{feff}').trim().is_empty() {
        return Err(InvalidInstructions::parse_failure(
            "the document is empty; a TwiML document is a <Response> element, e.g. <Response><Hangup/></Response>",
        ));
    }

    let mut reader = Reader::from_str(document);
    let mut positions = Positions::new(document);
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;

    loop {
        let offset = reader.buffer_position();
        let event = match reader.read_event() {
            Ok(event) => event,
            Err(error) => {
                let (line, column) = positions.at(reader.error_position());
                // A bare `&` (typically in a URL's query string) is the commonest mistake here.
                let hint = if matches!(
                    error,
                    quick_xml::Error::IllFormed(IllFormedError::UnclosedReference)
                ) {
                    "; write a literal & as &amp;"
                } else {
                    ""
                };
                return Err(InvalidInstructions::parse_failure(format!(
                    "the document is not well-formed XML at line {line}, column {column}: {error}{hint}"
                )));
            }
        };
        match event {
            Event::Start(start) => {
                let element = open_element(&start, &reader, &mut positions, offset, &stack, &root)?;
                stack.push(element);
            }
            Event::Empty(start) => {
                let element = open_element(&start, &reader, &mut positions, offset, &stack, &root)?;
                close_element(element, &mut stack, &mut root);
            }
            Event::End(_) => {
                // The reader checks end names, so this closes the innermost open element.
                if let Some(element) = stack.pop() {
                    close_element(element, &mut stack, &mut root);
                }
            }
            Event::Text(text) => {
                let text = text.xml10_content().map_err(|error| {
                    not_well_formed(&mut positions, offset, format_args!("{error}"))
                })?;
                add_text(&text, &mut stack, &mut positions, offset)?;
            }
            Event::CData(data) => {
                let text = data.xml10_content().map_err(|error| {
                    not_well_formed(&mut positions, offset, format_args!("{error}"))
                })?;
                add_text(&text, &mut stack, &mut positions, offset)?;
            }
            Event::GeneralRef(reference) => {
                let text = resolve_reference(&reference)
                    .map_err(|message| not_well_formed(&mut positions, offset, message))?;
                add_text(&text, &mut stack, &mut positions, offset)?;
            }
            Event::DocType(_) => {
                // A DTD could declare entities this parser would not expand; TwiML never needs one.
                let (line, column) = positions.at(offset);
                return Err(InvalidInstructions::parse_failure(format!(
                    "line {line}, column {column}: a DOCTYPE declaration is not allowed in a TwiML document"
                )));
            }
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) => {}
            Event::Eof => break,
        }
    }

    if let Some(open) = stack.last() {
        return Err(InvalidInstructions::parse_failure(format!(
            "the document is not well-formed XML: <{}> opened at line {}, column {} is never closed",
            open.name, open.line, open.column
        )));
    }
    root.ok_or_else(|| {
        InvalidInstructions::parse_failure(
            "the document has no <Response> element; a TwiML document is a <Response> element, e.g. <Response><Hangup/></Response>",
        )
    })
}

fn not_well_formed(
    positions: &mut Positions<'_>,
    offset: u64,
    message: impl fmt::Display,
) -> InvalidInstructions {
    let (line, column) = positions.at(offset);
    InvalidInstructions::parse_failure(format!(
        "the document is not well-formed XML at line {line}, column {column}: {message}"
    ))
}

/// Resolves `&amp;`, `&#65;`, `&#x41;` and the other predefined entities; anything else would need a
/// DTD, which TwiML documents do not have.
fn resolve_reference(reference: &quick_xml::events::BytesRef<'_>) -> Result<String, String> {
    let name = reference
        .decode()
        .map_err(|error| error.to_string())?
        .into_owned();
    if reference.is_char_ref() {
        return match reference.resolve_char_ref() {
            Ok(Some(c)) => Ok(c.to_string()),
            _ => Err(format!("&{name}; is not a valid character reference")),
        };
    }
    resolve_xml_entity(&name)
        .map(str::to_string)
        .ok_or_else(|| {
            format!("&{name}; is not a known entity (use &amp;, &lt;, &gt;, &quot; or &apos;)")
        })
}

fn open_element(
    start: &BytesStart<'_>,
    reader: &Reader<&[u8]>,
    positions: &mut Positions<'_>,
    offset: u64,
    stack: &[Element],
    root: &Option<Element>,
) -> Result<Element> {
    let (line, column) = positions.at(offset);
    let name = String::from_utf8_lossy(start.name().as_ref()).into_owned();
    if stack.is_empty() {
        if root.is_some() {
            return Err(InvalidInstructions::parse_failure(format!(
                "line {line}, column {column}: <{name}> comes after </Response>; a TwiML document is exactly one <Response> element"
            )));
        }
        if name != "Response" {
            return Err(InvalidInstructions::parse_failure(format!(
                "line {line}, column {column}: the root element is <{name}>, but a TwiML document's root element must be <Response> (names are case-sensitive)"
            )));
        }
    }
    if stack.len() >= MAX_DEPTH {
        return Err(InvalidInstructions::schema(format!(
            "<{name}> at line {line}, column {column}: elements are nested more than {MAX_DEPTH} deep; TwiML never needs more than 4 levels"
        )));
    }
    let mut attributes = Vec::new();
    for attribute in start.attributes() {
        let attribute = attribute.map_err(|error| {
            InvalidInstructions::parse_failure(format!(
                "<{name}> at line {line}, column {column}: the document is not well-formed XML: {error}"
            ))
        })?;
        let key = String::from_utf8_lossy(attribute.key.as_ref()).into_owned();
        let value = attribute
            .decode_and_unescape_value(reader.decoder())
            .map_err(|error| {
                InvalidInstructions::parse_failure(format!(
                    "<{name}> at line {line}, column {column}: the value of attribute {key} is not well-formed XML ({error}); write a literal & as &amp;"
                ))
            })?
            .into_owned();
        attributes.push((key, value));
    }
    Ok(Element {
        name,
        attributes,
        children: Vec::new(),
        line,
        column,
    })
}

fn close_element(element: Element, stack: &mut [Element], root: &mut Option<Element>) {
    match stack.last_mut() {
        Some(parent) => parent.children.push(Node::Element(element)),
        None => *root = Some(element),
    }
}

/// Adds character data to the open element. Outside `<Response>` and directly inside it only
/// whitespace may appear: text there belongs to no verb, which the reference platform treats as a
/// malformed document.
fn add_text(
    text: &str,
    stack: &mut [Element],
    positions: &mut Positions<'_>,
    offset: u64,
) -> Result<()> {
    let depth = stack.len();
    let Some(parent) = stack.last_mut() else {
        if text.trim().is_empty() {
            return Ok(());
        }
        let (line, column) = positions.at(offset);
        return Err(InvalidInstructions::parse_failure(format!(
            "line {line}, column {column}: the text {} is outside the <Response> element; a TwiML document is a <Response> element, e.g. <Response><Hangup/></Response>",
            preview(text.trim())
        )));
    };
    if depth == 1 {
        if text.trim().is_empty() {
            return Ok(());
        }
        let (line, column) = positions.at(offset);
        return Err(InvalidInstructions::parse_failure(format!(
            "line {line}, column {column}: the text {} is directly inside <Response>; text must be inside a verb, e.g. <Say>",
            preview(text.trim())
        )));
    }
    match parent.children.last_mut() {
        Some(Node::Text(existing)) => existing.push_str(text),
        _ => parent.children.push(Node::Text(text.to_string())),
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Mapping elements to instructions.
// ---------------------------------------------------------------------------------------------

impl Element {
    /// `<Say> at line 3, column 5`: how messages point at an element.
    fn at(&self) -> String {
        format!(
            "<{}> at line {}, column {}",
            self.name, self.line, self.column
        )
    }

    fn invalid(&self, message: impl fmt::Display) -> InvalidInstructions {
        InvalidInstructions::schema(format!("{}: {message}", self.at()))
    }

    fn elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|child| match child {
            Node::Element(element) => Some(element),
            Node::Text(_) => None,
        })
    }

    /// All character data directly inside this element, untrimmed.
    fn text(&self) -> String {
        self.children
            .iter()
            .filter_map(|child| match child {
                Node::Text(text) => Some(text.as_str()),
                Node::Element(_) => None,
            })
            .collect()
    }

    fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// Rejects attributes that differ from a known one only by case: they are almost certainly a typo
    /// that would otherwise be ignored without a word. Other unknown attributes are ignored.
    fn check_attribute_names(&self, known: &[&str]) -> Result<()> {
        for (key, _) in &self.attributes {
            if known.contains(&key.as_str()) {
                continue;
            }
            if let Some(meant) = known.iter().find(|name| name.eq_ignore_ascii_case(key)) {
                return Err(self.invalid(format_args!(
                    "attribute {key} is not recognised; did you mean {meant}? Attribute names are case-sensitive"
                )));
            }
        }
        Ok(())
    }

    /// The trimmed text body of an element that may contain only text.
    fn body(&self) -> Result<String> {
        if let Some(child) = self.elements().next() {
            return Err(child.invalid(format_args!(
                "it cannot be nested inside <{}>, which contains only text",
                self.name
            )));
        }
        Ok(self.text().trim().to_string())
    }

    /// For elements that take no content at all.
    fn no_content(&self) -> Result<()> {
        if let Some(child) = self.elements().next() {
            return Err(child.invalid(format_args!(
                "it cannot be nested inside <{}>, which takes no content",
                self.name
            )));
        }
        let text = self.text();
        if !text.trim().is_empty() {
            return Err(self.invalid(format_args!(
                "it takes no content, but contains the text {}",
                preview(text.trim())
            )));
        }
        Ok(())
    }

    fn attribute_error(&self, name: &str, value: &str, reason: &str) -> InvalidInstructions {
        self.invalid(format_args!(
            "attribute {name}={} is invalid: {reason}",
            preview(value)
        ))
    }

    /// A whole-number attribute within `bound`; absent gives `None`.
    fn number_attribute(&self, name: &str, bound: Bound) -> Result<Option<u32>> {
        let Some(raw) = self.attribute(name) else {
            return Ok(None);
        };
        let trimmed = raw.trim();
        let parsed = if !trimmed.is_empty() && trimmed.chars().all(|c| c.is_ascii_digit()) {
            trimmed.parse::<u32>().ok()
        } else {
            None
        };
        match parsed {
            Some(value) if bound.check(value).is_ok() => Ok(Some(value)),
            _ => Err(self.attribute_error(name, raw, &bound.describe())),
        }
    }

    /// A string attribute, trimmed and checked; absent gives `None`.
    fn text_attribute(
        &self,
        name: &str,
        check: fn(&str) -> Result<(), String>,
    ) -> Result<Option<String>> {
        let Some(raw) = self.attribute(name) else {
            return Ok(None);
        };
        let value = raw.trim();
        check(value).map_err(|reason| self.attribute_error(name, raw, &reason))?;
        Ok(Some(value.to_string()))
    }

    /// `method`-style attributes: the host decides how it fetches, but a value that is neither GET
    /// nor POST is a mistake worth reporting.
    fn method_attribute(&self, name: &str) -> Result<()> {
        match self.attribute(name) {
            None => Ok(()),
            Some(value) if value.trim().eq_ignore_ascii_case("GET") => Ok(()),
            Some(value) if value.trim().eq_ignore_ascii_case("POST") => Ok(()),
            Some(value) => Err(self.attribute_error(name, value, "it must be GET or POST")),
        }
    }

    /// The checked text body; an empty body is a missing required body, reported with a hint.
    fn required_body(&self, what: &str, check: fn(&str) -> Result<(), String>) -> Result<String> {
        let body = self.body()?;
        if body.is_empty() {
            return Err(self.invalid(format_args!(
                "it has no {what}; put it between <{0}> and </{0}>",
                self.name
            )));
        }
        check(&body).map_err(|reason| {
            self.invalid(format_args!(
                "the {what} {} is invalid: {reason}",
                preview(&body)
            ))
        })?;
        Ok(body)
    }
}

/// Maps one child of `<Response>` to its instruction.
fn verb(element: &Element) -> Result<Instruction> {
    match element.name.as_str() {
        "Say" => Ok(Instruction::Say(say(element)?)),
        "Play" => Ok(Instruction::Play(play(element)?)),
        "Pause" => Ok(Instruction::Pause {
            length_seconds: pause(element)?,
        }),
        "Gather" => Ok(Instruction::Gather(gather(element)?)),
        "Dial" => Ok(Instruction::Dial(dial(element)?)),
        "Enqueue" => Ok(Instruction::Enqueue(enqueue(element)?)),
        "Leave" => {
            element.no_content()?;
            Ok(Instruction::Leave)
        }
        "Redirect" => redirect(element),
        "Hangup" => {
            element.no_content()?;
            Ok(Instruction::Hangup)
        }
        "Reject" => reject(element),
        _ => Err(unknown_verb(element)),
    }
}

fn unknown_verb(element: &Element) -> InvalidInstructions {
    let name = element.name.as_str();
    let supported = format!(
        "supported verbs are {} and {}",
        SUPPORTED_VERBS[..SUPPORTED_VERBS.len() - 1].join(", "),
        SUPPORTED_VERBS[SUPPORTED_VERBS.len() - 1]
    );
    if let Some(meant) = SUPPORTED_VERBS
        .iter()
        .find(|verb| verb.eq_ignore_ascii_case(name))
    {
        return element.invalid(format_args!(
            "{name} is not a supported verb; did you mean {meant}? Verb names are case-sensitive; {supported}"
        ));
    }
    if DIAL_NOUNS.contains(&name) {
        return element.invalid(format_args!(
            "{name} is a noun that belongs inside <Dial>, not a verb; {supported}"
        ));
    }
    element.invalid(format_args!("{name} is not a supported verb; {supported}"))
}

fn say(element: &Element) -> Result<Say> {
    element.check_attribute_names(&["voice", "language", "loop"])?;
    let voice = element.text_attribute("voice", check_voice)?;
    let language = element.text_attribute("language", check_language)?;
    let loop_count = element
        .number_attribute("loop", SAY_LOOP)?
        .unwrap_or(DEFAULT_LOOP);
    let text = element.required_body("text to speak", check_say_text)?;
    Ok(Say {
        text,
        voice,
        language,
        loop_count,
    })
}

fn play(element: &Element) -> Result<Play> {
    element.check_attribute_names(&["loop", "digits"])?;
    if let Some(digits) = element.attribute("digits") {
        return Err(element.invalid(format_args!(
            "attribute digits={} is not supported: this host cannot play DTMF tones; remove the attribute",
            preview(digits)
        )));
    }
    let loop_count = element
        .number_attribute("loop", PLAY_LOOP)?
        .unwrap_or(DEFAULT_LOOP);
    let url = element.required_body("audio URL", check_uri)?;
    Ok(Play { url, loop_count })
}

fn pause(element: &Element) -> Result<u32> {
    element.check_attribute_names(&["length"])?;
    let length = element
        .number_attribute("length", PAUSE_LENGTH)?
        .unwrap_or(DEFAULT_PAUSE_SECONDS);
    element.no_content()?;
    Ok(length)
}

/// `<Gather>`: key presses only; nested `<Say>`, `<Play>` and `<Pause>` become its prompts, in order.
fn gather(element: &Element) -> Result<Gather> {
    element.check_attribute_names(&[
        "numDigits",
        "timeout",
        "finishOnKey",
        "action",
        "method",
        "input",
        "actionOnEmptyResult",
    ])?;
    if let Some(input) = element.attribute("input")
        && input.trim() != "dtmf"
    {
        return Err(element.attribute_error(
            "input",
            input,
            "only dtmf (key presses) is supported; speech recognition is not available",
        ));
    }
    match element.attribute("actionOnEmptyResult").map(str::trim) {
        None | Some("false") => {}
        Some("true") => {
            return Err(element.attribute_error(
                "actionOnEmptyResult",
                "true",
                "it is not supported: without input the call continues with the next verb",
            ));
        }
        Some(other) => {
            return Err(element.attribute_error(
                "actionOnEmptyResult",
                other,
                "it must be true or false",
            ));
        }
    }
    element.method_attribute("method")?;
    let num_digits = element.number_attribute("numDigits", GATHER_NUM_DIGITS)?;
    let timeout_seconds = element
        .number_attribute("timeout", GATHER_TIMEOUT)?
        .unwrap_or(DEFAULT_GATHER_TIMEOUT);
    let finish_on_key = match element.attribute("finishOnKey") {
        None => Some(DEFAULT_FINISH_ON_KEY.to_string()),
        Some("") => None,
        Some(key) => {
            check_finish_on_key(key)
                .map_err(|reason| element.attribute_error("finishOnKey", key, &reason))?;
            Some(key.to_string())
        }
    };
    let action = element.text_attribute("action", check_uri)?;

    let text = element.text();
    if !text.trim().is_empty() {
        return Err(element.invalid(format_args!(
            "the text {} cannot appear directly inside <Gather>; wrap it in <Say>",
            preview(text.trim())
        )));
    }
    let mut prompts = Vec::new();
    for child in element.elements() {
        let prompt = match child.name.as_str() {
            "Say" => Prompt::Say(say(child)?),
            "Play" => Prompt::Play(play(child)?),
            "Pause" => Prompt::Pause {
                length_seconds: pause(child)?,
            },
            _ => {
                return Err(child.invalid(
                    "it cannot be nested inside <Gather>; <Gather> may contain only <Say>, <Play> and <Pause>",
                ));
            }
        };
        prompts.push(prompt);
    }
    Ok(Gather {
        num_digits,
        timeout_seconds,
        finish_on_key,
        action,
        prompts,
    })
}

/// Numbers are written for people (`+1 (415) 555-0100`); the platform dials digits.
fn normalize_number(number: &str) -> String {
    number
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')') && !c.is_whitespace())
        .collect()
}

/// `<Dial>`: a plain-text body is one number; otherwise every child must be a supported noun.
fn dial(element: &Element) -> Result<Dial> {
    element.check_attribute_names(&["action", "method", "timeout", "callerId", "timeLimit"])?;
    element.method_attribute("method")?;
    let action = element.text_attribute("action", check_uri)?;
    let timeout_seconds = element
        .number_attribute("timeout", DIAL_TIMEOUT)?
        .unwrap_or(DEFAULT_DIAL_TIMEOUT);
    let caller_id = element.text_attribute("callerId", check_caller_id)?;
    let time_limit_seconds = element.number_attribute("timeLimit", DIAL_TIME_LIMIT)?;

    let text = element.text();
    let text = text.trim();
    let mut targets = Vec::new();
    if element.elements().next().is_none() {
        if text.is_empty() {
            return Err(element.invalid(
                "it has nothing to dial; put a number between <Dial> and </Dial>, or nest <Number>, <Client> or <Queue>",
            ));
        }
        let number = normalize_number(text);
        check_number(&number).map_err(|reason| {
            element.invalid(format_args!(
                "the number {} is invalid: {reason}",
                preview(text)
            ))
        })?;
        targets.push(DialTarget::Number { number });
    } else {
        if !text.is_empty() {
            return Err(element.invalid(format_args!(
                "it mixes the plain text {} with nouns; put the number inside <Number>",
                preview(text)
            )));
        }
        for noun in element.elements() {
            targets.push(dial_noun(noun)?);
        }
    }
    if targets.len() > MAX_DIAL_TARGETS {
        return Err(element.invalid(format_args!(
            "it dials {} targets; at most {MAX_DIAL_TARGETS} may be dialed at once",
            targets.len()
        )));
    }
    Ok(Dial {
        targets,
        timeout_seconds,
        action,
        caller_id,
        time_limit_seconds,
    })
}

fn dial_noun(noun: &Element) -> Result<DialTarget> {
    match noun.name.as_str() {
        "Number" => {
            let body = noun.body()?;
            if body.is_empty() {
                return Err(noun.invalid("it has no number; put it between <Number> and </Number>"));
            }
            let number = normalize_number(&body);
            check_number(&number).map_err(|reason| {
                noun.invalid(format_args!(
                    "the number {} is invalid: {reason}",
                    preview(&body)
                ))
            })?;
            Ok(DialTarget::Number { number })
        }
        "Client" => Ok(DialTarget::Client {
            identity: client_identity(noun)?,
        }),
        "Queue" => {
            noun.check_attribute_names(&["url", "method"])?;
            noun.method_attribute("method")?;
            let url = noun.text_attribute("url", check_uri)?;
            let name = noun.required_body("queue name", check_queue_name)?;
            Ok(DialTarget::Queue { name, url })
        }
        other => {
            let reason = if DIAL_NOUNS.contains(&other) {
                "this host does not support that noun"
            } else {
                "it is not a <Dial> noun"
            };
            Err(noun.invalid(format_args!(
                "it cannot be nested inside <Dial> ({reason}); <Dial> may contain a plain number or <Number>, <Client> and <Queue>"
            )))
        }
    }
}

/// `<Client>alice</Client>` or `<Client><Identity>alice</Identity></Client>`.
fn client_identity(client: &Element) -> Result<String> {
    if client.elements().next().is_none() {
        return client.required_body("client identity", check_identity);
    }
    let text = client.text();
    if !text.trim().is_empty() {
        return Err(client.invalid(format_args!(
            "it mixes the text {} with <Identity>; use one or the other",
            preview(text.trim())
        )));
    }
    let mut identity = None;
    for child in client.elements() {
        match child.name.as_str() {
            "Identity" if identity.is_none() => {
                identity = Some(child.required_body("client identity", check_identity)?);
            }
            "Identity" => {
                return Err(child.invalid("a <Client> may contain only one <Identity>"));
            }
            "Parameter" => {
                return Err(child.invalid(
                    "custom client parameters are not supported; remove the <Parameter>",
                ));
            }
            _ => {
                return Err(child.invalid(
                    "it cannot be nested inside <Client>; <Client> may contain only its identity or an <Identity>",
                ));
            }
        }
    }
    identity.ok_or_else(|| client.invalid("it has no client identity"))
}

/// `<Enqueue>`: the body names the queue; an optional `<Task>` carries the task's JSON attributes and
/// priority for a workflow. `priority` is also accepted on `<Enqueue>` itself (an extension: this
/// host's queues order by priority even without a workflow); setting two different values is an error.
fn enqueue(element: &Element) -> Result<Enqueue> {
    element.check_attribute_names(&[
        "action",
        "method",
        "waitUrl",
        "waitUrlMethod",
        "workflowSid",
        "priority",
    ])?;
    element.method_attribute("method")?;
    element.method_attribute("waitUrlMethod")?;
    let action = element.text_attribute("action", check_uri)?;
    let wait_uri = element.text_attribute("waitUrl", check_wait_uri)?;
    let workflow_sid = element.text_attribute("workflowSid", check_workflow_sid)?;
    let enqueue_priority = element.number_attribute("priority", PRIORITY)?;

    let mut task = None;
    for child in element.elements() {
        match child.name.as_str() {
            "Task" if task.is_none() => task = Some(child),
            "Task" => return Err(child.invalid("an <Enqueue> may contain only one <Task>")),
            _ => {
                return Err(child.invalid(
                    "it cannot be nested inside <Enqueue>; <Enqueue> may contain only the queue name and a <Task>",
                ));
            }
        }
    }

    let mut task_attributes = None;
    let mut task_priority = None;
    if let Some(task) = task {
        task.check_attribute_names(&["priority", "timeout"])?;
        if workflow_sid.is_none() {
            return Err(task.invalid(
                "a <Task> needs a workflowSid attribute on its <Enqueue>, naming the workflow that routes the caller",
            ));
        }
        task_priority = task.number_attribute("priority", PRIORITY)?;
        task_attributes = Some(task.required_body("task attributes", check_task_attributes)?);
    }
    let priority = match (enqueue_priority, task_priority) {
        (Some(outer), Some(inner)) if outer != inner => {
            return Err(element.invalid(format_args!(
                "priority is {outer} on <Enqueue> but {inner} on its <Task>; set it in one place"
            )));
        }
        (Some(value), _) | (None, Some(value)) => value,
        (None, None) => 0,
    };
    let priority = i32::try_from(priority).map_err(|_| {
        element.attribute_error("priority", &priority.to_string(), &PRIORITY.describe())
    })?;

    let name = element.text();
    let name = name.trim();
    if name.is_empty() {
        return Err(
            element.invalid("it has no queue name; put it between <Enqueue> and </Enqueue>")
        );
    }
    check_queue_name(name).map_err(|reason| {
        element.invalid(format_args!(
            "the queue name {} is invalid: {reason}",
            preview(name)
        ))
    })?;
    Ok(Enqueue {
        queue: name.to_string(),
        wait_uri,
        action,
        priority,
        workflow_sid,
        task_attributes,
    })
}

fn redirect(element: &Element) -> Result<Instruction> {
    element.check_attribute_names(&["method"])?;
    element.method_attribute("method")?;
    let uri = element.required_body("URL to redirect to", check_uri)?;
    Ok(Instruction::Redirect { uri })
}

fn reject(element: &Element) -> Result<Instruction> {
    element.check_attribute_names(&["reason"])?;
    let reason = match element.attribute("reason").map(str::trim) {
        None | Some("rejected") => RejectReason::Rejected,
        Some("busy") => RejectReason::Busy,
        Some(other) => {
            return Err(element.attribute_error("reason", other, "it must be rejected or busy"));
        }
    };
    element.no_content()?;
    Ok(Instruction::Reject { reason })
}

#[cfg(test)]
mod tests {
    use super::*;

    const WORKFLOW: &str = "WW0123456789abcdef0123456789abcdef";

    fn parse_ok(document: &str) -> Vec<Instruction> {
        match parse(document) {
            Ok(instructions) => instructions,
            Err(error) => panic!("expected {document:?} to parse, got {error:?}"),
        }
    }

    fn parse_err(document: &str, code: u32) -> String {
        match parse(document) {
            Ok(instructions) => panic!("expected {document:?} to fail, got {instructions:?}"),
            Err(error) => {
                assert_eq!(error.code, code, "wrong code for {document:?}: {error:?}");
                error.message
            }
        }
    }

    fn response(body: &str) -> String {
        format!("<Response>{body}</Response>")
    }

    fn only(document: &str) -> Instruction {
        let mut instructions = parse_ok(document);
        assert_eq!(instructions.len(), 1, "{instructions:?}");
        instructions.remove(0)
    }

    fn say(text: &str) -> Say {
        Say {
            text: text.into(),
            voice: None,
            language: None,
            loop_count: 1,
        }
    }

    fn gather() -> Gather {
        Gather {
            num_digits: None,
            timeout_seconds: 5,
            finish_on_key: Some("#".into()),
            action: None,
            prompts: vec![],
        }
    }

    fn dial(targets: Vec<DialTarget>) -> Dial {
        Dial {
            targets,
            timeout_seconds: 30,
            action: None,
            caller_id: None,
            time_limit_seconds: None,
        }
    }

    fn enqueue(queue: &str) -> Enqueue {
        Enqueue {
            queue: queue.into(),
            wait_uri: None,
            action: None,
            priority: 0,
            workflow_sid: None,
            task_attributes: None,
        }
    }

    fn number(n: &str) -> DialTarget {
        DialTarget::Number { number: n.into() }
    }

    fn schema_err(instructions: &[Instruction]) -> String {
        match validate(instructions) {
            Ok(()) => panic!("expected {instructions:?} to be invalid"),
            Err(error) => {
                assert_eq!(error.code, SCHEMA_VALIDATION_FAILURE, "{error:?}");
                error.message
            }
        }
    }

    #[test]
    fn full_ivr_document_with_every_verb() {
        let document = format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<!-- main menu -->
<Response>
  <Say voice="Polly.Joanna" language="en-US" loop="2">Welcome to Tom &amp; Jerry&#39;s.</Say>
  <Play loop="0">https://example.com/hold.mp3?a=1&amp;b=2</Play>
  <Pause length="3"/>
  <Gather numDigits="1" timeout="10" finishOnKey="*" action="/menu" method="GET" input="dtmf">
    <!-- prompts -->
    <Say>Press 1 for sales.</Say>
    <Play>https://example.com/beep.wav</Play>
    <Pause length="2"/>
  </Gather>
  <Dial action="/after-dial" timeout="20" callerId="+14155550100" timeLimit="600">
    <Number>+14155550101</Number>
    <Client>alice</Client>
    <Client><Identity>bob</Identity></Client>
  </Dial>
  <Enqueue waitUrl="module:hold" action="/after-queue" workflowSid="{WORKFLOW}">support<Task priority="5">{{"language": "en"}}</Task></Enqueue>
  <Leave/>
  <Redirect method="POST">/next</Redirect>
  <Hangup/>
  <Reject reason="busy"/>
</Response>
"#
        );
        let instructions = parse_ok(&document);
        assert_eq!(instructions.len(), 10);

        let Instruction::Say(say) = &instructions[0] else {
            panic!("{:?}", instructions[0]);
        };
        assert_eq!(say.text, "Welcome to Tom & Jerry's.");
        assert_eq!(say.voice.as_deref(), Some("Polly.Joanna"));
        assert_eq!(say.language.as_deref(), Some("en-US"));
        assert_eq!(say.loop_count, 2);

        let Instruction::Play(play) = &instructions[1] else {
            panic!("{:?}", instructions[1]);
        };
        assert_eq!(play.url, "https://example.com/hold.mp3?a=1&b=2");
        assert_eq!(play.loop_count, 0, "loop 0 means repeat and stays 0");

        assert!(matches!(
            instructions[2],
            Instruction::Pause { length_seconds: 3 }
        ));

        let Instruction::Gather(gather) = &instructions[3] else {
            panic!("{:?}", instructions[3]);
        };
        assert_eq!(gather.num_digits, Some(1));
        assert_eq!(gather.timeout_seconds, 10);
        assert_eq!(gather.finish_on_key.as_deref(), Some("*"));
        assert_eq!(gather.action.as_deref(), Some("/menu"));
        assert_eq!(gather.prompts.len(), 3);
        assert!(matches!(&gather.prompts[0], Prompt::Say(s) if s.text == "Press 1 for sales."));
        assert!(
            matches!(&gather.prompts[1], Prompt::Play(p) if p.url == "https://example.com/beep.wav" && p.loop_count == 1)
        );
        assert!(matches!(
            gather.prompts[2],
            Prompt::Pause { length_seconds: 2 }
        ));

        let Instruction::Dial(dial) = &instructions[4] else {
            panic!("{:?}", instructions[4]);
        };
        assert_eq!(dial.action.as_deref(), Some("/after-dial"));
        assert_eq!(dial.timeout_seconds, 20);
        assert_eq!(dial.caller_id.as_deref(), Some("+14155550100"));
        assert_eq!(dial.time_limit_seconds, Some(600));
        assert_eq!(dial.targets.len(), 3);
        assert!(
            matches!(&dial.targets[0], DialTarget::Number { number } if number == "+14155550101")
        );
        assert!(matches!(&dial.targets[1], DialTarget::Client { identity } if identity == "alice"));
        assert!(matches!(&dial.targets[2], DialTarget::Client { identity } if identity == "bob"));

        let Instruction::Enqueue(enqueue) = &instructions[5] else {
            panic!("{:?}", instructions[5]);
        };
        assert_eq!(enqueue.queue, "support");
        assert_eq!(enqueue.wait_uri.as_deref(), Some("module:hold"));
        assert_eq!(enqueue.action.as_deref(), Some("/after-queue"));
        assert_eq!(enqueue.workflow_sid.as_deref(), Some(WORKFLOW));
        assert_eq!(enqueue.priority, 5);
        let attributes: serde_json::Value =
            serde_json::from_str(enqueue.task_attributes.as_deref().unwrap_or_default())
                .expect("task attributes are JSON");
        assert_eq!(attributes, serde_json::json!({"language": "en"}));

        assert!(matches!(instructions[6], Instruction::Leave));
        assert!(matches!(&instructions[7], Instruction::Redirect { uri } if uri == "/next"));
        assert!(matches!(instructions[8], Instruction::Hangup));
        assert!(matches!(
            instructions[9],
            Instruction::Reject {
                reason: RejectReason::Busy
            }
        ));
        assert!(validate(&instructions).is_ok());
    }

    #[test]
    fn defaults() {
        let instructions = parse_ok(&response(
            "<Say>Hi</Say><Play>/v1/Media/ME1</Play><Pause/><Gather/>\
             <Dial>+14155550100</Dial><Enqueue>support</Enqueue><Reject/>",
        ));
        let Instruction::Say(say) = &instructions[0] else {
            panic!()
        };
        assert_eq!(
            (
                say.voice.as_deref(),
                say.language.as_deref(),
                say.loop_count
            ),
            (None, None, 1)
        );
        let Instruction::Play(play) = &instructions[1] else {
            panic!()
        };
        assert_eq!(play.loop_count, 1);
        assert!(matches!(
            instructions[2],
            Instruction::Pause { length_seconds: 1 }
        ));
        let Instruction::Gather(gather) = &instructions[3] else {
            panic!()
        };
        assert_eq!(gather.num_digits, None);
        assert_eq!(gather.timeout_seconds, 5);
        assert_eq!(gather.finish_on_key.as_deref(), Some("#"));
        assert_eq!(gather.action, None);
        assert!(gather.prompts.is_empty());
        let Instruction::Dial(dial) = &instructions[4] else {
            panic!()
        };
        assert_eq!(dial.timeout_seconds, 30);
        assert_eq!(
            (
                dial.action.as_ref(),
                dial.caller_id.as_ref(),
                dial.time_limit_seconds
            ),
            (None, None, None)
        );
        let Instruction::Enqueue(enqueue) = &instructions[5] else {
            panic!()
        };
        assert_eq!(enqueue.priority, 0);
        assert_eq!(
            (
                enqueue.wait_uri.as_ref(),
                enqueue.workflow_sid.as_ref(),
                enqueue.task_attributes.as_ref()
            ),
            (None, None, None)
        );
        assert!(matches!(
            instructions[6],
            Instruction::Reject {
                reason: RejectReason::Rejected
            }
        ));
    }

    #[test]
    fn empty_response_is_no_instructions() {
        assert!(parse_ok("<Response/>").is_empty());
        assert!(parse_ok("<Response>\n  <!-- nothing -->\n</Response>").is_empty());
    }

    #[test]
    fn say_loop_zero_stays_zero_and_text_is_trimmed_with_cdata() {
        let Instruction::Say(say) = only(&response(
            "<Say loop=\"0\">\n   Hello <![CDATA[<world> & co]]> there  \n</Say>",
        )) else {
            panic!()
        };
        assert_eq!(say.loop_count, 0);
        assert_eq!(say.text, "Hello <world> & co there");
    }

    #[test]
    fn gather_finish_on_key_empty_disables_it() {
        let Instruction::Gather(gather) = only(&response("<Gather finishOnKey=\"\"/>")) else {
            panic!()
        };
        assert_eq!(gather.finish_on_key, None);
    }

    #[test]
    fn nested_gather_prompts_keep_order_and_attributes() {
        let Instruction::Gather(gather) = only(&response(
            "<Gather numDigits=\"4\"><Pause length=\"2\"/><Say voice=\"woman\" loop=\"3\">PIN</Say><Play loop=\"2\">https://x.test/a.mp3</Play></Gather>",
        )) else {
            panic!()
        };
        assert_eq!(gather.num_digits, Some(4));
        assert!(matches!(
            gather.prompts[0],
            Prompt::Pause { length_seconds: 2 }
        ));
        assert!(
            matches!(&gather.prompts[1], Prompt::Say(s) if s.text == "PIN" && s.voice.as_deref() == Some("woman") && s.loop_count == 3)
        );
        assert!(matches!(&gather.prompts[2], Prompt::Play(p) if p.loop_count == 2));
    }

    #[test]
    fn gather_rejects_other_nested_verbs_and_bare_text() {
        let message = parse_err(
            &response("<Gather><Dial>+14155550100</Dial></Gather>"),
            SCHEMA_VALIDATION_FAILURE,
        );
        assert!(
            message.contains("<Dial>") && message.contains("<Gather>"),
            "{message}"
        );
        let message = parse_err(
            &response("<Gather>Press 1</Gather>"),
            SCHEMA_VALIDATION_FAILURE,
        );
        assert!(message.contains("wrap it in <Say>"), "{message}");
        parse_err(
            &response("<Gather><Gather/></Gather>"),
            SCHEMA_VALIDATION_FAILURE,
        );
    }

    #[test]
    fn gather_num_digits_must_be_a_positive_whole_number() {
        for value in ["0", "abc", "-1", "1.5", "", "101", "99999999999999999999"] {
            let message = parse_err(
                &response(&format!("<Gather numDigits=\"{value}\"/>")),
                SCHEMA_VALIDATION_FAILURE,
            );
            assert!(
                message.contains("<Gather>")
                    && message.contains("numDigits")
                    && message.contains(&format!("{value:?}")),
                "{message}"
            );
        }
    }

    #[test]
    fn gather_other_attribute_rules() {
        for attributes in [
            "timeout=\"0\"",
            "timeout=\"601\"",
            "finishOnKey=\"##\"",
            "finishOnKey=\"a\"",
            "input=\"speech\"",
            "input=\"dtmf speech\"",
            "method=\"PUT\"",
            "action=\"\"",
            "actionOnEmptyResult=\"true\"",
            "numdigits=\"3\"",
        ] {
            parse_err(
                &response(&format!("<Gather {attributes}/>")),
                SCHEMA_VALIDATION_FAILURE,
            );
        }
        let message = parse_err(
            &response("<Gather numdigits=\"3\"/>"),
            SCHEMA_VALIDATION_FAILURE,
        );
        assert!(message.contains("did you mean numDigits"), "{message}");
        // Attributes this host does not act on are ignored, as on the reference platform.
        parse_ok(&response(
            "<Gather method=\"post\" speechTimeout=\"auto\" actionOnEmptyResult=\"false\"/>",
        ));
    }

    #[test]
    fn dial_with_text_body_is_one_number() {
        let Instruction::Dial(dial) = only(&response(
            "<Dial timeout=\"5\">\n  +1 (415) 555-0100\n</Dial>",
        )) else {
            panic!()
        };
        assert_eq!(dial.targets.len(), 1);
        assert!(
            matches!(&dial.targets[0], DialTarget::Number { number } if number == "+14155550100")
        );
        assert_eq!(dial.timeout_seconds, 5);
    }

    #[test]
    fn dial_nouns_and_their_rules() {
        let Instruction::Dial(dial) = only(&response(
            "<Dial><Number>4155550100</Number><Client>\n agent_7 \n</Client></Dial>",
        )) else {
            panic!()
        };
        let Instruction::Dial(queue) = only(&response(
            "<Dial><Queue url=\"/whisper\" method=\"GET\">sales</Queue></Dial>",
        )) else {
            panic!()
        };
        assert!(
            matches!(&queue.targets[0], DialTarget::Queue { name, url } if name == "sales" && url.as_deref() == Some("/whisper"))
        );
        let mixed = parse(&response(
            "<Dial><Number>4155550100</Number><Queue>sales</Queue></Dial>",
        ))
        .expect_err("a queue is dialled alone");
        assert!(mixed.message.contains("mixes a queue"), "{}", mixed.message);
        assert!(
            matches!(&dial.targets[0], DialTarget::Number { number } if number == "4155550100")
        );
        assert!(
            matches!(&dial.targets[1], DialTarget::Client { identity } if identity == "agent_7")
        );

        for body in [
            "",
            "   ",
            "<Sip>sip:a@b.test</Sip>",
            "<Conference>room</Conference>",
            "<Say>hi</Say>",
            "+1415<Number>+14155550100</Number>",
            "not a number",
            "<Number>call me</Number>",
            "<Number></Number>",
            "<Client></Client>",
            "<Client>bad identity</Client>",
            "<Client><Identity>a</Identity><Identity>b</Identity></Client>",
            "<Client><Identity>a</Identity><Parameter name=\"x\" value=\"y\"/></Client>",
            "<Queue></Queue>",
        ] {
            parse_err(
                &response(&format!("<Dial>{body}</Dial>")),
                SCHEMA_VALIDATION_FAILURE,
            );
        }
        let long_queue = "q".repeat(65);
        parse_err(
            &response(&format!("<Dial><Queue>{long_queue}</Queue></Dial>")),
            SCHEMA_VALIDATION_FAILURE,
        );
        let eleven = "<Number>+14155550100</Number>".repeat(11);
        let message = parse_err(
            &response(&format!("<Dial>{eleven}</Dial>")),
            SCHEMA_VALIDATION_FAILURE,
        );
        assert!(message.contains("at most 10"), "{message}");
        let ten = "<Number>+14155550100</Number>".repeat(10);
        parse_ok(&response(&format!("<Dial>{ten}</Dial>")));

        for attributes in [
            "timeout=\"4\"",
            "timeout=\"601\"",
            "timeLimit=\"0\"",
            "callerId=\"\"",
        ] {
            parse_err(
                &response(&format!("<Dial {attributes}>+14155550100</Dial>")),
                SCHEMA_VALIDATION_FAILURE,
            );
        }
    }

    #[test]
    fn enqueue_rules() {
        let Instruction::Enqueue(enqueue) = only(&response(
            "<Enqueue waitUrl=\"\" priority=\"3\"> support </Enqueue>",
        )) else {
            panic!()
        };
        assert_eq!(enqueue.queue, "support");
        assert_eq!(
            enqueue.wait_uri.as_deref(),
            Some(""),
            "empty waitUrl means silence"
        );
        assert_eq!(enqueue.priority, 3);

        for document in [
            "<Enqueue></Enqueue>".to_string(),
            format!("<Enqueue>{}</Enqueue>", "q".repeat(65)),
            "<Enqueue><Task>{}</Task>support</Enqueue>".to_string(),
            format!("<Enqueue workflowSid=\"{WORKFLOW}\">support<Task>[1]</Task></Enqueue>"),
            format!("<Enqueue workflowSid=\"{WORKFLOW}\">support<Task>{{nope</Task></Enqueue>"),
            format!("<Enqueue workflowSid=\"{WORKFLOW}\">support<Task></Task></Enqueue>"),
            format!(
                "<Enqueue workflowSid=\"{WORKFLOW}\" priority=\"1\">support<Task priority=\"2\">{{}}</Task></Enqueue>"
            ),
            "<Enqueue workflowSid=\"WW123\">support</Enqueue>".to_string(),
            "<Enqueue priority=\"-1\">support</Enqueue>".to_string(),
            "<Enqueue>support<Say>hi</Say></Enqueue>".to_string(),
        ] {
            parse_err(&response(&document), SCHEMA_VALIDATION_FAILURE);
        }
    }

    #[test]
    fn small_verbs_take_no_content() {
        for document in [
            "<Hangup>now</Hangup>",
            "<Leave><Say>x</Say></Leave>",
            "<Reject reason=\"nope\"/>",
            "<Pause length=\"0\"/>",
            "<Pause length=\"601\"/>",
            "<Pause>5</Pause>",
            "<Redirect></Redirect>",
            "<Redirect>/has space</Redirect>",
        ] {
            parse_err(&response(document), SCHEMA_VALIDATION_FAILURE);
        }
    }

    #[test]
    fn play_digits_and_bad_loops_are_rejected() {
        let message = parse_err(
            &response("<Play digits=\"1234\"></Play>"),
            SCHEMA_VALIDATION_FAILURE,
        );
        assert!(
            message.contains("digits") && message.contains("not supported"),
            "{message}"
        );
        parse_err(&response("<Play>  </Play>"), SCHEMA_VALIDATION_FAILURE);
        let message = parse_err(
            &response("<Play loop=\"1001\">https://x.test/a.mp3</Play>"),
            SCHEMA_VALIDATION_FAILURE,
        );
        assert!(
            message.contains("<Play>") && message.contains("loop") && message.contains("\"1001\""),
            "{message}"
        );
        parse_err(
            &response("<Say loop=\"-1\">hi</Say>"),
            SCHEMA_VALIDATION_FAILURE,
        );
    }

    #[test]
    fn say_rules() {
        parse_err(&response("<Say></Say>"), SCHEMA_VALIDATION_FAILURE);
        parse_err(&response("<Say>  \n </Say>"), SCHEMA_VALIDATION_FAILURE);
        parse_err(
            &response("<Say>Hello <break time=\"1s\"/> there</Say>"),
            SCHEMA_VALIDATION_FAILURE,
        );
        parse_err(
            &response(&format!("<Say>{}</Say>", "a".repeat(4097))),
            SCHEMA_VALIDATION_FAILURE,
        );
        parse_ok(&response(&format!("<Say>{}</Say>", "a".repeat(4096))));
        parse_err(
            &response("<Say voice=\"\">hi</Say>"),
            SCHEMA_VALIDATION_FAILURE,
        );
        parse_err(
            &response("<Say language=\"english please\">hi</Say>"),
            SCHEMA_VALIDATION_FAILURE,
        );
    }

    #[test]
    fn names_are_case_sensitive() {
        let message = parse_err(&response("<say>hi</say>"), SCHEMA_VALIDATION_FAILURE);
        assert!(message.contains("did you mean Say"), "{message}");
        parse_err(&response("<SAY>hi</SAY>"), SCHEMA_VALIDATION_FAILURE);
        let message = parse_err("<response><Hangup/></response>", DOCUMENT_PARSE_FAILURE);
        assert!(message.contains("<response>"), "{message}");
        let message = parse_err(
            &response("<Say Loop=\"2\">hi</Say>"),
            SCHEMA_VALIDATION_FAILURE,
        );
        assert!(message.contains("did you mean loop"), "{message}");
    }

    #[test]
    fn unknown_verbs_are_named_with_the_supported_list() {
        let message = parse_err(
            &response("<Say>hi</Say>\n<Record maxLength=\"20\"/>"),
            SCHEMA_VALIDATION_FAILURE,
        );
        assert!(
            message.contains("<Record> at line 2, column 1"),
            "{message}"
        );
        assert!(message.contains("Say, Play, Pause"), "{message}");
        let message = parse_err(
            &response("<Number>+1415</Number>"),
            SCHEMA_VALIDATION_FAILURE,
        );
        assert!(message.contains("inside <Dial>"), "{message}");
    }

    #[test]
    fn malformed_documents_are_parse_failures() {
        for document in [
            "",
            "   \n ",
            "garbage",
            "{\"verb\": \"say\"}",
            "<Response>",
            "<Response><Say>hi</Response>",
            "<Response><Say>hi</Say>",
            "<Response></Say></Response>",
            "<Response><Say>a &nbsp; b</Say></Response>",
            "<Response><Say>a & b</Say></Response>",
            "<Speak><Say>hi</Say></Speak>",
            "<Response/><Response/>",
            "<Response/>trailing",
            "leading<Response/>",
            "<Response>Hello<Hangup/></Response>",
            "<Response><Say a=\"1\" a=\"2\">hi</Say></Response>",
            "<!DOCTYPE Response><Response/>",
            "<Response><Say>hi</Say",
        ] {
            parse_err(document, DOCUMENT_PARSE_FAILURE);
        }
        let message = parse_err("<Response>\n  <Say>hi\n</Response>", DOCUMENT_PARSE_FAILURE);
        assert!(message.contains("line 3"), "{message}");
        let message = parse_err(
            "<Response><Play>https://x.test/a.mp3?b=1&c=2</Play></Response>",
            DOCUMENT_PARSE_FAILURE,
        );
        assert!(message.contains("&amp;"), "{message}");
        let message = parse_err(
            "<Response><Gather action=\"/a?b=1&c=2\"/></Response>",
            DOCUMENT_PARSE_FAILURE,
        );
        assert!(
            message.contains("action") && message.contains("&amp;"),
            "{message}"
        );
        let message = parse_err("<Response>\n  <Gather>\n", DOCUMENT_PARSE_FAILURE);
        assert!(
            message.contains("<Gather> opened at line 2, column 3"),
            "{message}"
        );
    }

    #[test]
    fn declaration_comments_and_leading_whitespace_are_accepted() {
        let instructions = parse_ok(
            "\u{feff}  \n<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!-- a --><Response><!-- b --><Hangup/></Response>\n<!-- c -->\n",
        );
        assert!(matches!(instructions[..], [Instruction::Hangup]));
    }

    #[test]
    fn oversized_and_overly_nested_documents_are_rejected() {
        let big = response(&format!("<Say>{}</Say>", "a".repeat(MAX_DOCUMENT_BYTES)));
        let message = parse_err(&big, DOCUMENT_PARSE_FAILURE);
        assert!(message.contains("limit"), "{message}");
        let deep = format!(
            "<Response>{}{}</Response>",
            "<a>".repeat(50),
            "</a>".repeat(50)
        );
        let message = parse_err(&deep, SCHEMA_VALIDATION_FAILURE);
        assert!(message.contains("nested more than"), "{message}");
    }

    #[test]
    fn validate_accepts_well_formed_hand_built_instructions() {
        let instructions = vec![
            Instruction::Say(say("hello")),
            Instruction::Play(Play {
                url: "/v1/Media/ME1".into(),
                loop_count: 0,
            }),
            Instruction::Pause {
                length_seconds: 600,
            },
            Instruction::Gather(Gather {
                num_digits: Some(4),
                finish_on_key: None,
                prompts: vec![Prompt::Say(say("PIN")), Prompt::Pause { length_seconds: 1 }],
                ..gather()
            }),
            Instruction::Dial(dial(vec![
                number("+14155550100"),
                number("911"),
                DialTarget::Client {
                    identity: "alice".into(),
                },
            ])),
            Instruction::Dial(dial(vec![DialTarget::Queue {
                name: "support".into(),
                url: Some("module:whisper".into()),
            }])),
            Instruction::Enqueue(Enqueue {
                workflow_sid: Some(WORKFLOW.into()),
                task_attributes: Some("{\"a\": 1}".into()),
                priority: 10,
                wait_uri: Some(String::new()),
                ..enqueue("support")
            }),
            Instruction::Leave,
            Instruction::Redirect {
                uri: "module:next".into(),
            },
            Instruction::Hangup,
            Instruction::Reject {
                reason: RejectReason::Busy,
            },
        ];
        assert_eq!(validate(&instructions), Ok(()));
        assert_eq!(validate(&[]), Ok(()));
    }

    #[test]
    fn a_wait_document_may_only_keep_or_release_the_caller() {
        let allowed = parse(&response(
            "<Say>hold on</Say><Play>https://example.com/m.mp3</Play><Pause/><Gather><Say>0 to leave</Say></Gather><Redirect>/next</Redirect><Leave/><Hangup/>",
        ))
        .expect("a wait document");
        assert_eq!(validate_wait(&allowed), Ok(()));
        for verb in [
            "<Dial>+14155550100</Dial>",
            "<Enqueue>support</Enqueue>",
            "<Reject/>",
        ] {
            let instructions = parse(&response(&format!("<Say>hi</Say>{verb}"))).expect("TwiML");
            let error = validate_wait(&instructions).expect_err(verb);
            assert_eq!(error.code, SCHEMA_VALIDATION_FAILURE);
            assert!(
                error.message.starts_with("instruction 2 ("),
                "{}",
                error.message
            );
        }
    }

    #[test]
    fn validate_rejects_bad_hand_built_values() {
        let message = schema_err(&[
            Instruction::Hangup,
            Instruction::Gather(Gather {
                num_digits: Some(0),
                ..gather()
            }),
        ]);
        assert!(
            message.starts_with("instruction 2 (gather): num_digits 0 is invalid"),
            "{message}"
        );

        let bad = [
            Instruction::Say(say("")),
            Instruction::Say(say(&"a".repeat(4097))),
            Instruction::Say(Say {
                loop_count: 1001,
                ..say("hi")
            }),
            Instruction::Say(Say {
                voice: Some(String::new()),
                ..say("hi")
            }),
            Instruction::Play(Play {
                url: String::new(),
                loop_count: 1,
            }),
            Instruction::Pause { length_seconds: 0 },
            Instruction::Pause {
                length_seconds: 601,
            },
            Instruction::Gather(Gather {
                timeout_seconds: 0,
                ..gather()
            }),
            Instruction::Gather(Gather {
                finish_on_key: Some(String::new()),
                ..gather()
            }),
            Instruction::Gather(Gather {
                finish_on_key: Some("##".into()),
                ..gather()
            }),
            Instruction::Gather(Gather {
                action: Some(String::new()),
                ..gather()
            }),
            Instruction::Dial(dial(vec![])),
            Instruction::Dial(dial(vec![number("+14155550100"); 11])),
            Instruction::Dial(dial(vec![number("415-555-0100")])),
            Instruction::Dial(dial(vec![number("+1234567890123456")])),
            Instruction::Dial(dial(vec![DialTarget::Client {
                identity: "a b".into(),
            }])),
            Instruction::Dial(dial(vec![DialTarget::Queue {
                name: String::new(),
                url: None,
            }])),
            Instruction::Dial(Dial {
                timeout_seconds: 4,
                ..dial(vec![number("1")])
            }),
            Instruction::Dial(Dial {
                timeout_seconds: 601,
                ..dial(vec![number("1")])
            }),
            Instruction::Enqueue(enqueue("")),
            Instruction::Enqueue(enqueue(&"q".repeat(65))),
            Instruction::Enqueue(Enqueue {
                priority: -1,
                ..enqueue("q")
            }),
            Instruction::Enqueue(Enqueue {
                task_attributes: Some("{}".into()),
                ..enqueue("q")
            }),
            Instruction::Enqueue(Enqueue {
                workflow_sid: Some(WORKFLOW.into()),
                task_attributes: Some("[]".into()),
                ..enqueue("q")
            }),
            Instruction::Redirect { uri: String::new() },
        ];
        for instruction in bad {
            schema_err(std::slice::from_ref(&instruction));
        }

        let message = schema_err(&[Instruction::Gather(Gather {
            prompts: vec![
                Prompt::Say(say("ok")),
                Prompt::Play(Play {
                    url: String::new(),
                    loop_count: 1,
                }),
            ],
            ..gather()
        })]);
        assert!(
            message.starts_with("instruction 1 (gather), prompt 2 (play): url"),
            "{message}"
        );
        let message = schema_err(&[Instruction::Dial(dial(vec![number("+1"), number("x")]))]);
        assert!(
            message.starts_with("instruction 1 (dial), target 2 (number): number \"x\""),
            "{message}"
        );
    }

    #[test]
    fn every_error_displays_its_message() {
        let error = parse("<Response><Record/></Response>").expect_err("Record is unsupported");
        assert_eq!(error.to_string(), error.message);
    }
}
