//! What the resource APIs share: the authenticated caller with the base URL links use, query
//! pairs, list envelopes with absolute page URLs, and the checks of common form parameters.

use axum::Json;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::FormPairs;
use super::auth::Tenant;
use super::error::{ApiError, ApiResult};
use crate::app::AppState;

/// An authenticated tenant request, with the absolute base URL its answers' links use.
pub struct Caller {
    pub account_sid: String,
    pub base: String,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let Tenant(account) = Tenant::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        Ok(Caller {
            account_sid: account.sid,
            base: base_url(&parts.headers),
        })
    }
}

/// The scheme and host clients reached us at, for the absolute URLs the reference's SDKs follow.
pub fn base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let scheme = headers
        .get("x-forwarded-proto")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("http");
    format!("{scheme}://{host}")
}

/// Query parameters as name/value pairs (list filters may repeat, e.g. `AssignmentStatus`).
pub struct QueryPairs(pub FormPairs);

impl<S: Send + Sync> FromRequestParts<S> for QueryPairs {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or("");
        serde_urlencoded::from_str::<Vec<(String, String)>>(query)
            .map(|pairs| QueryPairs(FormPairs(pairs)))
            .map_err(|e| ApiError::invalid(format!("the query string is not valid: {e}")))
    }
}

/// Cuts a page out of `items` and wraps it in the reference's envelope with absolute URLs that
/// keep the request's filters.
pub fn envelope(
    base: &str,
    path: &str,
    key: &str,
    query: &FormPairs,
    items: Vec<Value>,
) -> ApiResult<Response> {
    rendered_envelope(base, path, key, query, items, |item| item)
}

/// The page a list request asks for: `PageSize` (1 to 1000, 50 by default) and `Page` (from 0).
#[derive(Debug, Clone, Copy)]
pub struct PageRequest {
    pub size: usize,
    pub page: usize,
}

impl PageRequest {
    pub fn of(query: &FormPairs) -> ApiResult<PageRequest> {
        let size = match query.get("PageSize") {
            Some(text) => text
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=1000).contains(n))
                .ok_or_else(|| {
                    ApiError::invalid(format!("PageSize must be 1 to 1000, not {text:?}"))
                })?,
            None => 50,
        };
        let page = match query.get("Page") {
            Some(text) => text.parse::<usize>().map_err(|_| {
                ApiError::invalid(format!("Page must be a whole number, not {text:?}"))
            })?,
            None => 0,
        };
        Ok(PageRequest { size, page })
    }

    /// How many items come before the page.
    pub fn offset(&self) -> usize {
        self.page.saturating_mul(self.size)
    }
}

/// [`envelope`] for items rendered only once the page is cut: a long list costs one rendering per
/// item on the page, not per item that matched.
pub fn rendered_envelope<T>(
    base: &str,
    path: &str,
    key: &str,
    query: &FormPairs,
    items: Vec<T>,
    render: impl FnMut(T) -> Value,
) -> ApiResult<Response> {
    let request = PageRequest::of(query)?;
    let total = items.len();
    let start = request.offset();
    let items: Vec<Value> = items
        .into_iter()
        .skip(start)
        .take(request.size)
        .map(render)
        .collect();
    let more = start + items.len() < total;
    Ok(page_envelope_of(
        base, path, key, query, request, items, more,
    ))
}

/// The reference's envelope around a page already cut (by the database, say), with absolute URLs
/// that keep the request's filters; `more` says whether a next page exists.
pub fn page_envelope_of(
    base: &str,
    path: &str,
    key: &str,
    query: &FormPairs,
    request: PageRequest,
    items: Vec<Value>,
    more: bool,
) -> Response {
    let PageRequest { size, page } = request;
    let filters: Vec<(String, String)> = query
        .0
        .iter()
        .filter(|(k, _)| k != "PageSize" && k != "Page" && k != "PageToken")
        .cloned()
        .collect();
    let url = |p: usize| {
        let mut pairs = filters.clone();
        pairs.push(("PageSize".into(), size.to_string()));
        pairs.push(("Page".into(), p.to_string()));
        let query = serde_urlencoded::to_string(&pairs).unwrap_or_default();
        format!("{base}{path}?{query}")
    };
    Json(json!({
        key: items,
        "meta": {
            "first_page_url": url(0),
            "key": key,
            "next_page_url": more.then(|| url(page + 1)),
            "page": page,
            "page_size": size,
            "previous_page_url": (page > 0).then(|| url(page - 1)),
            "url": url(page),
        }
    }))
    .into_response()
}

pub fn boolean(form: &FormPairs, name: &str) -> ApiResult<Option<bool>> {
    form.get(name)
        .map(|v| match v.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Ok(true),
            "false" | "0" | "no" => Ok(false),
            _ => Err(ApiError::invalid(format!(
                "{name} must be true or false, not {v:?}"
            ))),
        })
        .transpose()
}

pub fn integer(
    form: &FormPairs,
    name: &str,
    range: std::ops::RangeInclusive<i64>,
) -> ApiResult<Option<i64>> {
    form.get(name)
        .map(|v| {
            v.trim()
                .parse::<i64>()
                .ok()
                .filter(|n| range.contains(n))
                .ok_or_else(|| {
                    ApiError::invalid(format!(
                        "{name} must be a whole number from {} to {}, not {v:?}",
                        range.start(),
                        range.end()
                    ))
                })
        })
        .transpose()
}

pub fn friendly_name(form: &FormPairs, required: bool) -> ApiResult<Option<String>> {
    match form.get("FriendlyName") {
        Some(name) if name.trim().is_empty() => {
            Err(ApiError::invalid("FriendlyName must not be empty"))
        }
        Some(name) if name.chars().count() > 64 => Err(ApiError::invalid(
            "FriendlyName must be at most 64 characters",
        )),
        Some(name) => Ok(Some(name.to_string())),
        None if required => Err(ApiError::invalid("FriendlyName is required")),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body(response: Response) -> Value {
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        serde_json::from_slice(&bytes).expect("JSON")
    }

    #[tokio::test]
    async fn only_the_page_is_rendered_and_the_links_keep_the_filters() {
        let query = FormPairs(vec![
            ("Status".into(), "open".into()),
            ("PageSize".into(), "2".into()),
            ("Page".into(), "1".into()),
        ]);
        let mut rendered = Vec::new();
        let response = rendered_envelope(
            "http://host",
            "/v1/Things",
            "things",
            &query,
            (1..=5).collect(),
            |n: i32| {
                rendered.push(n);
                json!({ "n": n })
            },
        )
        .expect("a page");
        assert_eq!(rendered, vec![3, 4], "the items of page 1 alone");
        let page = body(response).await;
        assert_eq!(page["things"], json!([{ "n": 3 }, { "n": 4 }]));
        assert_eq!(
            page["meta"]["next_page_url"],
            "http://host/v1/Things?Status=open&PageSize=2&Page=2"
        );
        assert_eq!(
            page["meta"]["previous_page_url"],
            "http://host/v1/Things?Status=open&PageSize=2&Page=0"
        );

        let last = FormPairs(vec![
            ("PageSize".into(), "2".into()),
            ("Page".into(), "2".into()),
        ]);
        let page = body(
            rendered_envelope(
                "http://host",
                "/v1/Things",
                "things",
                &last,
                (1..=5).collect(),
                |n: i32| json!(n),
            )
            .expect("a page"),
        )
        .await;
        assert_eq!(page["things"], json!([5]));
        assert_eq!(page["meta"]["next_page_url"], Value::Null);
    }
}
