"""A small TaskRouter REST client written with only the Python standard library.

It talks to the API the way the official twilio-python SDK (9.x) does, so that a server which
works with this client works with twilio-python unchanged:

* URLs are ``{base_url}/v1/Workspaces/...`` (``Domain.absolute_url`` joins with one ``/``).
* HTTP Basic auth ``AccountSid:AuthToken``, sent with every request.
* Create/update are ``POST`` with an ``application/x-www-form-urlencoded`` body of PascalCase
  keys; list values become repeated keys (``serialize.map`` + requests), dicts are JSON-encoded
  (``serialize.object``), booleans are ``true``/``false`` (``serialize.boolean_to_string``) and
  ``None`` values are dropped (``values.unset`` / ``copy_non_none_values``).
* ``Accept: application/json`` on every request except ``DELETE`` (twilio-python removes it).
* Optimistic concurrency with an ``If-Match`` request header; the version comes back as ``ETag``.
* Lists are read like ``Page.load_page``: the records are ``payload[payload["meta"]["key"]]`` and
  only status 200 is a page. ``stream`` follows ``meta.next_page_url`` as an absolute URL, GETting
  it unchanged, like ``Page.next_page``.
* Errors: the reference body ``{"code", "message", "more_info", "status"}`` becomes a
  :class:`TwilioRestError` carrying ``status``, ``code``, ``message`` and ``more_info``, like
  ``Version.exception`` builds ``TwilioRestException``.
* Dates are parsed exactly as ``deserialize.iso8601_datetime`` does: ``%Y-%m-%dT%H:%M:%SZ``.
"""

import base64
import datetime
import json
import platform
import re
import sys
import urllib.error
import urllib.parse
import urllib.request

__all__ = [
    "Client",
    "Response",
    "TwilioRestError",
    "WireFormatError",
    "ISO8601_FORMAT",
    "SID_PREFIXES",
    "parse_date",
    "check_sid",
    "pascal_case",
]

# twilio/base/deserialize.py: ISO8601_DATETIME_FORMAT
ISO8601_FORMAT = "%Y-%m-%dT%H:%M:%SZ"

# The reference's SID prefixes (OAI `pattern`s): two letters then 32 hex digits.
SID_PREFIXES = {
    "account": "AC",
    "workspace": "WS",
    "worker": "WK",
    "activity": "WA",
    "task_queue": "WQ",
    "workflow": "WW",
    "task": "WT",
    "reservation": "WR",
    "task_channel": "TC",
    "worker_channel": "WC",
    "event": "EV",
}

_SID = re.compile(r"^([A-Z]{2})[0-9a-fA-F]{32}$")

USER_AGENT = "switchboard-wire-test/1.0 (twilio-python-compatible; {} {}) Python/{}".format(
    platform.system(), platform.machine(), platform.python_version()
)


class TwilioRestError(Exception):
    """A non-success answer, as twilio-python's ``TwilioRestException`` reports it."""

    def __init__(self, status, method, uri, code, message, more_info=None, details=None, body=None):
        self.status = status
        self.method = method
        self.uri = uri
        self.code = code
        self.message = message
        self.more_info = more_info
        self.details = details
        self.body = body
        super().__init__(
            "HTTP {} error: {} {}: {} (code {}, more_info {})".format(
                status, method, uri, message, code, more_info
            )
        )


class WireFormatError(AssertionError):
    """The server answered in a way twilio-python could not read (or the reference forbids)."""


class Response:
    """One HTTP answer."""

    def __init__(self, method, url, status, headers, text):
        self.method = method
        self.url = url
        self.status = status
        self.headers = headers  # an email.message.Message: case-insensitive .get()
        self.text = text

    @property
    def etag(self):
        return self.headers.get("ETag")

    def json(self):
        try:
            return json.loads(self.text)
        except ValueError as error:
            raise WireFormatError(
                "{} {} answered {} with a body that is not JSON ({}): {!r}".format(
                    self.method, self.url, self.status, error, self.text[:500]
                )
            )


def pascal_case(name):
    """``friendly_name`` -> ``FriendlyName``; names already in PascalCase pass unchanged."""
    if name[:1].isupper():
        return name
    return "".join(part[:1].upper() + part[1:] for part in name.split("_"))


