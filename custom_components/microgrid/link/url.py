"""A Realtime Database URL: Firebase hosts and the loopback emulator."""

from __future__ import annotations

from dataclasses import dataclass
import re
from urllib.parse import quote

from yarl import URL

from .errors import FirebaseInvalidURL

_NAMESPACE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
_FIREBASE_SUFFIXES = (".firebaseio.com", ".firebasedatabase.app")


@dataclass(frozen=True, kw_only=True, slots=True)
class DatabaseURL:
    """Where a database lives: base URL, namespace and whether it is a loopback emulator."""

    base: str
    namespace: str
    emulator: bool

    def url_for(self, segments: tuple[str, ...]) -> URL:
        """Return the REST URL (`<base>/<path>.json`) of a path, without auth."""
        path = "/" + "/".join(quote(seg, safe="") for seg in segments) + ".json"
        url = URL(self.base + path, encoded=True)
        return url.with_query(ns=self.namespace) if self.emulator else url

    def may_redirect_to(self, target: URL) -> bool:
        """Return True when a redirect target may receive our credentials."""
        here = URL(self.base)
        if target.scheme != here.scheme:
            return False
        if target.host == here.host and target.port == here.port:
            return True
        host = target.host or ""
        return not self.emulator and host.endswith(_FIREBASE_SUFFIXES)


def parse_database_url(url: str) -> DatabaseURL:
    """Parse a Firebase RTDB URL (https) or a loopback emulator URL (http with ?ns=)."""
    if not isinstance(url, str) or not url.strip():
        raise FirebaseInvalidURL("the database URL is empty")
    try:
        parsed = URL(url.strip())
    except (ValueError, TypeError) as err:
        raise FirebaseInvalidURL(f"not a URL: {err}") from err
    if parsed.user or parsed.password or parsed.fragment or parsed.path not in ("", "/"):
        raise FirebaseInvalidURL("the database URL must not carry a path, user or fragment")
    host = (parsed.host or "").lower()
    if parsed.scheme == "https":
        return _parse_firebase_host(host, parsed)
    if parsed.scheme == "http":
        return _parse_emulator(host, parsed)
    raise FirebaseInvalidURL("the database URL must start with https:// (or http:// for loopback)")


def _parse_firebase_host(host: str, parsed: URL) -> DatabaseURL:
    """Accept https://<ns>.firebaseio.com and https://<ns>.<region>.firebasedatabase.app."""
    if parsed.query_string or not parsed.is_default_port():
        raise FirebaseInvalidURL("a Firebase database URL takes no port or query")
    labels = host.split(".")
    legacy = host.endswith(".firebaseio.com") and len(labels) == 3
    regional = (
        host.endswith(".firebasedatabase.app")
        and len(labels) == 4
        and bool(_NAMESPACE.match(labels[1]))
    )
    if not (legacy or regional):
        raise FirebaseInvalidURL(
            "expected https://<db>.firebaseio.com or https://<db>.<region>.firebasedatabase.app"
        )
    namespace = labels[0]
    if not _NAMESPACE.match(namespace):
        raise FirebaseInvalidURL(f"invalid database name {namespace!r}")
    return DatabaseURL(base=f"https://{host}", namespace=namespace, emulator=False)


def _parse_emulator(host: str, parsed: URL) -> DatabaseURL:
    """Accept http://127.0.0.1:PORT/?ns=<ns> (and localhost, ::1): the emulator convention."""
    if host not in LOOPBACK_HOSTS:
        raise FirebaseInvalidURL("plain http is only accepted for a loopback emulator")
    namespaces = parsed.query.getall("ns", [])
    if len(namespaces) != 1 or set(parsed.query) != {"ns"}:
        raise FirebaseInvalidURL("an emulator URL needs exactly one ?ns=<database>, nothing else")
    namespace = namespaces[0]
    if not _NAMESPACE.match(namespace):
        raise FirebaseInvalidURL(f"invalid database name {namespace!r}")
    netloc = f"[{host}]" if ":" in host else host
    return DatabaseURL(base=f"http://{netloc}:{parsed.port}", namespace=namespace, emulator=True)


# --- paths and values ----------------------------------------------------------------------------
