//! Asking a handler what to do with a call: a module through the runtime, or an HTTP application
//! answering TwiML. Both end as the same instruction list, checked by the same rules, so the
//! interpreter never knows where its instructions came from.

use std::time::{Duration, Instant};

use crate::api::error::Code;
use crate::modules::ModuleUri;
use crate::runtime::Outcome;
use crate::runtime::io::{
    CallInfo, HandlerFailure, Instruction, Play, QueueStatus, Trigger, WaitInstruction,
};

use super::Core;
use super::twiml;

/// Why a handler did not give usable instructions: the `ErrorCode` a fallback receives.
#[derive(Debug, Clone)]
pub struct HandlerError {
    pub code: Code,
    pub message: String,
}

impl HandlerError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        HandlerError {
            code,
            message: message.into(),
        }
    }
}

/// Which handler served a request: the segment a call is in while it has control.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Controller {
    /// `module:NAME@VERSION` (resolved) or the URL without query or fragment.
    pub uri: String,
    pub module_name: Option<String>,
    pub module_version: Option<i64>,
}

/// What one request to a handler cost.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cost {
    pub fuel_consumed: u64,
    pub wall_time_us: u64,
}

/// The outcome of one request to a handler.
pub struct Answer {
    pub controller: Controller,
    pub cost: Cost,
    pub instructions: Result<Vec<Instruction>, HandlerError>,
}

/// A request for instructions.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub uri: String,
    pub method: String,
    pub trigger: Trigger,
    /// Set when this request is the fallback for a failed one.
    pub failure: Option<HandlerFailure>,
    /// Further parameters the handler receives (queue figures, the dequeued call, ...).
    pub parameters: Vec<(String, String)>,
    /// Set when the request asks a wait-state application what a queued caller hears.
    pub wait: Option<QueueStatus>,
}

impl Request {
    pub fn new(uri: impl Into<String>, method: impl Into<String>, trigger: Trigger) -> Self {
        Request {
            uri: uri.into(),
            method: method.into(),
            trigger,
            ..Request::default()
        }
    }
}

/// The call as the request describes it.
pub struct CallView<'a> {
    pub call_sid: &'a str,
    pub account_sid: &'a str,
    pub from: &'a str,
    pub to: &'a str,
    pub direction: crate::runtime::io::CallDirection,
    pub status: crate::runtime::io::CallStatus,
    pub parent_call_sid: Option<&'a str>,
}

impl Core {
    /// Requests instructions from `request.uri`.
    pub(crate) async fn request(
        &self,
        account: &crate::accounts::Account,
        call: &CallView<'_>,
        request: &Request,
    ) -> Answer {
        match ModuleUri::parse(&request.uri) {
            Some(Ok(uri)) => self.request_module(account, call, request, &uri).await,
            Some(Err(message)) => Answer {
                controller: Controller {
                    uri: request.uri.clone(),
                    module_name: None,
                    module_version: None,
                },
                cost: Cost::default(),
                instructions: Err(HandlerError::new(Code::InvalidHandlerUri, message)),
            },
            None => self.request_http(call, request).await,
        }
    }