def _serialize(value):
    """One form value the way twilio-python's serialize helpers render it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict,)):
        return json.dumps(value)
    if isinstance(value, datetime.datetime):
        return value.strftime(ISO8601_FORMAT)
    return str(value)


def encode_params(params):
    """PascalCase name/value pairs; lists and tuples become repeated keys; ``None`` is dropped."""
    pairs = []
    for name, value in params.items():
        if value is None:
            continue
        key = pascal_case(name)
        if isinstance(value, (list, tuple)):
            for item in value:
                if item is not None:
                    pairs.append((key, _serialize(item)))
        else:
            pairs.append((key, _serialize(value)))
    return pairs


def parse_date(value):
    """Parses a date exactly as twilio-python's ``deserialize.iso8601_datetime`` does."""
    return datetime.datetime.strptime(value, ISO8601_FORMAT).replace(tzinfo=datetime.timezone.utc)


def check_sid(value, prefix):
    """Asserts ``value`` is a 34-character SID ``^XX[0-9a-fA-F]{32}$`` with ``prefix``."""
    if not isinstance(value, str):
        raise WireFormatError("expected a {} sid, got {!r}".format(prefix, value))
    match = _SID.match(value)
    if not match or match.group(1) != prefix:
        raise WireFormatError(
            "expected a sid matching ^{}[0-9a-fA-F]{{32}}$, got {!r}".format(prefix, value)
        )
    return value


