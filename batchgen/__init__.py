"""batchgen: bulk, consistent-character images from Segmind's Ideogram Character API.

The public API: load a manifest, plan it against a ledger, and the error tree. Names are
imported on first use, so starting the command line stays cheap (and a Ctrl-C during start-up
lands in code that handles it).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

_HOMES = {
    "ApiError": ".errors",
    "AuthError": ".errors",
    "BatchgenError": ".errors",
    "CreditsError": ".errors",
    "LedgerError": ".errors",
    "ManifestError": ".errors",
    "ProtocolError": ".errors",
    "StoreError": ".errors",
    "UsageError": ".errors",
    "Job": ".jobs",
    "Ledger": ".ledger",
    "Manifest": ".manifest",
    "load_manifest": ".manifest",
    "Plan": ".plan",
    "make_plan": ".plan",
}

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


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'batchgen' has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name], __name__), name)