    async fn request_module(
        &self,
        account: &crate::accounts::Account,
        call: &CallView<'_>,
        request: &Request,
        uri: &ModuleUri,
    ) -> Answer {
        let unresolved = Controller {
            uri: request.uri.clone(),
            module_name: Some(uri.name.clone()),
            module_version: uri.version,
        };
        let module = match self.registry.resolve(&account.sid, uri).await {
            Ok(Some(module)) => module,
            Ok(None) => {
                return Answer {
                    controller: unresolved,
                    cost: Cost::default(),
                    instructions: Err(HandlerError::new(
                        Code::ModuleNotFound,
                        format!("{}: this account has no such module", request.uri),
                    )),
                };
            }
            Err(error) => {
                tracing::error!(%error, "could not resolve a module");
                return Answer {
                    controller: unresolved,
                    cost: Cost::default(),
                    instructions: Err(HandlerError::new(
                        Code::ModuleHostError,
                        "the module registry could not be read",
                    )),
                };
            }
        };
        let controller = Controller {
            uri: format!("module:{}@{}", module.name, module.version),
            module_name: Some(module.name.clone()),
            module_version: Some(module.version),
        };
        let mut target = match self.registry.target(account, &module).await {
            Ok(target) => target,
            Err(error) => {
                return Answer {
                    controller,
                    cost: Cost::default(),
                    instructions: Err(HandlerError::new(Code::ModuleHostError, error.message)),
                };
            }
        };
        target.call_sid = Some(call.call_sid.to_string());
        let mut parameters = vec![("ApiVersion".to_string(), "2010-04-01".to_string())];
        if let Some(parent) = call.parent_call_sid {
            parameters.push(("ParentCallSid".into(), parent.into()));
        }
        parameters.extend(request.parameters.iter().cloned());
        // A wait-state application is not told why it is asked; keys gathered for it arrive as a
        // parameter, as an HTTP wait URL receives them.
        if let (Some(_), Trigger::Gather { digits, .. }) = (&request.wait, &request.trigger) {
            parameters.push(("Digits".into(), digits.clone()));
        }
        let info = CallInfo {
            call_sid: Some(call.call_sid.to_string()),
            from: call.from.to_string(),
            to: call.to.to_string(),
            direction: call.direction,
            status: call.status,
            failure: request.failure.clone(),
            parameters,
        }
        .to_wit(call.account_sid);
        let (result, usage) = match &request.wait {
            Some(status) => {
                let invoked = self.runtime.on_wait(&target, &info, &status.to_wit()).await;
                let list = invoked.result.map(|list| {
                    list.iter()
                        .map(|i| Instruction::from(WaitInstruction::from(i)))
                        .collect::<Vec<_>>()
                });
                (list, invoked.usage)
            }
            None => {
                let invoked = self
                    .runtime
                    .handle(&target, &info, &request.trigger.to_wit())
                    .await;
                let list = invoked
                    .result
                    .map(|list| list.iter().map(Instruction::from).collect::<Vec<_>>());
                (list, invoked.usage)
            }
        };
        let cost = Cost {
            fuel_consumed: usage.fuel_consumed,
            wall_time_us: usage.wall_time_us,
        };
        let instructions = match result {
            Ok(list) => twiml::validate(&list)
                .map(|()| list)
                .map_err(|invalid| HandlerError::new(code_of(invalid.code), invalid.message)),
            Err(failure) => Err(HandlerError::new(
                module_failure_code(failure.outcome),
                format!(
                    "module:{}@{} {}: {}",
                    module.name,
                    module.version,
                    failure.outcome.as_str(),
                    failure.message
                ),
            )),
        };
        Answer {
            controller,
            cost,
            instructions,
        }
    }

    async fn request_http(&self, call: &CallView<'_>, request: &Request) -> Answer {
        let started = Instant::now();
        let mut url = match reqwest::Url::parse(&request.uri) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => url,
            _ => {
                return Answer {
                    controller: Controller {
                        uri: request.uri.clone(),
                        module_name: None,
                        module_version: None,
                    },
                    cost: Cost::default(),
                    instructions: Err(HandlerError::new(
                        Code::InvalidHandlerUri,
                        format!(
                            "{:?} is not module:NAME[@VERSION] or an absolute http(s) URL",
                            request.uri
                        ),
                    )),
                };
            }
        };
        url.set_fragment(None);
        let mut identity = url.clone();
        identity.set_query(None);
        let controller = Controller {
            uri: identity.to_string(),
            module_name: None,
            module_version: None,
        };
        let params = request_parameters(call, request);
        let builder = if request.method == "GET" {
            self.http.get(url.clone()).query(&params)
        } else {
            self.http.post(url.clone()).form(&params)
        };
        let mut instructions = fetch_document(builder, &url).await;
        if request.wait.is_some()
            && let Ok(list) = &instructions
            && let Err(invalid) = twiml::validate_wait(list)
        {
            instructions = Err(HandlerError::new(
                code_of(invalid.code),
                format!("{url}: {}", invalid.message),
            ));
        }
        Answer {
            controller,
            cost: Cost {
                fuel_consumed: 0,
                wall_time_us: started.elapsed().as_micros() as u64,
            },
            instructions,
        }
    }
}

