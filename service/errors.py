"""The service's exceptions; each boundary error carries the HTTP status it maps to."""

from __future__ import annotations


class ServiceError(Exception):
    """Base of every error the service raises on purpose."""

    status_code = 500
    retry_after: int | None = None  # seconds, sent as Retry-After (busy, rate-limited)

    def __init__(self, message: str = "", retry_after: int | None = None) -> None:
        super().__init__(message)
        if retry_after is not None:
            self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        """The reply's headers: Retry-After when the client should come back later."""
        return {"Retry-After": str(self.retry_after)} if self.retry_after else {}

    def detail(self) -> dict[str, str]:
        """The reply's JSON body, the same at every door (the gate, the routes)."""
        return {"detail": str(self)}


class ModelLoadError(ServiceError):
    """A model or the manifest cannot be used; the service refuses to start."""


class BadRequest(ServiceError):
    """The client sent something malformed or out of range (also used for control messages)."""

    status_code = 400


class NotFound(ServiceError):
    """An unknown model, style or peer."""

    status_code = 404


class PayloadTooLarge(ServiceError):
    status_code = 413


class UnsupportedMedia(ServiceError):
    status_code = 415


class Unprocessable(ServiceError):
    """Well-formed but unusable (an offer with no video codec this server can decode)."""

    status_code = 422


class ServiceBusy(ServiceError):
    """Too many peers, a full queue, every worker busy; try again later."""

    status_code = 503
    retry_after = 5


class TooManyRequests(ServiceError):
    """One client asks faster than its limit (offers pending, control messages)."""

    status_code = 429
    retry_after = 5


class Unauthorized(ServiceError):
    """No API token, or the wrong one (the reply says how to send it)."""

    status_code = 401

    def headers(self) -> dict[str, str]:
        return {**super().headers(), "WWW-Authenticate": "Bearer"}


class InsufficientStorage(ServiceError):
    """Not enough free disk to accept the work."""

    status_code = 507
    retry_after = 60


class FeatureUnavailable(ServiceError):
    """A mode needs an optional extra that is not installed here (the reply names it)."""

    status_code = 501


class Forbidden(ServiceError):
    """Allowed to nobody (a bundled style cannot be removed)."""

    status_code = 403


class Conflict(ServiceError):
    """The request clashes with what is there (a style of that name exists, the limit of added styles)."""

    status_code = 409
