"""The one error type the PACS commands turn into a one-line message and a non-zero exit."""
from __future__ import annotations

from breastlab.core.errors import RunFailed


class PacsError(RunFailed):
    """A PACS could not be reached, refused us, or answered something unusable.

    The message is one line, names the server (never a credential) and says what to check.
    """
