"""One exception base and one set of exit codes for every command.

Library code raises a ``BreastlabError`` subclass (or a plain Python exception); the one
handler in ``cli/main.py`` turns it into one message on stderr,
``breastlab COMMAND: error: MESSAGE``, and the exit code below. The classes also derive
from the built-in exception they refine (``UsageError`` is a ``ValueError``), so callers
that catch the built-in keep working.

=====  ==============================================================================
code   meaning
=====  ==============================================================================
0      done
1      nothing to do (no readable input, no case built, nothing to convert)
2      bad usage: an option, a path, an input the command cannot use; nothing written
3      failed mid-run (a disk filled up, a server went away); outputs keep their
       previous content
130    interrupted (Ctrl-C)
=====  ==============================================================================

>>> err = UsageError("--folds must be at least 2")
>>> err.exit_code, isinstance(err, ValueError), isinstance(err, BreastlabError)
(2, True, True)
>>> exit_code(KeyboardInterrupt()), exit_code(OSError("disk full"))
(130, 3)
"""
from __future__ import annotations

EXIT_DONE = 0
EXIT_NOTHING = 1
EXIT_USAGE = 2
EXIT_FAILED = 3
EXIT_INTERRUPTED = 130

__all__ = ["BreastlabError", "EXIT_DONE", "EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_NOTHING",
           "EXIT_USAGE", "NothingToDo", "RunFailed", "UsageError", "exit_code"]


class BreastlabError(Exception):
    """Base of every breastlab exception; ``exit_code`` is what the CLI exits with."""

    exit_code: int = EXIT_FAILED


class UsageError(BreastlabError, ValueError):
    """Bad usage: an option, a path or an input the command cannot use (exit 2)."""

    exit_code = EXIT_USAGE


class NothingToDo(BreastlabError):
    """The command ran and found nothing to do (exit 1); the message says why."""

    exit_code = EXIT_NOTHING


class RunFailed(BreastlabError, RuntimeError):
    """The run failed part-way (exit 3); outputs keep their previous content."""

    exit_code = EXIT_FAILED


def exit_code(exc: BaseException) -> int:
    """The exit code of ``exc`` under the policy above (unknown errors: failed, 3)."""
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    return int(getattr(exc, "exit_code", EXIT_FAILED)) if isinstance(exc, BreastlabError) \
        else EXIT_FAILED
