//! Applications and incoming phone numbers: where a call's instructions come from.
//!
//! Both carry the same voice settings (primary URI, fallback URI, status callback). A number either
//! points at an application or carries the settings itself, as on the reference platform.

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::api::error::{ApiError, ApiResult};
use crate::modules::ModuleUri;
use crate::sid::new_sid;
use crate::store::{Db, now_ms, rfc2822};

/// `GET` or `POST`: how an HTTP application is requested.
pub fn check_method(field: &str, value: &str) -> ApiResult<String> {
    match value.to_ascii_uppercase().as_str() {
        "GET" => Ok("GET".into()),
        "POST" => Ok("POST".into()),
        _ => Err(ApiError::invalid(format!(
            "{field} must be GET or POST, not {value:?}"
        ))),
    }
}

/// An absolute http(s) URL with a host.
fn is_http_url(value: &str) -> bool {
    reqwest::Url::parse(value)
        .is_ok_and(|url| matches!(url.scheme(), "http" | "https") && url.has_host())
}

/// A handler URI as users may give it: `module:NAME`, `module:NAME@VERSION` or an http(s) URL.
pub fn check_uri(field: &str, value: &str) -> ApiResult<()> {
    if let Some(parsed) = ModuleUri::parse(value) {
        return parsed
            .map(|_| ())
            .map_err(|message| ApiError::invalid(format!("{field}: {message}")));
    }
    if is_http_url(value) {
        Ok(())
    } else {
        Err(ApiError::invalid(format!(
            "{field} {value:?} is not a handler URI: use module:NAME, module:NAME@VERSION or an http(s) URL"
        )))
    }
}

/// A status callback target: only HTTP(S) URLs receive status callbacks.
pub fn check_callback_url(field: &str, value: &str) -> ApiResult<()> {
    if is_http_url(value) {
        Ok(())
    } else {
        Err(ApiError::invalid(format!(
            "{field} {value:?} is not an http(s) URL"
        )))
    }
}

/// The voice settings shared by applications and numbers.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct VoiceSettings {
    pub voice_url: Option<String>,
    pub voice_method: String,
    pub voice_fallback_url: Option<String>,
    pub voice_fallback_method: String,
    pub status_callback: Option<String>,
    pub status_callback_method: String,
}

/// Changes to voice settings; `Some("")` clears a URL.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct VoiceParams {
    pub voice_url: Option<String>,
    pub voice_method: Option<String>,
    pub voice_fallback_url: Option<String>,
    pub voice_fallback_method: Option<String>,
    pub status_callback: Option<String>,
    pub status_callback_method: Option<String>,
}

impl VoiceSettings {
    fn defaults() -> Self {
        VoiceSettings {
            voice_method: "POST".into(),
            voice_fallback_method: "POST".into(),
            status_callback_method: "POST".into(),
            ..Default::default()
        }
    }

    /// Applies `params` after checking every value; nothing changes if any is invalid.
    fn apply(&self, params: &VoiceParams) -> ApiResult<VoiceSettings> {
        let mut next = self.clone();
        let url =
            |field: &str, value: &Option<String>, current: &Option<String>, callback: bool| {
                match value.as_deref() {
                    None => Ok(current.clone()),
                    Some("") => Ok(None),
                    Some(text) => {
                        if callback {
                            check_callback_url(field, text)?;
                        } else {
                            check_uri(field, text)?;
                        }
                        Ok::<_, ApiError>(Some(text.to_string()))
                    }
                }
            };
        next.voice_url = url("VoiceUrl", &params.voice_url, &self.voice_url, false)?;
        next.voice_fallback_url = url(
            "VoiceFallbackUrl",
            &params.voice_fallback_url,
            &self.voice_fallback_url,
            false,
        )?;
        next.status_callback = url(
            "StatusCallback",
            &params.status_callback,
            &self.status_callback,
            true,
        )?;
        if let Some(method) = &params.voice_method {
            next.voice_method = check_method("VoiceMethod", method)?;
        }
        if let Some(method) = &params.voice_fallback_method {
            next.voice_fallback_method = check_method("VoiceFallbackMethod", method)?;
        }
        if let Some(method) = &params.status_callback_method {
            next.status_callback_method = check_method("StatusCallbackMethod", method)?;
        }
        Ok(next)
    }

    fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
        Ok(VoiceSettings {
            voice_url: row.try_get("voice_url")?,
            voice_method: row.try_get("voice_method")?,
            voice_fallback_url: row.try_get("voice_fallback_url")?,
            voice_fallback_method: row.try_get("voice_fallback_method")?,
            status_callback: row.try_get("status_callback")?,
            status_callback_method: row.try_get("status_callback_method")?,
        })
    }
}

/// A voice application (`AP...`), wire-compatible with the reference `Application` resource.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Application {
    pub sid: String,
    pub account_sid: String,
    pub friendly_name: String,
    #[serde(flatten)]
    pub voice: VoiceSettings,
    pub api_version: &'static str,
    pub voice_caller_id_lookup: bool,
    pub date_created: String,
    pub date_updated: String,
    pub uri: String,
}

fn application_from_row(row: &AnyRow) -> Result<Application, sqlx::Error> {
    let sid: String = row.try_get("sid")?;
    let account_sid: String = row.try_get("account_sid")?;
    Ok(Application {
        uri: format!("/2010-04-01/Accounts/{account_sid}/Applications/{sid}.json"),
        sid,
        account_sid,
        friendly_name: row.try_get("friendly_name")?,
        voice: VoiceSettings::from_row(row)?,
        api_version: "2010-04-01",
        voice_caller_id_lookup: false,
        date_created: rfc2822(row.try_get("date_created")?),
        date_updated: rfc2822(row.try_get("date_updated")?),
    })
}

/// Checks a fallback has a primary beside it (21405 on the reference platform).
fn check_fallback_has_primary(voice: &VoiceSettings) -> ApiResult<()> {
    if voice.voice_fallback_url.is_some() && voice.voice_url.is_none() {
        return Err(ApiError::invalid(
            "VoiceFallbackUrl needs a VoiceUrl: set VoiceUrl too",
        ));
    }
    Ok(())
}

fn check_friendly_name(name: &str) -> ApiResult<()> {
    if name.chars().count() > 64 {
        return Err(ApiError::invalid(
            "FriendlyName must be at most 64 characters",
        ));
    }
    Ok(())
}

/// Applications of one account.
pub struct Applications<'a> {
    pub db: &'a Db,
    pub account_sid: &'a str,
}

