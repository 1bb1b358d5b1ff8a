"""Pseudonyms: stable short names that stand in for identifiers in every output.

Patient names and IDs never reach reports or tables unless the user passes
``--keep-phi``; studies, patients, cases and header-less image sets are named by a
prefix plus the first hex digits of a SHA-256 of the identifier (:func:`hashed_id`, the
one hash behind every pseudonym). Case assembly hashes a salt and several parts joined
by ``\x1f`` (``breastlab.multiview.cases.pseudonym``).

Example:
    >>> hashed_id("1.2.826.0.1.3680043.8.498.1", "study-")
    'study-6dadc91b85'
"""
from __future__ import annotations

import hashlib
import re


def hashed_id(identifier: str, prefix: str, length: int = 10) -> str:
    """``prefix`` + the first ``length`` hex digits of SHA-256(``identifier``, UTF-8).

    Args:
        identifier: the value to hide (a UID, a patient ID, a path).
        prefix: a readable start that also keeps spreadsheets from reading it as a number.
        length: hex digits kept (10 = 40 bits: no collision in any one archive in practice).
    """
    return prefix + hashlib.sha256(identifier.encode()).hexdigest()[:length]


_URL = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^/@\s]*@)?(?P<rest>[^\s?#]*)(?P<tail>[?#]\S*)?")


def redact_urls(text: str) -> str:
    """``text`` with the user info and the query string/fragment of every URL in it replaced.

    >>> redact_urls("pacs sort https://u:pw@h/dw?password=x --out o")
    'pacs sort https://<redacted>@h/dw?<redacted> --out o'
    """
    def one(m: re.Match[str]) -> str:
        user = "<redacted>@" if m.group("user") else ""
        tail = "?<redacted>" if m.group("tail") else ""
        return f"{m.group('scheme')}{user}{m.group('rest')}{tail}"

    return _URL.sub(one, text)