/// The parameters an HTTP application receives, as the reference platform sends them.
pub fn request_parameters(call: &CallView<'_>, request: &Request) -> Vec<(String, String)> {
    let mut params: Vec<(String, String)> = vec![
        ("CallSid".into(), call.call_sid.into()),
        ("AccountSid".into(), call.account_sid.into()),
        ("From".into(), call.from.into()),
        ("To".into(), call.to.into()),
        ("Caller".into(), call.from.into()),
        ("Called".into(), call.to.into()),
        ("CallStatus".into(), call.status.as_str().into()),
        ("Direction".into(), call.direction.as_str().into()),
        ("ApiVersion".into(), "2010-04-01".into()),
    ];
    if let Some(parent) = call.parent_call_sid {
        params.push(("ParentCallSid".into(), parent.into()));
    }
    params.extend(request.parameters.iter().cloned());
    match &request.trigger {
        Trigger::Incoming | Trigger::Redirect => {}
        Trigger::Gather { digits, .. } => params.push(("Digits".into(), digits.clone())),
        Trigger::Dial {
            status,
            dial_call_sid,
            duration_seconds,
        } => {
            params.push(("DialCallStatus".into(), status.as_str().into()));
            if let Some(sid) = dial_call_sid {
                params.push(("DialCallSid".into(), sid.clone()));
            }
            params.push(("DialCallDuration".into(), duration_seconds.to_string()));
            params.push((
                "DialBridged".into(),
                (matches!(status, crate::runtime::io::DialStatus::Completed)).to_string(),
            ));
        }
        Trigger::Enqueue {
            result,
            queue_sid,
            queue_time_seconds,
        } => {
            let result = serde_json::to_value(result)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            params.push(("QueueResult".into(), result));
            if let Some(sid) = queue_sid {
                params.push(("QueueSid".into(), sid.clone()));
            }
            params.push(("QueueTime".into(), queue_time_seconds.to_string()));
        }
    }
    if let Some(failure) = &request.failure {
        params.push(("ErrorCode".into(), failure.code.to_string()));
        params.push(("ErrorUrl".into(), failure.uri.clone()));
    }
    params
}

