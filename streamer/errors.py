"""The package's exceptions.

Every error derives from :class:`StreamerError` and also from the built-in that matches
its nature, so callers can catch either (``except OSError`` keeps working for sources).
Messages say what was wrong and what to do about it.
"""


class StreamerError(Exception):
    """Base class of every error this package raises on purpose."""


class ConfigError(StreamerError, ValueError):
    """A configuration value is missing, unknown or out of range."""


class SourceError(StreamerError, OSError):
    """A source cannot be opened or stopped delivering frames (missing file, corrupt video)."""


class UnsupportedError(SourceError):
    """The source needs what this build lacks (an FFmpeg protocol): retrying cannot help."""


class ModelError(StreamerError, RuntimeError):
    """Detector weights cannot be found or loaded."""


class SinkError(StreamerError, OSError):
    """An output cannot be written."""