impl Applications<'_> {
    pub async fn create(
        &self,
        friendly_name: Option<&str>,
        params: &VoiceParams,
    ) -> ApiResult<Application> {
        let voice = VoiceSettings::defaults().apply(params)?;
        check_fallback_has_primary(&voice)?;
        let sid = new_sid("AP");
        let friendly_name = friendly_name.unwrap_or(&sid).to_string();
        check_friendly_name(&friendly_name)?;
        let now = now_ms();
        sqlx::query(
            "INSERT INTO applications (sid, account_sid, friendly_name, voice_url, voice_method, voice_fallback_url, voice_fallback_method, status_callback, status_callback_method, date_created, date_updated)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)",
        )
        .bind(&sid)
        .bind(self.account_sid)
        .bind(&friendly_name)
        .bind(voice.voice_url.clone())
        .bind(&voice.voice_method)
        .bind(voice.voice_fallback_url.clone())
        .bind(&voice.voice_fallback_method)
        .bind(voice.status_callback.clone())
        .bind(&voice.status_callback_method)
        .bind(now)
        .execute(self.db.pool())
        .await?;
        self.get(&sid)
            .await?
            .ok_or_else(|| ApiError::not_found(&sid))
    }

    pub async fn get(&self, sid: &str) -> Result<Option<Application>, sqlx::Error> {
        sqlx::query("SELECT * FROM applications WHERE account_sid = $1 AND sid = $2")
            .bind(self.account_sid)
            .bind(sid)
            .fetch_optional(self.db.pool())
            .await?
            .as_ref()
            .map(application_from_row)
            .transpose()
    }

    pub async fn list(&self, friendly_name: Option<&str>) -> Result<Vec<Application>, sqlx::Error> {
        sqlx::query(
            "SELECT * FROM applications WHERE account_sid = $1 AND ($2 IS NULL OR friendly_name = $2) ORDER BY date_created, sid",
        )
        .bind(self.account_sid)
        .bind(friendly_name)
        .fetch_all(self.db.pool())
        .await?
        .iter()
        .map(application_from_row)
        .collect()
    }

    pub async fn update(
        &self,
        sid: &str,
        friendly_name: Option<&str>,
        params: &VoiceParams,
    ) -> ApiResult<Application> {
        let current = self
            .get(sid)
            .await?
            .ok_or_else(|| ApiError::not_found(sid))?;
        let voice = current.voice.apply(params)?;
        check_fallback_has_primary(&voice)?;
        let friendly_name = friendly_name.unwrap_or(&current.friendly_name);
        check_friendly_name(friendly_name)?;
        sqlx::query(
            "UPDATE applications SET friendly_name = $3, voice_url = $4, voice_method = $5, voice_fallback_url = $6, voice_fallback_method = $7, status_callback = $8, status_callback_method = $9, date_updated = $10
             WHERE account_sid = $1 AND sid = $2",
        )
        .bind(self.account_sid)
        .bind(sid)
        .bind(friendly_name)
        .bind(voice.voice_url.clone())
        .bind(&voice.voice_method)
        .bind(voice.voice_fallback_url.clone())
        .bind(&voice.voice_fallback_method)
        .bind(voice.status_callback.clone())
        .bind(&voice.status_callback_method)
        .bind(now_ms())
        .execute(self.db.pool())
        .await?;
        self.get(sid).await?.ok_or_else(|| ApiError::not_found(sid))
    }

    /// Deletes the application; numbers that pointed at it keep their number but lose the link.
    pub async fn delete(&self, sid: &str) -> Result<bool, sqlx::Error> {
        let mut tx = self.db.pool().begin().await?;
        let gone = sqlx::query("DELETE FROM applications WHERE account_sid = $1 AND sid = $2")
            .bind(self.account_sid)
            .bind(sid)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query(
            "UPDATE incoming_phone_numbers SET voice_application_sid = NULL WHERE account_sid = $1 AND voice_application_sid = $2",
        )
        .bind(self.account_sid)
        .bind(sid)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(gone > 0)
    }
}

/// A phone number owned by an account (`PN...`), wire-compatible with `IncomingPhoneNumber`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PhoneNumber {
    pub sid: String,
    pub account_sid: String,
    pub phone_number: String,
    pub friendly_name: String,
    pub voice_application_sid: Option<String>,
    #[serde(flatten)]
    pub voice: VoiceSettings,
    pub api_version: &'static str,
    #[schema(value_type = Object)]
    pub capabilities: serde_json::Value,
    pub status: &'static str,
    pub date_created: String,
    pub date_updated: String,
    pub uri: String,
}

fn number_from_row(row: &AnyRow) -> Result<PhoneNumber, sqlx::Error> {
    let sid: String = row.try_get("sid")?;
    let account_sid: String = row.try_get("account_sid")?;
    Ok(PhoneNumber {
        uri: format!("/2010-04-01/Accounts/{account_sid}/IncomingPhoneNumbers/{sid}.json"),
        sid,
        account_sid,
        phone_number: row.try_get("phone_number")?,
        friendly_name: row.try_get("friendly_name")?,
        voice_application_sid: row.try_get("voice_application_sid")?,
        voice: VoiceSettings::from_row(row)?,
        api_version: "2010-04-01",
        capabilities: serde_json::json!({"voice": true, "sms": false, "mms": false, "fax": false}),
        status: "in-use",
        date_created: rfc2822(row.try_get("date_created")?),
        date_updated: rfc2822(row.try_get("date_updated")?),
    })
}

/// E.164: a plus, a non-zero digit, at most 15 digits in all.
pub fn is_e164(text: &str) -> bool {
    let Some(digits) = text.strip_prefix('+') else {
        return false;
    };
    (2..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0')
}

/// Phone numbers of one account.
pub struct PhoneNumbers<'a> {
    pub db: &'a Db,
    pub account_sid: &'a str,
}

