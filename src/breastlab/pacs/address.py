"""PACS addresses and credentials.

A PACS is named by one URL:

* DICOMweb: ``http(s)://host[:port]/root`` (for Orthanc ``http://host:8042/dicom-web``);
* DIMSE: ``dicom://AET@host:port`` (the called AE title, host and port).

Credentials never come from the command line (``user:password@`` or a query string such as
``?password=`` in a URL is refused, and ``provenance.json`` records URLs without either):

* ``BREASTLAB_PACS_USER`` and ``BREASTLAB_PACS_PASSWORD``, or ``BREASTLAB_PACS_TOKEN`` (a bearer
  token), from the environment;
* else the netrc file (``$NETRC`` or ``~/.netrc``) entry for the host.

TLS: ``https://`` URLs verify the server certificate against ``BREASTLAB_PACS_CA_BUNDLE`` (or the
``--ca-bundle`` option), else the system store.
"""
from __future__ import annotations

import netrc
import os
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from breastlab.pacs.errors import PacsAddressError, PacsError

ENV_USER = "BREASTLAB_PACS_USER"
ENV_PASSWORD = "BREASTLAB_PACS_PASSWORD"  # noqa: S105 - the variable's name, not a secret
ENV_TOKEN = "BREASTLAB_PACS_TOKEN"  # noqa: S105
ENV_CA_BUNDLE = "BREASTLAB_PACS_CA_BUNDLE"
DEFAULT_CALLING_AET = "BREASTLAB"


@dataclass(frozen=True)
class Credentials:
    """HTTP credentials; ``repr`` never shows the secret."""

    username: str | None = None
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    source: str = "none"  # "environment", "netrc" or "none": safe to log

    def __bool__(self) -> bool:
        return bool(self.token or self.username)


@dataclass(frozen=True)
class PacsAddress:
    """A parsed PACS URL (``url`` is safe to log: it never holds a credential)."""

    kind: str  # "dicomweb" or "dimse"
    url: str
    host: str
    port: int | None
    called_aet: str | None = None

    @property
    def label(self) -> str:
        return self.url


def parse_pacs_url(url: str) -> PacsAddress:
    """Parse ``url``; raises :class:`PacsError` with a one-line reason when it is not usable."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise PacsAddressError(f"not a PACS URL: {exc}") from None
    scheme = parts.scheme.lower()
    if parts.password is not None or (scheme in ("http", "https") and parts.username is not None):
        raise PacsAddressError("credentials in the URL are not accepted: set BREASTLAB_PACS_USER/"
                        "BREASTLAB_PACS_PASSWORD or use a netrc file")
    if parts.query or parts.fragment or "?" in url or "#" in url:
        # a DICOMweb root takes no query string; ?password=/?token= would end up in argv and logs
        raise PacsAddressError("a PACS URL takes no query string or fragment (credentials never go in a URL: set "
                        "BREASTLAB_PACS_USER/BREASTLAB_PACS_PASSWORD or BREASTLAB_PACS_TOKEN, or use a netrc file)")
    if not parts.hostname:
        raise PacsAddressError(f"no host in PACS URL {url!r}")
    if scheme in ("http", "https"):
        clean = urlunsplit((scheme, parts.netloc, parts.path.rstrip("/"), "", ""))
        return PacsAddress("dicomweb", clean, parts.hostname, port)
    if scheme == "dicom":
        aet = parts.username
        if not aet or len(aet) > 16:
            raise PacsAddressError(f"a DIMSE URL names the called AE title: dicom://AET@host:port (got {url!r})")
        if port is None:
            raise PacsAddressError(f"a DIMSE URL needs a port: dicom://{aet}@{parts.hostname}:PORT")
        return PacsAddress("dimse", f"dicom://{aet}@{parts.hostname}:{port}", parts.hostname, port, aet)
    raise PacsAddressError(f"unsupported PACS URL scheme {scheme!r}: use http(s)://host/dicom-web or dicom://AET@host:port")


def credentials_for(host: str) -> Credentials:
    """Credentials for ``host``: environment first, then netrc; empty when neither has any."""
    token = os.environ.get(ENV_TOKEN)
    if token:
        return Credentials(token=token, source="environment")
    user = os.environ.get(ENV_USER)
    if user:
        return Credentials(username=user, password=os.environ.get(ENV_PASSWORD, ""), source="environment")
    path = os.environ.get("NETRC") or os.path.expanduser("~/.netrc")
    if os.path.isfile(path):
        try:
            entry = netrc.netrc(path).authenticators(host)
        except (netrc.NetrcParseError, OSError) as exc:
            raise PacsAddressError(f"netrc file {path} could not be read: {type(exc).__name__}") from None
        if entry:
            login, _account, password = entry
            return Credentials(username=login, password=password or "", source="netrc")
    return Credentials()


def ca_bundle(option: str | None = None) -> str | bool:
    """What ``requests`` verifies TLS against: the given bundle, ``$BREASTLAB_PACS_CA_BUNDLE``, or the system."""
    path = option or os.environ.get(ENV_CA_BUNDLE)
    if path:
        if not os.path.isfile(path):
            raise PacsAddressError(f"CA bundle not found: {path}")
        return path
    return True
