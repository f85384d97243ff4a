//! The one table of API errors: each code with its HTTP status, a title, and what to do about it.
//!
//! Bodies follow the reference platform's shape, `{"code", "message", "more_info", "status"}`, so
//! existing client SDKs surface them unchanged. `more_info` points at `/v1/Errors/{code}`, which
//! serves the table entry.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

macro_rules! error_codes {
    ($($variant:ident = $number:literal, $status:ident, $title:literal, $advice:literal;)*) => {
        /// Every error the HTTP API can answer with.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Code {
            $($variant,)*
        }

        impl Code {
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];

            pub fn number(self) -> u32 {
                match self { $(Code::$variant => $number,)* }
            }

            pub fn status(self) -> StatusCode {
                match self { $(Code::$variant => StatusCode::$status,)* }
            }

            pub fn title(self) -> &'static str {
                match self { $(Code::$variant => $title,)* }
            }

            /// What a user should do when they see this error.
            pub fn advice(self) -> &'static str {
                match self { $(Code::$variant => $advice,)* }
            }
        }
    };
}

error_codes! {
    InvalidParameter = 20001, BAD_REQUEST, "Invalid parameter",
        "Check the parameter named in the message against the API reference.";
    AuthenticationRequired = 20003, UNAUTHORIZED, "Authentication failed",
        "Send HTTP Basic credentials AccountSid:AuthToken or ApiKeySid:Secret (tenant APIs) or `Authorization: Bearer <admin token>` (operator APIs).";
    ApiKeyNotAllowed = 20403, FORBIDDEN, "Not allowed with an API key",
        "Manage API keys with the account's own credentials, AccountSid:AuthToken.";
    NotFound = 20404, NOT_FOUND, "Resource not found",
        "Check the sid or name in the URL; resources of other accounts are never visible.";
    MethodNotAllowed = 20405, METHOD_NOT_ALLOWED, "Method not allowed",
        "Use one of the methods this resource supports.";
    Conflict = 20409, CONFLICT, "Conflict",
        "The resource changed or is in use; fetch it again and retry.";
    PreconditionFailed = 20412, PRECONDITION_FAILED, "Version mismatch",
        "The If-Match header names an older version of the resource; fetch it again (its ETag is the current version) and retry.";
    PayloadTooLarge = 20413, PAYLOAD_TOO_LARGE, "Request body too large",
        "Send a smaller body; the limit is in the message.";
    UnsupportedMediaType = 20415, UNSUPPORTED_MEDIA_TYPE, "Unsupported content type",
        "Send the body with the content type this endpoint expects.";
    Busy = 20429, TOO_MANY_REQUESTS, "Too many concurrent requests",
        "Retry once some of your requests in progress have been answered; the host is at the concurrency it allows an account.";
    Internal = 20500, INTERNAL_SERVER_ERROR, "Internal error",
        "Retry; if it persists, the operator will find the details in the host's logs.";
    Unavailable = 20503, SERVICE_UNAVAILABLE, "Service unavailable",
        "A dependency of the host (usually the database) did not answer; retry shortly.";
    NotWasm = 30001, BAD_REQUEST, "Not a WebAssembly binary",
        "Upload the .wasm file your build produced (e.g. target/wasm32-wasip2/release/NAME.wasm).";
    NotComponent = 30002, BAD_REQUEST, "Core module, not a component",
        "Build for the wasm32-wasip2 target (`cargo build --target wasm32-wasip2`), which produces a component, or wrap the core module with `wasm-tools component new`.";
    WorldMismatch = 30003, UNPROCESSABLE_ENTITY, "Component does not implement the declared world",
        "Make the module export the functions of the world named by Kind, and import only interfaces that world offers (see wit/worlds.wit).";
    ModuleTooLarge = 30004, PAYLOAD_TOO_LARGE, "Module too large",
        "Shrink the module (release build, strip debug info) or ask the operator to raise modules.max_upload_bytes.";
    UnknownKind = 30005, BAD_REQUEST, "Unknown module kind",
        "Kind must be one of telephony-handler, wait-state, workflow-rules, event-subscriber.";
    CompileFailed = 30006, UNPROCESSABLE_ENTITY, "Module failed to compile",
        "The component is valid wasm but could not be compiled for this host; check it uses no disabled proposal (threads, GC, exceptions).";
    InvalidInvocationInput = 30007, BAD_REQUEST, "Invalid invocation input",
        "The JSON body must match the module's world; the message names the field at fault.";
    InvalidHandlerUri = 11100, BAD_GATEWAY, "Invalid handler URI",
        "A call was sent to a URI that is neither module:NAME[@VERSION] nor an absolute http(s) URL (relative URLs only work inside documents fetched over HTTP).";
    HttpRetrievalFailure = 11200, BAD_GATEWAY, "HTTP retrieval failure",
        "The HTTP application answered with a status other than 2xx; check its logs for the request with this CallSid.";
    HttpConnectionFailure = 11205, BAD_GATEWAY, "HTTP connection failure",
        "The HTTP application could not be reached or did not answer in time; check it is up and answers within telephony.http_timeout_ms.";
    RedirectLoop = 11215, BAD_GATEWAY, "Too many redirects",
        "The call was passed from handler to handler without playing anything or waiting for input; break the Redirect loop.";
    DocumentParseFailure = 12100, BAD_GATEWAY, "Document parse failure",
        "The HTTP application's answer is not well-formed TwiML: it must be XML with a <Response> root.";
    SchemaValidation = 12200, BAD_GATEWAY, "Invalid instructions",
        "An instruction uses an unknown verb or an invalid attribute value; the message names it.";
    InvalidContentType = 12300, BAD_GATEWAY, "Invalid content type",
        "Answer with Content-Type text/xml or application/xml (TwiML), or an audio type to play a file.";
    ModuleNotFound = 31001, BAD_GATEWAY, "Handler module not found",
        "The call's handler URI names a module (or version) this account does not have; upload it or fix the URI.";
    ModuleGuestError = 31002, BAD_GATEWAY, "Handler module returned an error",
        "The module's handle function returned Err; the message carries its text.";
    ModuleTrapped = 31003, BAD_GATEWAY, "Handler module trapped",
        "The module panicked or trapped (unreachable, out-of-bounds access, stack overflow); see the usage record and logs for the backtrace.";
    ModuleOutOfFuel = 31004, BAD_GATEWAY, "Handler module ran out of fuel",
        "The module executed more instructions than its fuel limit; make it do less per call or raise the account's FuelLimit.";
    ModuleDeadline = 31005, BAD_GATEWAY, "Handler module exceeded its deadline",
        "The module ran longer than its wall-clock deadline; make it faster or raise the account's DeadlineMs.";
    ModuleMemoryLimit = 31006, BAD_GATEWAY, "Handler module exceeded its memory limit",
        "The module grew its memory past the budget; use less or raise the account's MemoryLimitBytes.";
    ModuleHostCallLimit = 31007, BAD_GATEWAY, "Handler module made too many host calls",
        "The module called host interfaces more often than its limit allows; batch the calls or raise HostCallLimit.";
    ModuleHostError = 31008, BAD_GATEWAY, "Handler module could not be run",
        "The host could not run the module (busy or being reloaded); retry the call.";
    VerbNotAvailable = 31009, BAD_REQUEST, "Instruction not available",
        "The instruction is valid but this host cannot carry it out (the message says which); use another instruction. Nothing changed.";
    UnknownNumber = 31010, NOT_FOUND, "Unknown phone number",
        "No phone number of this account matches To; buy it with POST /2010-04-01/Accounts/{AccountSid}/IncomingPhoneNumbers.json first.";
    CallNotLive = 31011, CONFLICT, "Call is not live",
        "The call has ended (or is not in a state that accepts this action); fetch it to see its status.";
    ReservationNotPending = 40140, CONFLICT, "Reservation is not pending",
        "Only a pending reservation can be accepted, rejected or given an instruction (an accepted one can be completed); fetch it to see its status.";
    PublishNotAllowed = 50001, FORBIDDEN, "Publishing not allowed on this channel",
        "Custom events can only be published to a channel created or updated with AllowPublish=true.";
    WebhookTargetRefused = 50002, BAD_REQUEST, "Webhook target not allowed",
        "Webhooks must be http(s) URLs of public addresses; an operator can allow private ones with events.allow_private_targets.";
    InvalidAccessToken = 51001, UNAUTHORIZED, "Invalid access token",
        "Mint the token with an API key of this account (POST /v1/Keys): a JWT signed HS256 with the key's secret, header cty \"twilio-fpa;v=1\", iss the key's sid, sub the account's sid and grants.identity set.";
    AccessTokenExpired = 51002, UNAUTHORIZED, "Access token expired",
        "Mint a new token (its exp is in the past or its nbf in the future; check the minting machine's clock) and connect again.";
    AccessTokenRevoked = 51003, UNAUTHORIZED, "Access token revoked",
        "The API key that signed the token was deleted, or the account is suspended; mint tokens with a current key.";
    GrantMissing = 51004, FORBIDDEN, "Grant missing",
        "The token does not allow this: registering needs grants.voice.incoming.allow = true, placing calls needs grants.voice.outgoing.application_sid.";
    TooManyEndpoints = 51005, CONFLICT, "Too many endpoints",
        "This identity already holds as many endpoints as presence.max_endpoints_per_identity allows; close one first.";
    ClientMessageInvalid = 51006, BAD_REQUEST, "Invalid client message",
        "Send JSON objects with a type of heartbeat, accept, reject, call, hangup or token; the message names what is wrong.";
    ClockNotManual = 31012, CONFLICT, "The clock is not manual",
        "Only a host started with telephony.clock = \"manual\" can have its clock advanced.";
    MediaFetchFailed = 32001, BAD_GATEWAY, "Media could not be fetched",
        "The audio URL did not answer, answered an error status, or took too long; check the URL serves the file (a plain GET, status 200) and answers within media.fetch_timeout_ms.";
    MediaAddressRefused = 32002, FORBIDDEN, "Media address refused",
        "The URL points at a private, loopback or link-local address; host the audio at a public address, or have the operator set media.allow_private_addresses.";
    MediaTooLarge = 32003, PAYLOAD_TOO_LARGE, "Media too large",
        "The file is larger than media.max_fetch_bytes (or an upload than media.max_upload_bytes), or longer than the cache holds; shorten or compress it.";
    MediaNotAudio = 32004, UNPROCESSABLE_ENTITY, "Not playable audio",
        "The file is not complete audio in a supported format; serve WAV, MP3, OGG/Vorbis, FLAC, AIFF or raw 8 kHz mu-law (audio/basic), not an HTML page.";
    SpeechUnavailable = 32005, SERVICE_UNAVAILABLE, "Text-to-speech unavailable",
        "No text-to-speech engine is installed on the host; the operator installs espeak-ng (apt-get install espeak-ng) or sets media.tts_command.";
    SpeechFailed = 32006, UNPROCESSABLE_ENTITY, "Speech could not be synthesized",
        "The text, voice or language could not be spoken; the message says which; use a supported language tag such as en-US.";
}