impl PhoneNumbers<'_> {
    async fn check_application(&self, sid: Option<&str>) -> ApiResult<()> {
        if let Some(sid) = sid.filter(|s| !s.is_empty()) {
            let apps = Applications {
                db: self.db,
                account_sid: self.account_sid,
            };
            if apps.get(sid).await?.is_none() {
                return Err(ApiError::invalid(format!(
                    "VoiceApplicationSid {sid} is not an application of this account"
                )));
            }
        }
        Ok(())
    }

    pub async fn create(
        &self,
        phone_number: &str,
        friendly_name: Option<&str>,
        application_sid: Option<&str>,
        params: &VoiceParams,
    ) -> ApiResult<PhoneNumber> {
        if !is_e164(phone_number) {
            // A `+` sent unencoded in a form body arrives as a space.
            let hint = if phone_number.starts_with(' ') {
                " (a + in a form body must be sent as %2B, e.g. curl --data-urlencode)"
            } else {
                ""
            };
            return Err(ApiError::invalid(format!(
                "PhoneNumber {phone_number:?} is not in E.164 format, e.g. +14155550100{hint}"
            )));
        }
        let voice = VoiceSettings::defaults().apply(params)?;
        check_fallback_has_primary(&voice)?;
        self.check_application(application_sid).await?;
        let friendly_name = friendly_name.unwrap_or(phone_number);
        check_friendly_name(friendly_name)?;
        let sid = new_sid("PN");
        let now = now_ms();
        let inserted = sqlx::query(
            "INSERT INTO incoming_phone_numbers (sid, account_sid, phone_number, friendly_name, voice_application_sid, voice_url, voice_method, voice_fallback_url, voice_fallback_method, status_callback, status_callback_method, date_created, date_updated)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12)",
        )
        .bind(&sid)
        .bind(self.account_sid)
        .bind(phone_number)
        .bind(friendly_name)
        .bind(application_sid.filter(|s| !s.is_empty()))
        .bind(voice.voice_url.clone())
        .bind(&voice.voice_method)
        .bind(voice.voice_fallback_url.clone())
        .bind(&voice.voice_fallback_method)
        .bind(voice.status_callback.clone())
        .bind(&voice.status_callback_method)
        .bind(now)
        .execute(self.db.pool())
        .await;
        match inserted {
            Ok(_) => {}
            Err(sqlx::Error::Database(error)) if error.is_unique_violation() => {
                return Err(ApiError::invalid(format!(
                    "PhoneNumber {phone_number} is not available: it is already in use"
                )));
            }
            Err(error) => return Err(error.into()),
        }
        self.get(&sid)
            .await?
            .ok_or_else(|| ApiError::not_found(&sid))
    }

    pub async fn get(&self, sid: &str) -> Result<Option<PhoneNumber>, sqlx::Error> {
        sqlx::query("SELECT * FROM incoming_phone_numbers WHERE account_sid = $1 AND sid = $2")
            .bind(self.account_sid)
            .bind(sid)
            .fetch_optional(self.db.pool())
            .await?
            .as_ref()
            .map(number_from_row)
            .transpose()
    }

    pub async fn list(&self, phone_number: Option<&str>) -> Result<Vec<PhoneNumber>, sqlx::Error> {
        sqlx::query(
            "SELECT * FROM incoming_phone_numbers WHERE account_sid = $1 AND ($2 IS NULL OR phone_number = $2) ORDER BY date_created, sid",
        )
        .bind(self.account_sid)
        .bind(phone_number)
        .fetch_all(self.db.pool())
        .await?
        .iter()
        .map(number_from_row)
        .collect()
    }

    pub async fn update(
        &self,
        sid: &str,
        friendly_name: Option<&str>,
        application_sid: Option<&str>,
        params: &VoiceParams,
    ) -> ApiResult<PhoneNumber> {
        let current = self
            .get(sid)
            .await?
            .ok_or_else(|| ApiError::not_found(sid))?;
        let voice = current.voice.apply(params)?;
        check_fallback_has_primary(&voice)?;
        self.check_application(application_sid).await?;
        let application_sid = match application_sid {
            None => current.voice_application_sid.clone(),
            Some("") => None,
            Some(sid) => Some(sid.to_string()),
        };
        let friendly_name = friendly_name.unwrap_or(&current.friendly_name);
        check_friendly_name(friendly_name)?;
        sqlx::query(
            "UPDATE incoming_phone_numbers SET friendly_name = $3, voice_application_sid = $4, voice_url = $5, voice_method = $6, voice_fallback_url = $7, voice_fallback_method = $8, status_callback = $9, status_callback_method = $10, date_updated = $11
             WHERE account_sid = $1 AND sid = $2",
        )
        .bind(self.account_sid)
        .bind(sid)
        .bind(friendly_name)
        .bind(application_sid)
        .bind(voice.voice_url.clone())
        .bind(&voice.voice_method)
        .bind(voice.voice_fallback_url.clone())
        .bind(&voice.voice_fallback_method)
        .bind(voice.status_callback.clone())
        .bind(&voice.status_callback_method)
        .bind(now_ms())
        .execute(self.db.pool())
        .await?;
        self.get(sid).await?.ok_or_else(|| ApiError::not_found(sid))
    }

    pub async fn delete(&self, sid: &str) -> Result<bool, sqlx::Error> {
        Ok(
            sqlx::query("DELETE FROM incoming_phone_numbers WHERE account_sid = $1 AND sid = $2")
                .bind(self.account_sid)
                .bind(sid)
                .execute(self.db.pool())
                .await?
                .rows_affected()
                > 0,
        )
    }
}

