"""Errors the service facade raises; the app maps them to HTTP statuses (404, 409, 422, 503)."""

from __future__ import annotations

from sharpeyes.pipeline.errors import SharpeyesError


class NotFoundError(SharpeyesError, LookupError):
    """The named camera, event or evidence file does not exist (or is not exposed)."""


class ConflictError(SharpeyesError, ValueError):
    """The request clashes with the current state (duplicate id, event already reviewed)."""


class InvalidRequestError(SharpeyesError, ValueError):
    """A well-formed request asks for something the service cannot do (bad cursor, bad range)."""


class UnavailableError(SharpeyesError, RuntimeError):
    """A dependency (store, pipeline) cannot serve the request right now."""
