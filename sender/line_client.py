"""One POST to the LINE Conversion API, classified; and the retry backoff.

One kept-alive ``requests.Session`` per thread. Nothing here logs or raises the token: errors
carry the status, the tag id (in the URL) and the exception class, scrubbed of the token.
"""

from __future__ import annotations

import email.utils
import random
import re
import threading
import time
from dataclasses import dataclass
from enum import Enum
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter

from sender import __version__, fault_points
from sender.request_body import Body
from sender.settings import LineTarget, is_loopback_host
from sender.tls import CA_BUNDLE_ADVICE, answered_without_tls, ca_bundle, certificate_problem

USER_AGENT = f"line-capi-sender/{__version__}"


class HttpOutcome(Enum):
    ACCEPTED = "accepted"  # 202, LINE's only success answer
    BAD_REQUEST = "bad_request"  # 400: an event is invalid, the request was discarded
    TOO_LARGE = "too_large"  # 413: split and try again
    AUTH = "auth"  # 401/403: stop everything
    TLS = "tls"  # the certificate does not verify, or the CA bundle cannot be read: stop
    RETRYABLE = "retryable"  # 408, 425, 429, 5xx, timeouts, dropped connections
    FATAL = "fatal"  # any other status (404: wrong endpoint or tag id, another 2xx, ...)


@dataclass(frozen=True)
class Response:
    outcome: HttpOutcome
    http_status: int | None
    retry_after: float | None = None
    error: str | None = None
    # the answer is a web page: a proxy or a firewall may have answered, not LINE
    html: bool = False
    # the request reached a server: it answered, or went out and its answer was late (not a
    # name that does not resolve, a refused connection, a connect timeout, a proxy that fails,
    # nor a connection dropped, even after the request went out: retried, not counted as sent)
    reached: bool = True


# A proxy's answer to the CONNECT of an https request, which requests raises as an error.
PROXY_AUTH_REQUIRED = 407


def classify(status: int) -> HttpOutcome:
    """LINE answers 202 when it keeps a request. Any other 2xx comes from something else (a
    proxy's page, an endpoint that is not LINE's): taken as delivered, its events would be lost."""
    if status == 202:
        return HttpOutcome.ACCEPTED
    if status == 400:
        return HttpOutcome.BAD_REQUEST
    if status == 413:
        return HttpOutcome.TOO_LARGE
    if status in (401, 403):
        return HttpOutcome.AUTH
    if status in (408, 425, 429) or status >= 500:
        return HttpOutcome.RETRYABLE
    return HttpOutcome.FATAL


def network_reason(exc: BaseException) -> str:
    """The innermost cause of a requests error, as one short text: "Name or service not
    known", "Connection refused", "Tunnel connection failed: 407 Proxy Authentication
    Required"."""
    current, seen = exc, {id(exc)}
    while True:
        nested = [getattr(current, "reason", None), current.__cause__, *current.args]
        inner = next(
            (x for x in nested if isinstance(x, BaseException) and id(x) not in seen), None
        )
        if inner is None:
            break
        seen.add(id(inner))
        current = inner
    text = _ERRNO.sub("", str(current)).strip()
    return text or type(current).__name__


_ERRNO = re.compile(r"^\[Errno -?\d+\]\s*")
_URL_USERINFO = re.compile(r"//[^/@\s]+@")


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds (delta-seconds or an HTTP date); None when absent/garbled."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    now = time.time() if now is None else now
    return max(0.0, when.timestamp() - now)


def backoff_delay(
    retry: int, *, base: float, cap: float, retry_after: float | None, rng: random.Random
) -> float:
    """Exponential backoff, each wait a random time between half of it and all of it (jitter),
    capped at ``cap``; at least ``Retry-After`` (the pusher stops before a longer one)."""
    exponential = min(cap, base * (2 ** max(0, retry - 1)))
    delay = rng.uniform(exponential / 2, exponential)
    if retry_after is not None:
        delay = max(delay, min(retry_after, cap))
    return delay


