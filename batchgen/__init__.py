"""batchgen: bulk, consistent-character images from Segmind's Ideogram Character API.

The public API: load a manifest, plan it against a ledger, and the error tree.
"""

from __future__ import annotations

from .errors import (
    ApiError,
    AuthError,
    BatchgenError,
    CreditsError,
    LedgerError,
    ManifestError,
    ProtocolError,
    StoreError,
    UsageError,
)
from .jobs import Job
from .ledger import Ledger
from .manifest import Manifest, load_manifest
from .plan import Plan, make_plan

__version__ = "1.0.0"

__all__ = [
    "ApiError",
    "AuthError",
    "BatchgenError",
    "CreditsError",
    "Job",
    "Ledger",
    "LedgerError",
    "Manifest",
    "ManifestError",
    "Plan",
    "ProtocolError",
    "StoreError",
    "UsageError",
    "__version__",
    "load_manifest",
    "make_plan",
]