/// Sends the request and turns the answer into instructions.
async fn fetch_document(
    builder: reqwest::RequestBuilder,
    url: &reqwest::Url,
) -> Result<Vec<Instruction>, HandlerError> {
    let mut response = builder
        .send()
        .await
        .map_err(|error| transport_error(url, &error))?;
    let status = response.status();
    if !status.is_success() {
        return Err(HandlerError::new(
            Code::HttpRetrievalFailure,
            format!("{url} answered HTTP {status}"),
        ));
    }
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        });
    let Some(content_type) = content_type else {
        return Err(HandlerError::new(
            Code::InvalidContentType,
            format!("{url} answered without a Content-Type"),
        ));
    };
    if content_type.starts_with("audio/") {
        // An audio answer is played, then the call ends, as on the reference platform.
        return Ok(vec![
            Instruction::Play(Play {
                url: url.to_string(),
                loop_count: 1,
            }),
            Instruction::Hangup,
        ]);
    }
    if !matches!(
        content_type.as_str(),
        "text/xml" | "application/xml" | "text/html" | "text/plain"
    ) {
        return Err(HandlerError::new(
            Code::InvalidContentType,
            format!(
                "{url} answered Content-Type {content_type}; TwiML must be text/xml or application/xml"
            ),
        ));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|error| transport_error(url, &error))?
    {
        if body.len() + chunk.len() > twiml::MAX_DOCUMENT_BYTES {
            return Err(HandlerError::new(
                Code::DocumentParseFailure,
                format!(
                    "{url} answered a document over {} bytes",
                    twiml::MAX_DOCUMENT_BYTES
                ),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    let text = String::from_utf8(body).map_err(|_| {
        HandlerError::new(
            Code::DocumentParseFailure,
            format!("{url} answered a document that is not UTF-8"),
        )
    })?;
    twiml::parse(&text).map_err(|invalid| {
        HandlerError::new(code_of(invalid.code), format!("{url}: {}", invalid.message))
    })
}

fn transport_error(url: &reqwest::Url, error: &reqwest::Error) -> HandlerError {
    let reason = if error.is_timeout() {
        "did not answer in time"
    } else if error.is_connect() {
        "could not be connected to"
    } else {
        "failed while answering"
    };
    HandlerError::new(Code::HttpConnectionFailure, format!("{url} {reason}"))
}

/// The table entry for a TwiML error code.
fn code_of(number: u32) -> Code {
    Code::from_number(number).unwrap_or(Code::SchemaValidation)
}

/// The `ErrorCode` for each way a module can fail.
pub fn module_failure_code(outcome: Outcome) -> Code {
    match outcome {
        Outcome::GuestError => Code::ModuleGuestError,
        Outcome::OutOfFuel => Code::ModuleOutOfFuel,
        Outcome::Deadline => Code::ModuleDeadline,
        Outcome::MemoryLimit => Code::ModuleMemoryLimit,
        Outcome::HostCallLimit => Code::ModuleHostCallLimit,
        Outcome::HostError => Code::ModuleHostError,
        Outcome::Ok | Outcome::StackOverflow | Outcome::Unreachable | Outcome::Trap => {
            Code::ModuleTrapped
        }
    }
}

/// Resolves a URI found in a document against the document's own URI: module URIs and absolute
/// URLs stand alone; relative URLs only make sense inside a document fetched over HTTP.
pub fn resolve_uri(base: &str, target: &str) -> Result<String, HandlerError> {
    let target = target.trim();
    if target.starts_with("module:") {
        return Ok(target.to_string());
    }
    if let Ok(url) = reqwest::Url::parse(target) {
        return Ok(url.to_string());
    }
    match reqwest::Url::parse(base) {
        Ok(base) if matches!(base.scheme(), "http" | "https") => {
            base.join(target).map(|url| url.to_string()).map_err(|_| {
                HandlerError::new(
                    Code::InvalidHandlerUri,
                    format!("{target:?} is not a valid URL relative to {base}"),
                )
            })
        }
        _ => Err(HandlerError::new(
            Code::InvalidHandlerUri,
            format!(
                "{target:?} is relative, but the instruction came from {base}: use module:NAME or an absolute URL"
            ),
        )),
    }
}

/// How long a request may take as a whole, from the settings.
pub fn http_client(settings: &crate::config::TelephonySettings) -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_millis(settings.http_connect_timeout_ms))
        .timeout(Duration::from_millis(settings.http_timeout_ms))
        .user_agent(concat!("switchboard/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_urls_resolve_only_against_http_documents() {
        assert_eq!(
            resolve_uri("http://app.example/ivr/menu", "next")
                .ok()
                .as_deref(),
            Some("http://app.example/ivr/next")
        );
        assert_eq!(
            resolve_uri("module:menu@2", "module:desk").ok().as_deref(),
            Some("module:desk")
        );
        let error = resolve_uri("module:menu@2", "/next").err().map(|e| e.code);
        assert_eq!(error, Some(Code::InvalidHandlerUri));
    }

    #[test]
    fn every_module_outcome_has_a_failure_code() {
        for outcome in Outcome::ALL {
            assert!(module_failure_code(outcome).status().is_server_error());
        }
    }
}
