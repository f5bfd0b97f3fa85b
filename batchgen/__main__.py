"""``python -m batchgen`` and the ``batchgen`` command."""

from __future__ import annotations

import sys


def main() -> None:
    """Run the command line; a Ctrl-C even while it is still loading exits 130, quietly."""
    try:
        from .cli import entry
    except KeyboardInterrupt:
        sys.exit(130)
    entry()


if __name__ == "__main__":
    main()
