"""The one error tree of batchgen.

Every expected failure is a :class:`BatchgenError`; only the CLI catches it and turns it into
a message and an exit code. Messages are sentences that say what went wrong, where, and what
to do next.

::

    BatchgenError
    ├── ManifestError        the manifest is unreadable or invalid (a list of located problems)
    ├── UsageError           a flag, the environment or the output folder is unusable
    │   └── BusyError        another run is using the same output folder
    ├── Interrupted          Ctrl-C or SIGTERM stopped the run (resumable)
    ├── ApiError             the API answered in a way that stops the whole run
    │   ├── AuthError        401/403: the key is missing, invalid, expired or not allowed
    │   ├── CreditsError     the account is empty or the credit guard stopped the run
    │   ├── ProtocolError    404/405/406-content-type: the endpoint or the client is wrong
    │   └── OutageError      the API kept failing: the circuit breaker gave up (resumable)
    ├── LedgerError          the ledger cannot be opened, read or written
    └── StoreError           an image or its sidecar cannot be written
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Location:
    """A place in a source file; line and column are 1-based."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a manifest: where, which field, and what."""

    location: Location | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.location}: " if self.location else ""
        field = f"{self.field}: " if self.field else ""
        return f"{where}{field}{self.message}"


class BatchgenError(Exception):
    """Base of every error batchgen expects and explains."""


class ManifestError(BatchgenError):
    """A manifest cannot be used; carries every problem found, not only the first."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class UsageError(BatchgenError):
    """A command-line flag, an environment variable or the output folder is unusable."""


class BusyError(UsageError):
    """Another batchgen run holds the output folder."""


class Interrupted(BatchgenError):
    """A signal stopped the run; it resumes with the same command."""


class ApiError(BatchgenError):
    """The API answered in a way that stops the whole run."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)


class AuthError(ApiError):
    """The API rejected the key (401) or this account may not use the model (403)."""


class CreditsError(ApiError):
    """The account ran out of credits, or the credit guard refused to spend more."""


class ProtocolError(ApiError):
    """The endpoint is wrong or the request was malformed in a way no retry can fix."""


class OutageError(ApiError):
    """Most recent requests failed, through several pauses: the API is down for now."""


class LedgerError(BatchgenError):
    """The ledger cannot be opened, read or written."""


class StoreError(BatchgenError):
    """An output file cannot be written where it belongs."""
