"""CLI: ``breastlab listen``: receive studies over C-STORE, store them durably, sort them as they arrive.

See :mod:`breastlab.pacs.listen` and ``docs/pacs.md``.
"""
from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add ``listen`` to the app."""

    @app.command("listen")
    def listen(
        store: Path = typer.Option(..., "--store", help="Where received instances are kept (STORE/<study>/<series>/)."),
        out: Path = typer.Option(..., "--out", "-o", help="Sorting outputs, one folder per study."),
        port: int = typer.Option(11112, "--port", min=1, max=65535, help="TCP port to listen on."),
        host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
        aet: str = typer.Option("BREASTLAB", "--aet", help="Our AE title."),
        allow_aet: list[str] | None = typer.Option(None, "--allow-aet",
                                                   help="Accept only these calling AE titles [default: any]."),
        any_called_aet: bool = typer.Option(False, "--any-called-aet",
                                            help="Accept associations that call any AE title [default: only --aet]."),
        allow_host: list[str] | None = typer.Option(
            None, "--allow-host", help="Accept C-STORE only from these addresses (default: loopback)."),
        quiet: float = typer.Option(10.0, "--quiet-seconds", min=0.0,
                                    help="Sort a study once nothing arrived for it this long."),
        forward: str | None = typer.Option(None, "--forward",
                                           help="dicom://AET@host:port to forward sorted studies [default: none]."),
        forward_label: list[str] | None = typer.Option(
            None, "--forward-label", help="Forward only image sets with this label (repeatable; default all)."),
        write_back: str | None = typer.Option(None, "--write-back",
                                              help="PACS URL to store each study's result SR [default: none]."),
        calling_aet: str = typer.Option("BREASTLAB", "--calling-aet", help="Our AE title when sending."),
        keep_phi: bool = typer.Option(False, "--keep-phi", help="Write patient name and ID into the outputs."),
        timeout: float = typer.Option(60.0, "--timeout", min=0.1, help="Seconds per association when sending."),
        max_seconds: float | None = typer.Option(None, "--max-seconds", min=0.1,
                                                 help="Stop after this long [default: run until Ctrl-C]."),
        max_instance_mb: float = typer.Option(4096.0, "--max-instance-mb", min=0.001,
                                              help="Refuse larger instances (status A700, out of resources)."),
    ) -> None:
        """Receive studies (C-STORE SCP), sort each after a quiet time, optionally forward and write back an SR."""
        import logging

        from breastlab.pacs.address import parse_pacs_url
        from breastlab.pacs.errors import PacsError
        from breastlab.pacs.listen import Listener, ListenConfig

        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
        for noisy in ("pynetdicom", "highdicom"):  # per-PDU chatter; highdicom names the modules it copies
            logging.getLogger(noisy).setLevel(logging.WARNING)
        from breastlab.core.errors import RunFailed, UsageError

        try:
            for url in (forward, write_back):
                if url:
                    parse_pacs_url(url)
            if forward and not forward.startswith("dicom://"):
                raise PacsError("--forward takes a DIMSE URL: dicom://AET@host:port")
            for name, folder in (("--store", store), ("--out", out)):
                if folder.exists() and not folder.is_dir():
                    raise PacsError(f"{name} {folder} exists and is not a folder")
        except PacsError as exc:
            raise UsageError(str(exc)) from None
        config = ListenConfig(
            store_dir=store, out_dir=out, port=port, host=host, aet=aet, allowed_aets=tuple(allow_aet or ()),
            check_called_aet=not any_called_aet,
            allowed_hosts=tuple(allow_host or ("127.0.0.1", "::1")), quiet_seconds=quiet, forward=forward,
            forward_labels=tuple(forward_label or ()), write_back=write_back, calling_aet=calling_aet,
            keep_phi=keep_phi, timeout=timeout, max_seconds=max_seconds,
            max_instance_bytes=int(max_instance_mb * (1 << 20)),
        )
        try:
            Listener(config).run()
        except OSError as exc:
            raise RunFailed(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
