"""One error taxonomy for the whole engine.

Every layer raises these; only the API layer maps them to HTTP status codes and only the
runtime's command line maps them to exit codes. Messages are lower-case, name the object,
and never end in a period.
"""


class SampanError(Exception):
    """Base class of every error the engine raises on purpose."""


class NotFound(SampanError):
    """The named object does not exist."""


class Conflict(SampanError):
    """The object exists but is in a state that forbids the operation."""


class InvalidParameter(SampanError):
    """The caller's input is malformed or inconsistent."""


class Unavailable(SampanError):
    """A dependency (kernel feature, daemon, registry) cannot be reached or is missing."""


class Forbidden(SampanError):
    """The operation is not allowed for this caller or object."""


class NotImplementedFeature(SampanError):
    """The request is valid but the engine does not implement it."""


class System(SampanError):
    """An operating-system call failed; the message names the call and the path."""


class NotModified(SampanError):
    """The object is already in the requested state (start of a running container: 304)."""
