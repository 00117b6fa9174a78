"""TLS: which CA bundle verifies the endpoint, and what a certificate failure means.

A certificate that does not verify is a configuration problem (a proxy that re-signs traffic, a
private CA, a missing CA bundle), not a network hiccup: retrying cannot fix it. Verification is
always on; a CA bundle named by the usual variables replaces the built-in one.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

# Read in this order; the first set wins. requests reads the first two itself (when it trusts
# the environment); SSL_CERT_FILE is OpenSSL's. They are read for a loopback endpoint too, which
# never goes through a proxy.
CA_BUNDLE_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE")

CA_BUNDLE_ADVICE = (
    "if a proxy or a private CA signs it, point REQUESTS_CA_BUNDLE at a PEM file holding that CA's"
    " certificate (verification cannot be switched off)"
)


@dataclass(frozen=True)
class CaBundle:
    variable: str
    path: str

    def problem(self) -> str | None:
        """Why the bundle cannot be used (one line), or None."""
        if os.path.isdir(self.path):
            return None  # a folder of hashed certificates, as OpenSSL's -CApath
        try:
            with open(self.path, "rb") as f:
                f.read(1)
        except OSError as exc:
            return (
                f"the CA bundle {self.variable}={self.path} cannot be read:"
                f" {exc.strerror or type(exc).__name__}"
            )
        try:  # a DER file, a key, a log: every request would fail the same way, retried in vain
            ssl.create_default_context(cafile=self.path)
        except (ssl.SSLError, ValueError) as exc:
            reason = getattr(exc, "reason", None) or type(exc).__name__
            return (
                f"the CA bundle {self.variable}={self.path} holds no certificate OpenSSL can"
                f" read ({reason}): it must be PEM text (-----BEGIN CERTIFICATE-----)"
            )
        return None


def ca_bundle(environ: Mapping[str, str] | None = None) -> CaBundle | None:
    """The CA bundle the environment names, or None for the built-in one (certifi)."""
    env = os.environ if environ is None else environ
    for name in CA_BUNDLE_VARIABLES:
        value = (env.get(name) or "").strip()
        if value:
            return CaBundle(name, value)
    return None


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and every error inside it: requests wraps urllib3's MaxRetryError, whose reason
    wraps the ssl error."""
    stack: list[object] = [exc]
    seen: set[int] = set()
    while stack:
        current = stack.pop()
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        stack.extend([current.__cause__, current.__context__, getattr(current, "reason", None)])
        stack.extend(current.args)


def certificate_problem(exc: BaseException) -> str | None:
    """OpenSSL's reason when ``exc`` (a requests error) comes from a certificate that did not
    verify ("self-signed certificate", "unable to get local issuer certificate", a hostname
    mismatch, ...); None for any other error."""
    for current in _causes(exc):
        if isinstance(current, ssl.SSLCertVerificationError):
            return current.verify_message or "certificate verify failed"
    return None


# OpenSSL's reason when the server's first bytes are not TLS: a plain-http server on an https
# URL (3.0 says WRONG_VERSION_NUMBER; 3.2 and later RECORD_LAYER_FAILURE).
_NOT_TLS_REASONS = frozenset({"WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE"})


def answered_without_tls(exc: BaseException) -> bool:
    """Whether ``exc`` (a requests error) says the server answered an https request in plain
    text: a wrong endpoint, which retrying cannot mend."""
    return any(
        isinstance(current, ssl.SSLError) and getattr(current, "reason", None) in _NOT_TLS_REASONS
        for current in _causes(exc)
    )
