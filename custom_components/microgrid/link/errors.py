"""What the Firebase client raises."""

from __future__ import annotations


class FirebaseError(Exception):
    """Base error of the Firebase link."""


class FirebaseConnectionError(FirebaseError):
    """The database could not be reached or answered with a server error."""


class FirebaseAuthError(FirebaseError):
    """Authentication failed: 401, permission denied or a bad key."""


class FirebaseInvalidURL(FirebaseError):
    """The database URL is not a Firebase RTDB URL or a loopback emulator URL."""


class FirebaseStreamCancelled(FirebaseError):
    """The server sent `cancel` on the stream (usually: rules deny the read); re-subscribed."""


class FirebaseInvalidRequest(FirebaseError, ValueError):
    """A path, key or value that the database would reject; raised before any request."""


class _AuthRejected(FirebaseError):
    """The stream was refused (401) or revoked (`auth_revoked`): retry with a fresh token."""


class SSEDecodeError(FirebaseError):
    """The event stream broke the SSE framing (an event larger than MAX_EVENT_BYTES)."""
