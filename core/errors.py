"""Domain exceptions of mdsdx, in one place.

The HTTP layer maps them to 4xx JSON and the CLI to a non-zero exit with one line, so each
message says what happened, what was expected and how to fix it.
"""


class MdsdxError(Exception):
    """Base class of every error a user can cause and act on."""


class InvalidImage(MdsdxError):
    """An uploaded or listed file is not a readable cell image."""


class InvalidInput(MdsdxError):
    """An argument, file or request does not match what the command or endpoint expects."""


class DataNotFound(MdsdxError):
    """A data folder or file the command needs is absent."""


class ModelLoadError(MdsdxError):
    """A model artifact is missing, unreadable or does not match its metadata."""


class SomeInputsFailed(MdsdxError):
    """A batch command wrote what it could, and its output lists the inputs it skipped and why; the
    command line exits 1 (bad usage exits 2)."""
    exit_code = 1


class IdempotencyKeyReused(InvalidInput):
    """An Idempotency-Key came again with a request that differs from the first one it was sent with."""
