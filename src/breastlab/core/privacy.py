"""Pseudonyms: stable short names that stand in for identifiers in every output.

Patient names and IDs never reach reports or tables unless the user passes
``--keep-phi``; studies, patients and header-less image sets are named by a prefix plus
the first hex digits of a SHA-256 of the identifier. (Case assembly adds a salt and
several parts: ``breastlab.multiview.cases.pseudonym``.)
"""
from __future__ import annotations

import hashlib


def hashed_id(identifier: str, prefix: str, length: int = 10) -> str:
    """``prefix`` + the first ``length`` hex digits of SHA-256(``identifier``)."""
    return prefix + hashlib.sha256(identifier.encode()).hexdigest()[:length]
