"""API keys: `Authorization: Bearer <key>`, compared in constant time, and the owner they map to.

A job's owner is a stable, non-secret digest of the key that created it, never the key itself.
With no keys configured every caller is the owner "anonymous"; `ninv serve` allows that only on a
loopback address. Keys are never logged.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Iterable

from service.errors import ProblemError

__all__ = ["ANONYMOUS", "KeyRing", "check_metrics_access", "owner_id"]

ANONYMOUS = "anonymous"


def owner_id(key: str) -> str:
    """The owner id stored on a key's jobs: a sha256 prefix, enough to tell keys apart."""
    return "key-" + hashlib.sha256(key.encode()).hexdigest()[:16]


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


class KeyRing:
    """The configured API keys, as digests, and who a presented key is."""

    def __init__(self, keys: Iterable[str]) -> None:
        self._keys = [(_digest(key), owner_id(key)) for key in keys]

    @property
    def open(self) -> bool:
        """True when no keys are configured (every caller is anonymous)."""
        return not self._keys

    def owner(self, token: str | None) -> str:
        """The owner id for a presented bearer token; 401 when it is missing or unknown.

        Every configured key is compared (digests of equal length, hmac.compare_digest), so the
        time taken says nothing about which key, or how much of one, matched.
        """
        if self.open:
            return ANONYMOUS
        if not token:
            raise _unauthorized("missing API key: send Authorization: Bearer <key>")
        presented = _digest(token)
        found: str | None = None
        for digest, owner in self._keys:
            if hmac.compare_digest(presented, digest):
                found = owner
        if found is None:
            raise _unauthorized("invalid API key")
        return found


def _loopback(host: str | None) -> bool:
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_metrics_access(
    *, metrics_key: str, keys_configured: bool, token: str | None, client_host: str | None
) -> None:
    """Who may read /metrics (job counts across every key, queue depth, solve totals).

    With NINV_METRICS_KEY set, whoever presents it as a bearer token (401 otherwise). Without
    it, when API keys are configured, only clients on this machine (403 otherwise): a scraper
    runs beside the API, or a proxy forwards it. With no API keys the server binds loopback
    only, so /metrics is as open as the rest.
    """
    if metrics_key:
        if token is None or not hmac.compare_digest(_digest(token), _digest(metrics_key)):
            raise _unauthorized("/metrics needs NINV_METRICS_KEY: send Authorization: Bearer <key>")
        return
    if keys_configured and not _loopback(client_host):
        raise ProblemError(
            403,
            "/metrics answers only this machine; set NINV_METRICS_KEY on the server to let a "
            "scraper elsewhere read it with that key",
        )


def _unauthorized(detail: str) -> ProblemError:
    return ProblemError(401, detail, headers={"WWW-Authenticate": "Bearer"})
