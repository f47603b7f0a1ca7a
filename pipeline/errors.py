"""The sharpeyes error tree.

Every error raised on purpose by sharpeyes derives from :class:`SharpeyesError` and also from the
builtin exception that matches its meaning, so callers can catch either (PyAV does the same with
``InvalidDataError(FFmpegError, ValueError)``). Messages are one readable line that names the bad
value; the CLI prints ``error: <message>`` and exits non-zero, never a traceback.
"""

from __future__ import annotations


class SharpeyesError(Exception):
    """Root of every error sharpeyes raises deliberately."""


class ConfigError(SharpeyesError, ValueError):
    """A configuration file or value is malformed; the message names the field."""


class ModelError(SharpeyesError, RuntimeError):
    """A model could not be resolved, verified, downloaded or loaded."""


class ModelNotFoundError(ModelError, FileNotFoundError):
    """No copy of a model was found in any of the places searched."""


class ModelIntegrityError(ModelError):
    """A model file exists but its sha256 is not the registered one."""


class StreamError(SharpeyesError, IOError):
    """A video source could not be opened or read."""


class StreamOpenError(StreamError):
    """The source could not be opened (missing file, refused connection, not a video)."""


class DecodeError(StreamError):
    """The stream is corrupt or truncated beyond what decoding can skip."""


class StoreError(SharpeyesError, RuntimeError):
    """The event store failed (schema too new, disk full, database unreachable)."""


class DeliveryError(SharpeyesError, RuntimeError):
    """A record could not be delivered to an upstream platform."""


class EvidenceError(SharpeyesError, RuntimeError):
    """Evidence could not be built or verified."""
