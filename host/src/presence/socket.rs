//! The client protocol over `GET /v1/Presence/Connect`: JSON text messages with a `type`.
//!
//! The token is checked before anything is registered. A refused token gets an `error` message
//! and a close frame whose code is 4000 + the error's HTTP status (4401 for a bad, expired or
//! revoked token, 4403 for a missing grant) and whose reason says why, so a browser client, which
//! cannot read the upgrade's HTTP status, still learns what went wrong.
//!
//! Client → host: `heartbeat`, `accept` / `reject` / `hangup` (`call_sid`), `call` (`to`,
//! `params`), `token` (`token`, to renew before expiry). Host → client: see
//! [`ServerMessage`](super::ServerMessage).

use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use serde::Deserialize;

use super::{Departure, Endpoint, Outgoing, Presence, ServerMessage};
use crate::api::error::{ApiError, Code};

/// Largest message a client may send: messages are small JSON objects.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024;

/// Close code for the host going away (RFC 6455).
const GOING_AWAY: u16 = 1001;
/// Close code when the lease lapsed without a heartbeat.
const LEASE_EXPIRED: u16 = 4408;

/// What a client sends.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
enum ClientMessage {
    /// A struct variant, so that `deny_unknown_fields` holds for it too.
    Heartbeat {},
    Accept {
        call_sid: String,
    },
    Reject {
        call_sid: String,
    },
    Hangup {
        call_sid: String,
    },
    Call {
        to: String,
        #[serde(default)]
        params: serde_json::Map<String, serde_json::Value>,
    },
    Token {
        token: String,
    },
}

/// The close code for a refusal: 4000 + its HTTP status.
pub fn close_code(code: Code) -> u16 {
    4000 + code.status().as_u16()
}

/// Close reasons are limited to 123 bytes by the protocol.
fn close_reason(text: &str) -> String {
    let mut reason = String::new();
    for c in text.chars() {
        if reason.len() + c.len_utf8() > 123 {
            break;
        }
        reason.push(c);
    }
    reason
}

/// How long a send may wait for a client that does not read. A client that stops reading must
/// not hold its connection's loop (and so its lease, its token's expiry and revocation) forever.
const SEND_PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);

async fn send(socket: &mut WebSocket, message: &ServerMessage) -> bool {
    let Ok(text) = serde_json::to_string(message) else {
        return false;
    };
    matches!(
        tokio::time::timeout(SEND_PATIENCE, socket.send(Message::Text(text.into()))).await,
        Ok(Ok(()))
    )
}

async fn close(socket: &mut WebSocket, code: u16, reason: &str) {
    let frame = Message::Close(Some(CloseFrame {
        code,
        reason: close_reason(reason).into(),
    }));
    let _ = tokio::time::timeout(SEND_PATIENCE, socket.send(frame)).await;
}

/// Serves one client connection from token check to departure.
pub async fn serve(presence: Presence, mut socket: WebSocket, token: Option<String>) {
    let registration = match token {
        None => Err(ApiError::new(
            Code::InvalidAccessToken,
            "No access token: pass it as ?token=... or in Authorization: Bearer ...",
        )),
        Some(token) => match presence.authorize(&token).await {
            Ok(claims) => presence.register(&claims).await,
            Err(error) => Err(error),
        },
    };
    let (endpoint, mut outbox) = match registration {
        Ok(registered) => registered,
        Err(error) => {
            send(&mut socket, &ServerMessage::error(&error, None)).await;
            close(&mut socket, close_code(error.code), &error.message).await;
            return;
        }
    };
    let departure = if send(&mut socket, &registered(&presence, &endpoint)).await {
        converse(&presence, &endpoint, &mut socket, &mut outbox).await
    } else {
        Departure::Closed
    };
    presence.unregister(&endpoint, departure).await;
}

/// The `registered` message: sent on connecting, and again when a fresh token is accepted.
fn registered(presence: &Presence, endpoint: &Endpoint) -> ServerMessage {
    let settings = presence.settings();
    ServerMessage::Registered {
        identity: endpoint.identity.clone(),
        endpoint_id: endpoint.id.clone(),
        account_sid: endpoint.account_sid.clone(),
        heartbeat_interval_seconds: settings.heartbeat_interval_seconds,
        lease_seconds: settings.lease_seconds,
        token_expires_at: crate::store::rfc3339(
            endpoint.authority().expires_at_s.saturating_mul(1000),
        ),
    }
}