class Client:
    """A TaskRouter client pointed at ``base_url`` (e.g. ``http://127.0.0.1:8080``)."""

    def __init__(self, base_url, account_sid, auth_token, timeout=30, version="v1"):
        self.base_url = base_url
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.timeout = timeout
        self.version = version
        self.last_response = None
        # No proxies: the server under test is local.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        token = base64.b64encode("{}:{}".format(account_sid, auth_token).encode("utf-8"))
        self._authorization = "Basic " + token.decode("ascii")

    # ----- URLs (twilio/base/version.py, domain.py) -----

    def absolute_url(self, path):
        """``Domain.absolute_url(Version.relative_uri(path))``."""
        relative = "{}/{}".format(self.version, path.strip("/"))
        return "{}/{}".format(self.base_url.strip("/"), relative.strip("/"))

    # ----- transport -----

    def request(self, method, url, params=None, data=None, headers=None):
        """One request as twilio-python's ``TwilioHttpClient.request`` sends it."""
        all_headers = {
            "User-Agent": USER_AGENT,
            "X-Twilio-Client": "python-wire-test",
            "Accept-Charset": "utf-8",
            "Accept": "application/json",
            "Authorization": self._authorization,
        }
        body = None
        if method == "POST":
            all_headers["Content-Type"] = "application/x-www-form-urlencoded"
            body = urllib.parse.urlencode(encode_params(data or {})).encode("utf-8")
        if method == "DELETE":
            # twilio-python: `if method == "DELETE": del headers["Accept"]`
            del all_headers["Accept"]
        for name, value in (headers or {}).items():
            if value is not None:
                all_headers[name] = value
        if params:
            query = urllib.parse.urlencode(encode_params(params))
            url = "{}{}{}".format(url, "&" if "?" in url else "?", query)
        scheme = urllib.parse.urlsplit(url).scheme
        if scheme not in ("http", "https"):
            raise WireFormatError("not an absolute http(s) URL: {!r}".format(url))
        req = urllib.request.Request(url, data=body, headers=all_headers, method=method)
        try:
            with self._opener.open(req, timeout=self.timeout) as answer:
                response = Response(
                    method, url, answer.status, answer.headers, answer.read().decode("utf-8")
                )
        except urllib.error.HTTPError as error:
            text = error.read().decode("utf-8", errors="replace")
            response = Response(method, url, error.code, error.headers, text)
        self.last_response = response
        return response

    def _exception(self, response, what):
        """``Version.exception``: the JSON error body's message/code, else the status."""
        try:
            payload = json.loads(response.text)
        except ValueError:
            payload = None
        code = response.status
        message = "{}: {}".format(what, response.text[:500])
        more_info = None
        details = None
        if isinstance(payload, dict):
            if "message" in payload:
                message = payload["message"]
            code = payload.get("code", response.status)
            more_info = payload.get("more_info")
            details = payload.get("details")
        return TwilioRestError(
            response.status,
            response.method,
            response.url,
            code,
            message,
            more_info=more_info,
            details=details,
            body=payload,
        )

    def _json(self, response):
        content_type = response.headers.get("Content-Type", "")
        if not content_type.split(";")[0].strip().lower() == "application/json":
            raise WireFormatError(
                "{} {} answered Content-Type {!r}, not application/json".format(
                    response.method, response.url, content_type
                )
            )
        return response.json()

    # ----- CRUD (twilio/base/version.py) -----

    def create(self, path, **params):
        """``POST`` a new resource; returns its JSON. Any 2xx is accepted (as twilio-python)."""
        response = self.request("POST", self.absolute_url(path), data=params)
        if response.status < 200 or response.status >= 300:
            raise self._exception(response, "Unable to create record")
        return self._json(response)

    def update(self, path, if_match=None, **params):
        """``POST`` to an instance URL, with ``If-Match`` when given; returns its JSON."""
        response = self.request(
            "POST", self.absolute_url(path), data=params, headers={"If-Match": if_match}
        )
        if response.status < 200 or response.status >= 300:
            raise self._exception(response, "Unable to update record")
        return self._json(response)

    def fetch(self, path, **params):
        """``GET`` one resource; returns ``(json, etag)``. 200-399 is success (as twilio-python)."""
        response = self.request("GET", self.absolute_url(path), params=params)
        if response.status < 200 or response.status >= 400:
            raise self._exception(response, "Unable to fetch record")
        return self._json(response), response.etag

    def delete(self, path, if_match=None):
        """``DELETE`` a resource, with ``If-Match`` when given. The reference answers 204."""
        response = self.request(
            "DELETE", self.absolute_url(path), headers={"If-Match": if_match}
        )
        if response.status < 200 or response.status >= 300:
            raise self._exception(response, "Unable to delete record")
        if response.status != 204:
            raise WireFormatError(
                "DELETE {} answered {}, the reference answers 204 No Content".format(
                    response.url, response.status
                )
            )
        return True

    # ----- lists (twilio/base/page.py) -----

    def load_page(self, response):
        """``Page.process_response`` + ``Page.load_page``: the page's records and its meta."""
        if response.status != 200:
            # twilio-python: `raise TwilioException("Unable to fetch page", response)`
            raise self._exception(response, "Unable to fetch page")
        payload = self._json(response)
        if not isinstance(payload, dict):
            raise WireFormatError("a list page must be a JSON object, got {!r}".format(payload))
        if "meta" in payload and "key" in payload["meta"]:
            key = payload["meta"]["key"]
            if key not in payload:
                raise WireFormatError(
                    "meta.key is {!r} but the page has no such property: {}".format(
                        key, sorted(payload)
                    )
                )
            return payload[key], payload["meta"]
        keys = set(payload.keys()) - {"uri", "first_page_uri", "page_size", "page", "next_page_uri",
                                       "previous_page_uri", "meta", "start", "end", "total",
                                       "num_pages", "last_page_uri"}
        if len(keys) == 1:
            return payload[keys.pop()], payload.get("meta", {})
        raise WireFormatError("Page Records can not be deserialized: {}".format(sorted(payload)))

    def page(self, path, **filters):
        """The first page of a list (``ListInstance.page``)."""
        response = self.request("GET", self.absolute_url(path), params=filters)
        records, meta = self.load_page(response)
        return Page(self, records, meta, response)

    def pages(self, path, **filters):
        """Every page, following ``meta.next_page_url`` (``Version.stream`` + ``next_page``)."""
        page = self.page(path, **filters)
        while page is not None:
            yield page
            page = page.next_page()

    def stream(self, path, **filters):
        """Every record of a list, page after page."""
        for page in self.pages(path, **filters):
            for record in page.records:
                yield record

    def list(self, path, **filters):
        return list(self.stream(path, **filters))


class Page:
    """One page of a list: its records, its meta and the way to the next one."""

    def __init__(self, client, records, meta, response):
        self.client = client
        self.records = records
        self.meta = meta
        self.response = response

    @property
    def next_page_url(self):
        """``Page.next_page_url``: ``meta.next_page_url`` as given (absolute)."""
        return self.meta.get("next_page_url")

    def next_page(self):
        """``Page.next_page``: GETs ``next_page_url`` unchanged, or ``None`` at the end."""
        if not self.next_page_url:
            return None
        response = self.client.request("GET", self.next_page_url)
        records, meta = self.client.load_page(response)
        return Page(self.client, records, meta, response)


if __name__ == "__main__":  # pragma: no cover - a tiny manual smoke check
    if len(sys.argv) != 5:
        print("usage: taskrouter_client.py BASE_URL ACCOUNT_SID AUTH_TOKEN PATH", file=sys.stderr)
        sys.exit(2)
    client = Client(sys.argv[1], sys.argv[2], sys.argv[3])
    print(json.dumps(client.fetch(sys.argv[4])[0], indent=2))