impl Code {
    /// The entry for a numeric code, e.g. a handler failure's `ErrorCode`.
    pub fn from_number(number: u32) -> Option<Code> {
        Code::ALL
            .iter()
            .copied()
            .find(|code| code.number() == number)
    }
}

/// An error answered by the API: a code from the table plus a message saying what was wrong.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub code: Code,
    pub message: String,
}

impl ApiError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
        }
    }

    pub fn not_found(what: impl std::fmt::Display) -> Self {
        ApiError::new(
            Code::NotFound,
            format!("The requested resource {what} was not found"),
        )
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        ApiError::new(Code::InvalidParameter, message)
    }
}

/// Database and other unexpected failures become 500 or 503 with the cause logged, never shown:
/// internal detail is not the tenant's business.
impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        tracing::error!(%error, "database error");
        match error {
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
                ApiError::new(Code::Unavailable, "The database did not answer in time")
            }
            _ => ApiError::new(Code::Internal, "An internal error occurred"),
        }
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(error: anyhow::Error) -> Self {
        tracing::error!(error = format!("{error:#}"), "internal error");
        ApiError::new(Code::Internal, "An internal error occurred")
    }
}

/// The wire body of an error.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub code: u32,
    pub message: String,
    pub more_info: String,
    pub status: u16,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.code.status();
        let body = ErrorBody {
            code: self.code.number(),
            message: self.message,
            more_info: format!("/v1/Errors/{}", self.code.number()),
            status: status.as_u16(),
        };
        let mut response = (status, Json(body)).into_response();
        // Too busy now, or a dependency slow to answer: worth another try shortly.
        if matches!(status.as_u16(), 429 | 503) {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("1"),
            );
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn codes_are_unique_and_statuses_are_errors() {
        let mut seen = HashSet::new();
        for code in Code::ALL {
            assert!(
                seen.insert(code.number()),
                "duplicate code {}",
                code.number()
            );
            assert!(code.status().is_client_error() || code.status().is_server_error());
            assert!(!code.advice().is_empty());
        }
    }
}
