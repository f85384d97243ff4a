//! Who is calling. Tenants authenticate with HTTP Basic `AccountSid:AuthToken` or
//! `ApiKeySid:Secret`, as the reference platform's SDKs do; operators with
//! `Authorization: Bearer <admin token>`.

use axum::extract::FromRequestParts;
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use subtle::ConstantTimeEq;

use super::admission::WriteTicket;
use super::error::{ApiError, Code};
use crate::accounts::Account;
use crate::app::AppState;

/// An authenticated tenant request.
pub struct Tenant(pub Account);

/// An authenticated operator request.
pub struct Operator;

/// A tenant request made with the account's own auth token. API keys may use every tenant API
/// except the management of API keys: a key that leaked cannot mint itself successors, as in the
/// reference. Taken after the request authenticated.
pub struct AuthTokenOnly;

/// A refused request; a 401 also tells HTTP clients which scheme to use (`challenge`).
pub struct Unauthorized {
    error: ApiError,
    challenge: &'static str,
}

const TENANT_CHALLENGE: &str = "Basic realm=\"switchboard\"";
const OPERATOR_CHALLENGE: &str = "Bearer realm=\"switchboard\"";

impl IntoResponse for Unauthorized {
    fn into_response(self) -> Response {
        let challenge = self.error.code == Code::AuthenticationRequired;
        let mut response = self.error.into_response();
        if challenge {
            response.headers_mut().insert(
                WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static(self.challenge),
            );
        }
        response
    }
}

impl From<ApiError> for Unauthorized {
    fn from(error: ApiError) -> Self {
        Unauthorized {
            error,
            challenge: TENANT_CHALLENGE,
        }
    }
}

fn unauthorized(message: &str) -> Unauthorized {
    Unauthorized::from(ApiError::new(Code::AuthenticationRequired, message))
}

fn operator_unauthorized(message: &str) -> Unauthorized {
    Unauthorized {
        error: ApiError::new(Code::AuthenticationRequired, message),
        challenge: OPERATOR_CHALLENGE,
    }
}

fn basic_credentials(parts: &Parts) -> Option<(String, String)> {
    let header = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = header.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// The token of an `Authorization: Bearer` header, if the request carries one.
pub(crate) fn bearer_token(headers: &axum::http::HeaderMap) -> Option<&str> {
    let header = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = header.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

impl FromRequestParts<AppState> for Tenant {
    type Rejection = Unauthorized;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Some((sid, token)) = basic_credentials(parts) else {
            return Err(unauthorized(
                "Authentication required: send HTTP Basic credentials AccountSid:AuthToken (or ApiKeySid:Secret)",
            ));
        };
        match state
            .accounts
            .authenticate(&sid, &token)
            .await
            .map_err(ApiError::from)?
        {
            Some(account) => {
                // A write takes its place among the account's writes in progress.
                if let Some(ticket) = parts.extensions.get::<WriteTicket>() {
                    ticket.admit(&account.sid)?;
                }
                Ok(Tenant(account))
            }
            None => Err(unauthorized(
                "Authentication failed: the AccountSid and AuthToken (or ApiKeySid and Secret) are wrong, the key was deleted, or the account is suspended",
            )),
        }
    }
}

impl FromRequestParts<AppState> for AuthTokenOnly {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, Self::Rejection> {
        match basic_credentials(parts) {
            Some((sid, _)) if crate::sid::is_sid("SK", &sid) => Err(ApiError::new(
                Code::ApiKeyNotAllowed,
                "API keys cannot create, rename or delete API keys: use AccountSid:AuthToken",
            )),
            _ => Ok(AuthTokenOnly),
        }
    }
}

impl FromRequestParts<AppState> for Operator {
    type Rejection = Unauthorized;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Some(token) = bearer_token(&parts.headers) else {
            return Err(operator_unauthorized(
                "Operator authentication required: send `Authorization: Bearer <admin token>`",
            ));
        };
        if bool::from(token.as_bytes().ct_eq(state.admin_token.as_bytes())) {
            Ok(Operator)
        } else {
            Err(operator_unauthorized(
                "Operator authentication failed: the admin token is wrong",
            ))
        }
    }
}
