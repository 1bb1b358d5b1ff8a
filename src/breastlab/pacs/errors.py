"""The one error type the PACS commands turn into a one-line message and a non-zero exit."""
from __future__ import annotations

from breastlab.core.errors import EXIT_NOTHING, EXIT_USAGE, RunFailed


class PacsError(RunFailed):
    """A PACS could not be reached, refused us, or answered something unusable.

    The message is one line, names the server (never a credential) and says what to check.
    """


class PacsAddressError(PacsError):
    """A PACS URL or client setting that cannot be used (bad usage, exit 2): a credential or
    query string in the URL, no host, no port, an unknown scheme, an unreadable CA bundle."""

    exit_code = EXIT_USAGE


class PacsNothingFound(PacsError):
    """The PACS answered, and no study matched the query (nothing to do, exit 1)."""

    exit_code = EXIT_NOTHING
