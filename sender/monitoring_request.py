"""One request to a monitoring URL the user set: the alert webhook (sender/alerts.py) and the
heartbeat (sender/heartbeat.py).

One attempt, a short wait, no redirect followed: monitoring must never hold up or fail the job it
reports on, and a URL that redirects is reported rather than followed to wherever it points. The
URL is a secret (anyone who has it can post to the channel, or ping the monitor): what this says
about a failure names the status or the kind of error, never the URL.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import requests

from sender import __version__
from sender.settings import Secret, is_loopback_host

# seconds to connect, then to the answer
TIMEOUT = (3.0, 5.0)


def request_once(method: str, url: Secret, *, json: dict | None = None) -> str | None:
    """``method`` ``url`` once (with ``json`` as its body); None when a 2xx came back, else why
    not: ``no answer in time``, ``cannot be reached (ConnectionError)``, ``answered HTTP 404``."""
    loopback = is_loopback_host(urlsplit(url.reveal()).hostname or "")
    with requests.Session() as session:
        session.trust_env = not loopback  # as for LINE: no proxy for a loopback receiver
        try:
            resp = session.request(
                method,
                url.reveal(),
                json=json,
                headers={"User-Agent": f"line-capi-sender/{__version__}"},
                timeout=TIMEOUT,
                allow_redirects=False,
            )
        except requests.Timeout:
            return "no answer in time"
        except requests.RequestException as exc:
            return f"cannot be reached ({type(exc).__name__})"
        if not 200 <= resp.status_code < 300:
            return f"answered HTTP {resp.status_code}"
    return None
