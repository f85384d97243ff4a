//! Access tokens in the reference platform's shape, so tenants can mint them with its helper
//! libraries: a JWT signed HS256 with an API key's secret, header `cty: twilio-fpa;v=1`, `iss` the
//! key's sid, `sub` the account's sid, and `grants` naming the identity and what it may do.
//!
//! Verification happens in two steps because the key that signs a token is named inside it: the
//! unverified claims name the key, the key's secret then verifies the signature. Expiry is checked
//! against the host's [`Clock`](crate::clock::Clock), not the system clock, so a manual clock governs
//! tokens as it governs every other timer.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::api::error::{ApiError, Code};

/// The content type the reference platform's SDKs require of an access token.
pub const CONTENT_TYPE: &str = "twilio-fpa;v=1";

/// The longest a token may live, as on the reference platform.
pub const MAX_LIFETIME_SECONDS: i64 = 24 * 3600;

/// The payload of an access token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub jti: String,
    /// The API key's sid (`SK...`).
    pub iss: String,
    /// The account's sid (`AC...`).
    pub sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    pub exp: i64,
    #[serde(default)]
    pub grants: Grants,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Grants {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voice: Option<VoiceGrant>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct VoiceGrant {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incoming: Option<IncomingGrant>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outgoing: Option<OutgoingGrant>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct IncomingGrant {
    #[serde(default)]
    pub allow: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct OutgoingGrant {
    pub application_sid: String,
    /// Parameters passed to the application on every call the client places.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub params: serde_json::Map<String, serde_json::Value>,
}

impl Claims {
    pub fn identity(&self) -> Option<&str> {
        self.grants.identity.as_deref()
    }

    pub fn allows_incoming(&self) -> bool {
        self.grants
            .voice
            .as_ref()
            .and_then(|voice| voice.incoming.as_ref())
            .is_some_and(|incoming| incoming.allow)
    }

    pub fn outgoing(&self) -> Option<&OutgoingGrant> {
        self.grants
            .voice
            .as_ref()
            .and_then(|voice| voice.outgoing.as_ref())
    }
}

/// What a token is minted for.
#[derive(Debug, Clone)]
pub struct TokenSpec {
    pub account_sid: String,
    pub key_sid: String,
    pub key_secret: String,
    pub identity: String,
    pub incoming: bool,
    pub outgoing_application_sid: Option<String>,
    /// Unix seconds the token is issued at.
    pub issued_at: i64,
    pub ttl_seconds: i64,
}

/// Mints a token, as a tenant's backend (or `switchboard token`) would.
pub fn mint(spec: &TokenSpec) -> anyhow::Result<String> {
    let claims = Claims {
        jti: format!("{}-{}", spec.key_sid, spec.issued_at),
        iss: spec.key_sid.clone(),
        sub: spec.account_sid.clone(),
        iat: Some(spec.issued_at),
        nbf: Some(spec.issued_at),
        exp: spec.issued_at.saturating_add(spec.ttl_seconds),
        grants: Grants {
            identity: Some(spec.identity.clone()),
            voice: Some(VoiceGrant {
                incoming: spec.incoming.then_some(IncomingGrant { allow: true }),
                outgoing: spec
                    .outgoing_application_sid
                    .clone()
                    .map(|application_sid| OutgoingGrant {
                        application_sid,
                        params: serde_json::Map::new(),
                    }),
            }),
        },
    };
    let mut header = Header::new(Algorithm::HS256);
    header.typ = Some("JWT".into());
    header.cty = Some(CONTENT_TYPE.into());
    Ok(jsonwebtoken::encode(
        &header,
        &claims,
        &EncodingKey::from_secret(spec.key_secret.as_bytes()),
    )?)
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(Code::InvalidAccessToken, message)
}

/// Reads a token's claims without verifying them, to learn which key signed it. Nothing read here
/// is trusted until [`verify`] has checked the signature.
pub fn unverified_claims(token: &str) -> Result<Claims, ApiError> {
    let header = jsonwebtoken::decode_header(token)
        .map_err(|_| invalid("The token is not a JWT (three base64url parts separated by dots)"))?;
    if header.alg != Algorithm::HS256 {
        return Err(invalid(format!(
            "The token is signed with {:?}; access tokens are signed HS256 with an API key's secret",
            header.alg
        )));
    }
    if header.typ.as_deref().is_some_and(|typ| typ != "JWT") {
        return Err(invalid("The token's header typ must be JWT"));
    }
    if header.cty.as_deref() != Some(CONTENT_TYPE) {
        return Err(invalid(format!(
            "The token's header must carry cty \"{CONTENT_TYPE}\", as access tokens do"
        )));
    }
    jsonwebtoken::dangerous::insecure_decode_claims::<Claims>(token).map_err(|error| {
        invalid(format!(
            "The token's claims are not an access token's (jti, iss, sub, exp, grants): {error}"
        ))
    })
}

/// Verifies the signature with the key's secret, then the token's time window against `now_s`.
pub fn verify(token: &str, secret: &str, now_s: i64, leeway_s: i64) -> Result<Claims, ApiError> {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let data = jsonwebtoken::decode::<Claims>(
        token,
        &DecodingKey::from_secret(secret.as_bytes()),
        &validation,
    )
    .map_err(|error| match error.kind() {
        jsonwebtoken::errors::ErrorKind::InvalidSignature => invalid(
            "The token's signature does not verify with the secret of the API key named by its iss",
        ),
        _ => invalid(format!("The token could not be read: {error}")),
    })?;
    let claims = data.claims;
    if claims.exp.saturating_add(leeway_s) < now_s {
        return Err(ApiError::new(
            Code::AccessTokenExpired,
            format!(
                "The token expired {} seconds ago",
                now_s.saturating_sub(claims.exp)
            ),
        ));
    }
    if let Some(nbf) = claims.nbf
        && nbf.saturating_sub(leeway_s) > now_s
    {
        return Err(ApiError::new(
            Code::AccessTokenExpired,
            format!(
                "The token is not valid for another {} seconds (nbf)",
                nbf.saturating_sub(now_s)
            ),
        ));
    }
    let issued = claims.nbf.or(claims.iat).unwrap_or(now_s).min(now_s);
    if claims.exp.saturating_sub(issued) > MAX_LIFETIME_SECONDS.saturating_add(leeway_s) {
        return Err(invalid(
            "The token lives longer than 24 hours; mint tokens with a ttl of at most 86400 seconds",
        ));
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(now: i64) -> TokenSpec {
        TokenSpec {
            account_sid: format!("AC{}", "1".repeat(32)),
            key_sid: format!("SK{}", "2".repeat(32)),
            key_secret: "s3cret".into(),
            identity: "alice".into(),
            incoming: true,
            outgoing_application_sid: Some(format!("AP{}", "3".repeat(32))),
            issued_at: now,
            ttl_seconds: 3600,
        }
    }

    #[test]
    fn minted_tokens_have_the_reference_shape_and_verify() {
        let now = 1_700_000_000;
        let token = mint(&spec(now)).expect("minted");
        let header = jsonwebtoken::decode_header(&token).expect("header");
        assert_eq!(header.cty.as_deref(), Some(CONTENT_TYPE));
        assert_eq!(header.typ.as_deref(), Some("JWT"));
        let unverified = unverified_claims(&token).expect("claims");
        assert!(unverified.iss.starts_with("SK"));
        let claims = verify(&token, "s3cret", now + 10, 30).expect("verifies");
        assert_eq!(claims.identity(), Some("alice"));
        assert!(claims.allows_incoming());
        assert!(claims.outgoing().is_some());
        assert_eq!(claims.jti, format!("{}-{now}", claims.iss));
    }

    #[test]
    fn wrong_secret_expiry_and_lifetime_are_refused_with_their_codes() {
        let now = 1_700_000_000;
        let token = mint(&spec(now)).expect("minted");
        let wrong = verify(&token, "other", now, 30).expect_err("wrong secret");
        assert_eq!(wrong.code, Code::InvalidAccessToken);
        let expired = verify(&token, "s3cret", now + 3600 + 31, 30).expect_err("expired");
        assert_eq!(expired.code, Code::AccessTokenExpired);
        assert!(verify(&token, "s3cret", now + 3600 + 29, 30).is_ok());
        let early = verify(&token, "s3cret", now - 31, 30).expect_err("not yet valid");
        assert_eq!(early.code, Code::AccessTokenExpired);
        let long = mint(&TokenSpec {
            ttl_seconds: MAX_LIFETIME_SECONDS + 3600,
            ..spec(now)
        })
        .expect("minted");
        assert_eq!(
            verify(&long, "s3cret", now, 30).expect_err("too long").code,
            Code::InvalidAccessToken
        );
    }

    #[test]
    fn tokens_without_the_content_type_or_not_jwts_are_refused() {
        assert!(unverified_claims("not-a-token").is_err());
        let claims = Claims {
            jti: "x".into(),
            iss: "SKx".into(),
            sub: "ACx".into(),
            iat: None,
            nbf: None,
            exp: 2_000_000_000,
            grants: Grants::default(),
        };
        let plain = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(b"k"),
        )
        .expect("encoded");
        let error = unverified_claims(&plain).expect_err("no cty");
        assert!(error.message.contains("cty"), "{}", error.message);
    }
}
