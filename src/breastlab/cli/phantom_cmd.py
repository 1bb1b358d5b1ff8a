"""CLI: ``breastlab phantom ...`` writes synthetic DICOM for demos and tests.

``phantom_app`` is a Typer sub-app; each phantom kind adds one command to it
(``mri`` here; ``bsgi`` is added by the four-view phantom).
"""
from __future__ import annotations

from pathlib import Path

import typer

from breastlab.core.vocab import DceLayout, PhantomStyle, Vendor

phantom_app = typer.Typer(
    name="phantom",
    help="Write synthetic DICOM (test and demo data only; never for accuracy claims).",
    no_args_is_help=True,
    add_completion=False,
)


@phantom_app.command("mri")
def mri(
    out: Path = typer.Argument(..., help="Output folder (vendor sub-folders, truth.csv)."),
    vendor: list[Vendor] | None = typer.Option(
        None, "--vendor", case_sensitive=False, help="Vendor dialect; repeat for several [default: all three]."
    ),
    slices: int = typer.Option(16, "--slices", min=2, help="Slices per axial series."),
    matrix: int = typer.Option(128, "--matrix", min=32, help="In-plane matrix (square)."),
    seed: int = typer.Option(0, "--seed", help="Random seed: anatomy, lesion, noise and UIDs."),
    strip_headers: bool = typer.Option(
        False, "--strip-headers", help="Keep only pixel data, geometry and UIDs (for image-only tests)."
    ),
    dce_layout: DceLayout = typer.Option(
        DceLayout.AUTO, "--dce-layout", help="auto (per vendor), single (one multi-phase series) or separate."
    ),
    benign: bool = typer.Option(False, "--benign", help="Benign lesion (persistent curve, higher ADC)."),
) -> None:
    """Write a synthetic bilateral breast MRI exam per vendor, with ground truth in truth.csv."""
    from breastlab.core.errors import UsageError
    from breastlab.phantom.mri import VENDORS, write_mri_phantom

    try:
        exam = write_mri_phantom(
            out,
            vendors=tuple(str(v).upper() for v in vendor) if vendor else VENDORS,
            n_slices=slices,
            matrix=matrix,
            seed=seed,
            strip_headers=strip_headers,
            dce_layout=None if dce_layout == DceLayout.AUTO else str(dce_layout),
            lesion_kind="benign" if benign else "malignant",
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    n_series = len({t.series_uid for t in exam.truth})
    typer.echo(
        f"wrote {len(exam.files)} DICOM files in {n_series} series "
        f"({', '.join(exam.vendors)}) to {out}; ground truth: {exam.truth_csv}"
    )


@phantom_app.command("bsgi")
def bsgi(
    out: Path = typer.Argument(..., help="Output folder: caseNNNN/ (4 NM DICOM each), labels.csv, manifest.csv, truth.csv."),
    cases: int = typer.Option(80, "--cases", "-n", min=1, help="Number of four-view cases."),
    malignant_fraction: float = typer.Option(0.4, "--malignant-fraction", min=0.0, max=1.0, help="Share of malignant cases."),
    matrix: int = typer.Option(128, "--matrix", min=32, help="Image matrix (square)."),
    seed: int = typer.Option(0, "--seed", help="Random seed: anatomy, lesions, counts and UIDs."),
    style: PhantomStyle = typer.Option(
        PhantomStyle.DICOM_TAGS, "--style", help="Where the view is written.",
    ),
) -> None:
    """Write synthetic four-view BSGI cases (Poisson counts; benign and malignant uptake)."""
    from breastlab.core.errors import UsageError
    from breastlab.phantom.bsgi import write_bsgi_phantom

    try:
        folder = write_bsgi_phantom(out, n_cases=cases, malignant_fraction=malignant_fraction,
                                    matrix=matrix, seed=seed, vendor_style=str(style), progress=True)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    typer.echo(f"wrote {cases} four-view BSGI cases ({4 * cases} DICOM files) to {folder}; "
               f"labels: {folder / 'labels.csv'} (synthetic: never for accuracy claims)")


def register(app: typer.Typer) -> None:
    """Add the ``phantom`` sub-app to the main ``breastlab`` app."""
    app.add_typer(phantom_app, name="phantom")
