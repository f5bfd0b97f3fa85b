"""``python -m batchgen`` and the ``batchgen`` command: the process around the CLI.

Ctrl-C or SIGTERM outside a run's own handling (while loading, planning, or after the run)
exits 130 without a traceback; inside a run the scheduler handles them gracefully.
"""

from __future__ import annotations

import signal
import sys

EXIT_INTERRUPTED = 130


def main() -> None:
    """Run the command line."""
    signal.signal(signal.SIGTERM, _terminate)  # SIGTERM is a Ctrl-C from another process
    try:
        import click

        from .cli import ERR
        from .cli import main as command

        try:
            code = command.main(prog_name="batchgen", standalone_mode=False)
        except click.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except click.Abort:  # click's rendering of a KeyboardInterrupt
            ERR.print("interrupted; run the same command to resume")
            sys.exit(EXIT_INTERRUPTED)
    except KeyboardInterrupt:
        sys.exit(EXIT_INTERRUPTED)
    finally:
        # An exit is under way with its code chosen; a late signal (the second Ctrl-C of a
        # pair, say) must not turn it into death by signal while the interpreter shuts down.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    sys.exit(code if isinstance(code, int) else 0)


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    main()