/// Where an inbound call to a number goes: the number's own settings, or its application's.
#[derive(Debug, Clone)]
pub struct Routing {
    pub account_sid: String,
    pub phone_number_sid: String,
    pub application_sid: Option<String>,
    pub voice: VoiceSettings,
}

/// Finds who owns `phone_number` and how its calls are handled.
pub async fn route_number(db: &Db, phone_number: &str) -> Result<Option<Routing>, sqlx::Error> {
    let Some(row) = sqlx::query(
        "SELECT n.sid AS number_sid, n.account_sid, n.voice_application_sid, n.voice_url, n.voice_method, n.voice_fallback_url, n.voice_fallback_method, n.status_callback, n.status_callback_method,
                a.sid AS app_sid, a.voice_url AS app_voice_url, a.voice_method AS app_voice_method, a.voice_fallback_url AS app_voice_fallback_url,
                a.voice_fallback_method AS app_voice_fallback_method, a.status_callback AS app_status_callback, a.status_callback_method AS app_status_callback_method
         FROM incoming_phone_numbers n LEFT JOIN applications a ON a.sid = n.voice_application_sid AND a.account_sid = n.account_sid
         WHERE n.phone_number = $1",
    )
    .bind(phone_number)
    .fetch_optional(db.pool())
    .await?
    else {
        return Ok(None);
    };
    let app_sid: Option<String> = row.try_get("app_sid")?;
    let voice = if app_sid.is_some() {
        VoiceSettings {
            voice_url: row.try_get("app_voice_url")?,
            voice_method: row.try_get("app_voice_method")?,
            voice_fallback_url: row.try_get("app_voice_fallback_url")?,
            voice_fallback_method: row.try_get("app_voice_fallback_method")?,
            status_callback: row.try_get("app_status_callback")?,
            status_callback_method: row.try_get("app_status_callback_method")?,
        }
    } else {
        VoiceSettings::from_row(&row)?
    };
    Ok(Some(Routing {
        account_sid: row.try_get("account_sid")?,
        phone_number_sid: row.try_get("number_sid")?,
        application_sid: app_sid,
        voice,
    }))
}

/// The voice settings of an application, for outbound calls placed with `ApplicationSid`.
pub async fn application_voice(
    db: &Db,
    account_sid: &str,
    application_sid: &str,
) -> Result<Option<VoiceSettings>, sqlx::Error> {
    Ok(Applications { db, account_sid }
        .get(application_sid)
        .await?
        .map(|app| app.voice))
}
