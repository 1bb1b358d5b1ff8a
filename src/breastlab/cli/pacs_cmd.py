"""CLI: ``breastlab pacs sort URL --out DIR``: sort PACS studies over DICOMweb (metadata only) or DIMSE.

Credentials: ``BREASTLAB_PACS_USER``/``BREASTLAB_PACS_PASSWORD`` (or ``BREASTLAB_PACS_TOKEN``) or a
netrc entry, never an option. See ``docs/pacs.md``.
"""
from __future__ import annotations

from pathlib import Path

import typer

pacs_app = typer.Typer(help="Work with a PACS: sort studies over DICOMweb or DIMSE, write results back as DICOM.",
                       no_args_is_help=True)

URL_HELP = "DICOMweb root (http://host:8042/dicom-web) or DIMSE dicom://AET@host:port."


def fail(message: str, code: int = 3) -> None:
    """Stop with ``message`` (the handler in ``cli/main.py`` prints it with the command name)."""
    from breastlab.core.errors import NothingToDo, RunFailed, UsageError

    raise {1: NothingToDo, 2: UsageError}.get(code, RunFailed)(message)


def register(app: typer.Typer) -> None:
    """Add the ``pacs`` command group to the app."""
    app.add_typer(pacs_app, name="pacs")


@pacs_app.command("sort")
def sort(
    url: str = typer.Argument(..., metavar="URL", help=URL_HELP),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder: series.csv/json, instances.csv, provenance.json."),
    study: list[str] | None = typer.Option(None, "--study", help="StudyInstanceUID to sort (repeatable)."),
    patient_id: str | None = typer.Option(None, "--patient-id", help="Only studies of this PatientID."),
    accession: str | None = typer.Option(None, "--accession", help="Only studies with this AccessionNumber."),
    date: str | None = typer.Option(None, "--date", help="StudyDate YYYYMMDD or range YYYYMMDD-YYYYMMDD."),
    modality: str = typer.Option("MR", "--modality", help="ModalitiesInStudy filter ('' for any)."),
    write_back: bool = typer.Option(False, "--write-back", help="Store a result SR per study into the same PACS."),
    keep_phi: bool = typer.Option(False, "--keep-phi", help="Write patient name and ID into the outputs."),
    b_threshold: float = typer.Option(400.0, "--b-threshold", min=0.0, help="DWI_low/high split (s/mm²)."),
    timeout: float = typer.Option(60.0, "--timeout", min=0.1, help="Seconds per request / association."),
    ca_bundle: Path | None = typer.Option(None, "--ca-bundle", help="CA bundle for https (or BREASTLAB_PACS_CA_BUNDLE)."),
    calling_aet: str = typer.Option("BREASTLAB", "--calling-aet", help="Our AE title (DIMSE)."),
    max_studies: int = typer.Option(10_000, "--max-studies", min=1, help="Stop after this many studies."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Progress bar on stderr."),
) -> None:
    """Sort PACS studies into labelled image sets (same rules and outputs as `breastlab sort`)."""
    from rich.console import Console

    from breastlab.mri.outputs import summary_table
    from breastlab.pacs.dicomweb import StudyFilter
    from breastlab.pacs.errors import PacsError
    from breastlab.pacs.sort import pacs_sort

    filt = StudyFilter(study_uids=tuple(study or ()), patient_id=patient_id, accession_number=accession,
                       study_date=date, modality=modality or None)
    try:
        result = pacs_sort(url, out, filt=filt, write_back=write_back, keep_phi=keep_phi, b_threshold=b_threshold,
                           timeout=timeout, ca_bundle_path=str(ca_bundle) if ca_bundle else None,
                           calling_aet=calling_aet, max_studies=max_studies, progress=progress)
    except PacsError as exc:
        fail(str(exc), exc.exit_code)
    except OSError as exc:
        fail(f"{type(exc).__name__}: {exc.strerror or exc}")
    console = Console()
    if not console.is_terminal:
        console = Console(width=160)
    console.print(summary_table(result.sets, title=f"breastlab pacs sort: {len(result.sets)} image sets"))
    msg = (f"{len(result.studies)} studies, {len(result.records)} images in {len(result.sets)} image sets; "
           f"{len(result.skipped)} instances skipped; {result.seconds:.1f} s. Outputs in {out}")
    if result.written_back:
        actions = [w["action"] for w in result.written_back]
        stored = len(actions) - actions.count("unchanged")
        msg += f"; {stored} result SR(s) stored on the PACS"
        if stored < len(actions):
            msg += f" ({actions.count('unchanged')} unchanged: nothing written)"
        if "replaced" in actions:
            msg += f" ({actions.count('replaced')} replacing an earlier SR)"
    console.print(msg, soft_wrap=True)
    if not result.records:
        fail("nothing to sort: the PACS studies held no sortable image (see skipped.csv)", 1)


@pacs_app.command("echo")
def echo(
    url: str = typer.Argument(..., metavar="URL", help=URL_HELP),
    timeout: float = typer.Option(10.0, "--timeout", min=0.1, help="Seconds to wait for the answer."),
    ca_bundle: Path | None = typer.Option(None, "--ca-bundle", help="CA bundle for https (or BREASTLAB_PACS_CA_BUNDLE)."),
    calling_aet: str = typer.Option("BREASTLAB", "--calling-aet", help="Our AE title (DIMSE)."),
) -> None:
    """Check that the PACS answers (C-ECHO, or a QIDO-RS query) and accepts our credentials."""
    from breastlab.pacs.errors import PacsError
    from breastlab.pacs.sort import open_pacs

    try:
        pacs = open_pacs(url, timeout=timeout, ca_bundle_path=str(ca_bundle) if ca_bundle else None,
                         calling_aet=calling_aet)
        pacs.echo()
    except PacsError as exc:
        fail(str(exc), exc.exit_code)
    typer.echo(f"ok: {pacs.address.url} answers")
