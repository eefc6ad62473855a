"""Errors that carry the HTTP status the API answers with, as Docker's errdefs do.

Raise these anywhere below the API; the API layer turns them into `{"message": ...}` with the status,
and the CLI prints `Error response from daemon: <message>`.
"""

from __future__ import annotations


class LogshipError(Exception):
    """An error a user can act on. The message says what was wrong and what to do."""

    status = 500


class InvalidParameter(LogshipError):
    status = 400


class NotFound(LogshipError):
    status = 404


class Conflict(LogshipError):
    status = 409


class NotModified(LogshipError):
    status = 304


class NotImplementedByDriver(LogshipError):
    status = 501


class Unavailable(LogshipError):
    status = 503


class SystemError_(LogshipError):
    """A failure of the machine or the runtime rather than of the request (HTTP 500)."""

    status = 500


class Unauthorized(LogshipError):
    """A registry refused our credentials (or wanted some): Docker's /auth answers 401."""

    status = 401


class Forbidden(LogshipError):
    status = 403