/// Exchanges messages until the client leaves, its lease or token runs out, it is revoked, or the
/// host stops.
async fn converse(
    presence: &Presence,
    endpoint: &Arc<Endpoint>,
    socket: &mut WebSocket,
    outbox: &mut tokio::sync::mpsc::UnboundedReceiver<Outgoing>,
) -> Departure {
    let clock = presence.clock().clone();
    let mut stopping = presence.stopping();
    loop {
        let lease_ends = endpoint
            .last_heartbeat()
            .saturating_add(presence.lease_ms());
        let token_ends = presence.token_ends_ms(endpoint);
        let (deadline, lapse) = if token_ends < lease_ends {
            (token_ends, Departure::TokenExpired)
        } else {
            (lease_ends, Departure::LeaseExpired)
        };
        tokio::select! {
            received = socket.recv() => {
                let text = match received {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Binary(_))) => {
                        let error = ApiError::new(Code::ClientMessageInvalid, "Messages are JSON text, not binary");
                        send(socket, &ServerMessage::error(&error, None)).await;
                        continue;
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return Departure::Closed,
                };
                if let Some(reply) = handle(presence, endpoint, text.as_str()).await
                    && !send(socket, &reply).await
                {
                    return Departure::Closed;
                }
            }
            outgoing = outbox.recv() => match outgoing {
                Some(Outgoing::Message(message)) => {
                    if !send(socket, &message).await {
                        return Departure::Closed;
                    }
                }
                Some(Outgoing::Close { code, reason }) => {
                    let error = ApiError::new(Code::AccessTokenRevoked, reason.clone());
                    send(socket, &ServerMessage::error(&error, None)).await;
                    close(socket, code, &reason).await;
                    return Departure::Revoked;
                }
                None => return Departure::Closed,
            },
            () = clock.sleep_until_ms(deadline) => {
                // A heartbeat or renewal may have moved the deadline while this slept.
                let lease_ends = endpoint.last_heartbeat().saturating_add(presence.lease_ms());
                let token_ends = presence.token_ends_ms(endpoint);
                if clock.now_ms() < lease_ends.min(token_ends) {
                    continue;
                }
                let (code, reason) = match lapse {
                    Departure::TokenExpired => (
                        close_code(Code::AccessTokenExpired),
                        "the access token expired; connect again with a fresh one",
                    ),
                    _ => (LEASE_EXPIRED, "no heartbeat within the lease; connect again"),
                };
                close(socket, code, reason).await;
                return lapse;
            }
            () = async { let _ = stopping.wait_for(|stopping| *stopping).await; } => {
                close(socket, GOING_AWAY, "the host is stopping; reconnect shortly").await;
                return Departure::HostStopping;
            }
        }
    }
}

/// Carries out one client message; the reply, if any.
async fn handle(
    presence: &Presence,
    endpoint: &Arc<Endpoint>,
    text: &str,
) -> Option<ServerMessage> {
    if text.len() > MAX_MESSAGE_BYTES {
        let error = ApiError::new(
            Code::ClientMessageInvalid,
            format!("Messages are at most {MAX_MESSAGE_BYTES} bytes"),
        );
        return Some(ServerMessage::error(&error, None));
    }
    let message = match serde_json::from_str::<ClientMessage>(text) {
        Ok(message) => message,
        Err(error) => {
            let error = ApiError::new(
                Code::ClientMessageInvalid,
                format!("The message could not be read: {error}"),
            );
            return Some(ServerMessage::error(&error, None));
        }
    };
    let (result, call_sid) = match message {
        ClientMessage::Heartbeat {} => {
            let lease_ends = presence.heartbeat(endpoint);
            return Some(ServerMessage::Heartbeat {
                lease_expires_at: crate::store::rfc3339(lease_ends),
            });
        }
        ClientMessage::Accept { call_sid } => {
            (presence.accept(endpoint, &call_sid).await, call_sid)
        }
        ClientMessage::Reject { call_sid } => {
            (presence.reject(endpoint, &call_sid).await, call_sid)
        }
        ClientMessage::Hangup { call_sid } => {
            (presence.hang_up(endpoint, &call_sid).await, call_sid)
        }
        ClientMessage::Call { to, params } => {
            return Some(match presence.place(endpoint, &to, &params).await {
                Ok(call_sid) => ServerMessage::Calling { call_sid, to },
                Err(error) => ServerMessage::error(&error, None),
            });
        }
        ClientMessage::Token { token } => {
            return match presence.renew(endpoint, &token).await {
                Ok(()) => {
                    presence.heartbeat(endpoint);
                    Some(registered(presence, endpoint))
                }
                Err(error) => Some(ServerMessage::error(&error, None)),
            };
        }
    };
    result
        .err()
        .map(|error| ServerMessage::error(&error, Some(&call_sid)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_messages_are_read_strictly() {
        assert!(matches!(
            serde_json::from_str::<ClientMessage>(r#"{"type":"heartbeat"}"#),
            Ok(ClientMessage::Heartbeat {})
        ));
        assert!(matches!(
            serde_json::from_str::<ClientMessage>(r#"{"type":"accept","call_sid":"CA1"}"#),
            Ok(ClientMessage::Accept { call_sid }) if call_sid == "CA1"
        ));
        assert!(serde_json::from_str::<ClientMessage>(r#"{"type":"accept"}"#).is_err());
        assert!(serde_json::from_str::<ClientMessage>(r#"{"type":"dance"}"#).is_err());
        assert!(
            serde_json::from_str::<ClientMessage>(r#"{"type":"heartbeat","extra":1}"#).is_err()
        );
    }

    #[test]
    fn close_codes_follow_the_http_status_and_reasons_fit_the_frame() {
        assert_eq!(close_code(Code::InvalidAccessToken), 4401);
        assert_eq!(close_code(Code::GrantMissing), 4403);
        let long = "é".repeat(200);
        assert!(close_reason(&long).len() <= 123);
    }
}