class LineClient:
    """Posts request bodies to ``{endpoint}/v1/{tag_id}/events``."""

    def __init__(self, target: LineTarget, *, timeout: float, connect_timeout: float = 10.0):
        self._target = target
        self._timeout = (min(connect_timeout, timeout), timeout)
        self._loopback = is_loopback_host(urlsplit(target.endpoint).hostname or "")
        # The CA bundle is chosen here for every endpoint: a loopback session ignores the
        # environment (no proxy may carry its traffic), but a CA bundle set there still counts.
        bundle = ca_bundle()
        self._verify: str | bool = bundle.path if bundle else True
        self._bundle_problem = bundle.problem() if bundle else None
        # said with a certificate failure: a bundle set machine-wide may hide the one meant
        self._bundle_used = f" (verified with {bundle.variable}={bundle.path})" if bundle else ""
        self._https = target.endpoint.startswith("https://")
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"LineClient(url={self._target.events_url!r})"

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            # To LINE (https), honour HTTPS_PROXY and CA bundle settings like any client. To a
            # loopback mock server, never: a proxy would carry the data off the machine unencrypted.
            session.trust_env = not self._loopback
            session.mount("https://", HTTPAdapter(pool_connections=1, pool_maxsize=1))
            session.mount("http://", HTTPAdapter(pool_connections=1, pool_maxsize=1))
            self._local.session = session
            with self._lock:
                self._sessions.append(session)
        return session

    def post(self, body: Body | bytes, *, has_line_uid: bool) -> Response:
        """POST one body (a :class:`~sender.request_body.Body` goes out with a fixed
        Content-Length, part by part, without being copied)."""
        headers = {
            "Content-Type": "application/json",
            "X-Line-TagAccessToken": self._target.token.reveal(),
            "User-Agent": USER_AGENT,
        }
        if has_line_uid:
            if not self._target.channel_id:
                raise ValueError("channel id required for events with user.line_uid")
            headers["X-Line-ChannelID"] = self._target.channel_id
        fault_points.hit("before_request")  # test hook: sender/fault_points.py
        if self._https and self._bundle_problem:  # nothing leaves the machine
            return Response(HttpOutcome.TLS, None, error=self._bundle_problem, reached=False)
        try:
            resp = self._session().post(
                self._target.events_url,
                data=body,
                headers=headers,
                timeout=self._timeout,
                allow_redirects=False,
                verify=self._verify,
            )
        except requests.exceptions.SSLError as exc:
            if answered_without_tls(exc):
                return Response(  # no certificate to fix: the endpoint is the mistake
                    HttpOutcome.FATAL,
                    None,
                    error=f"{self._target.endpoint} answered without TLS: it is not an https"
                    " server (sender mock-server speaks plain http: http://127.0.0.1:PORT)",
                )
            problem = certificate_problem(exc)
            if problem is None:  # a handshake cut short: the network, not the certificate
                return Response(
                    HttpOutcome.RETRYABLE,
                    None,
                    error=f"TLS error ({type(exc).__name__})",
                    reached=False,
                )
            return Response(  # the handshake stopped before the request went out
                HttpOutcome.TLS,
                None,
                error=f"the TLS certificate of {self._target.endpoint} does not verify: {problem}"
                f"{self._bundle_used}; {CA_BUNDLE_ADVICE}",
                reached=False,
            )
        except requests.Timeout as exc:
            return Response(
                HttpOutcome.RETRYABLE,
                None,
                error=f"timeout ({type(exc).__name__})",
                reached=not isinstance(exc, requests.exceptions.ConnectTimeout),
            )
        except requests.ConnectionError as exc:
            reason = self._scrub(network_reason(exc))
            if isinstance(exc, requests.exceptions.ProxyError) and f" {PROXY_AUTH_REQUIRED} " in (
                f" {reason} "
            ):  # the proxy wants credentials: retrying cannot give them
                return Response(HttpOutcome.FATAL, PROXY_AUTH_REQUIRED, error=reason)
            return Response(
                HttpOutcome.RETRYABLE,
                None,
                error=f"connection error ({type(exc).__name__}: {reason})",
                reached=False,
            )
        except requests.RequestException as exc:
            reason = self._scrub(network_reason(exc))
            return Response(
                HttpOutcome.RETRYABLE,
                None,
                error=f"request failed ({type(exc).__name__}: {reason})",
                reached=False,
            )
        try:
            resp.content  # drain, so the connection goes back to the pool  # noqa: B018
        except requests.RequestException:
            pass
        status = resp.status_code
        outcome = classify(status)
        error = None if outcome is HttpOutcome.ACCEPTED else f"HTTP {status}"
        return Response(
            outcome,
            status,
            retry_after=parse_retry_after(resp.headers.get("Retry-After")),
            error=error,
            html="html" in resp.headers.get("Content-Type", "").lower(),
        )

    def _scrub(self, text: str) -> str:
        """Without the token, nor a user and password in a URL (HTTPS_PROXY's)."""
        return _URL_USERINFO.sub("//***@", text.replace(self._target.token.reveal(), "********"))

    def close(self) -> None:
        with self._lock:
            for session in self._sessions:
                session.close()
            self._sessions.clear()
