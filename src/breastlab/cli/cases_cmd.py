"""CLI: ``breastlab cases INPUT... --out cases.csv`` assembles four-view (or one-view) cases.

See ``docs/cases.md`` for accepted view names, policies, the manifest format and privacy.
"""
from __future__ import annotations

from pathlib import Path

import typer

from breastlab.core.vocab import DuplicatePolicy, GroupBy, MissingPolicy, ViewSetName


def register(app: typer.Typer) -> None:
    """Add ``cases`` to the app."""

    @app.command("cases")
    def cases(
        inputs: list[Path] = typer.Argument(
            None, help="DICOM or image folders/files (optional with --manifest)."
        ),
        out: Path = typer.Option(Path("cases.csv"), "--out", "-o",
                                 help="Case table to write; problems go to <out>_problems.csv."),
        views: str | None = typer.Option(
            None, "--views", help="Comma list of views, e.g. LCC,RCC,LMLO,RMLO (default)."
        ),
        view_set: ViewSetName | None = typer.Option(
            None, "--view-set", help="Preset: bsgi4, mammo4 (four views), cc2, mlo2, single (one image per case)."
        ),
        manifest: Path | None = typer.Option(
            None, "--manifest", "-m", help="CSV: path plus case/patient id, view, label columns."
        ),
        labels: Path | None = typer.Option(
            None, "--labels", help="CSV of labels by case/patient id or case folder (default: INPUT/labels.csv if present)."
        ),
        label_map: str | None = typer.Option(
            None, "--label-map", help="Extra label names, e.g. 'normal=0' or 'normal=drop'."
        ),
        missing: MissingPolicy = typer.Option(
            MissingPolicy.ERROR, "--missing", help="A case lacks a view: stop with an error, drop the case, "
            "copy the other side's view, or leave the channel blank."
        ),
        duplicates: DuplicatePolicy = typer.Option(
            DuplicatePolicy.ERROR, "--duplicates", help="Two files for one view: error, keep the first, or drop the case."
        ),
        group_by: GroupBy = typer.Option(
            GroupBy.STUDY, "--group-by", help="DICOM cases: study (PatientID+StudyInstanceUID), patient or folder."
        ),
        keep_phi: bool = typer.Option(False, "--keep-phi", help="Write real patient/case ids instead of pseudonyms."),
        salt: str = typer.Option("", "--salt", envvar="BREASTLAB_PSEUDONYM_SALT",
                                 help="Secret mixed into pseudonyms (makes them hard to reverse)."),
        workers: int | None = typer.Option(None, "--workers", "-j", min=1,
                                           help="Header-reading processes [default: one per CPU]."),
        progress: bool = typer.Option(True, "--progress/--no-progress", help="Progress bar on stderr."),
    ) -> None:
        """Assemble cases: one row per case, one file-path column per view."""
        from rich.console import Console
        from rich.table import Table

        from breastlab.core import atomic
        from breastlab.core.errors import NothingToDo, UsageError
        from breastlab.multiview.cases import (
            PROBLEM_COLUMNS,
            CaseAssemblyError,
            assemble_cases,
            parse_label_map,
            problems_path,
            write_cases,
        )

        inputs = list(inputs or [])
        if not inputs and manifest is None:
            raise UsageError("give INPUT folders/files or --manifest")
        for p in inputs:
            if not p.exists():
                raise UsageError(f"no such file or folder: {p}")
        if manifest is not None and not manifest.is_file():
            raise UsageError(f"no such file: {manifest}")
        if views and view_set:
            raise UsageError("give --views or --view-set, not both")
        try:
            lmap = parse_label_map(label_map)
        except ValueError as exc:
            raise UsageError(f"--label-map: {exc}") from exc

        try:
            table = assemble_cases(
                inputs, view_set=views or view_set, manifest=manifest,
                labels=labels if labels is not None else "auto", label_map=lmap,
                missing=str(missing), duplicates=str(duplicates), group_by=str(group_by),
                keep_phi=keep_phi, salt=salt, workers=workers, progress=progress,
            )
        except CaseAssemblyError as exc:  # the --missing / --duplicates policy refused
            prob = atomic.write_csv(problems_path(out), (p.row() for p in exc.table.problems),
                                    PROBLEM_COLUMNS)
            raise UsageError(f"{exc}; no case table written; problems listed in {prob}") from exc
        except ValueError as exc:  # bad view set, manifest without path column, ...
            raise UsageError(str(exc)) from exc

        if not len(table):
            prob = atomic.write_csv(problems_path(out), (p.row() for p in table.problems), PROBLEM_COLUMNS)
            counts = table.problem_counts()
            reasons = ", ".join(f"{r}: {n}" for r, n in sorted(counts.items()))
            hint = ""  # every file failed on its view: a one-image-per-case data set?
            if counts.get("unparseable-view") and table.view_set.name != "single" and not (
                    set(counts) - {"unparseable-view", "no-usable-view"}):
                hint = ("; no file names a view (CC/MLO, left/right): one image per case? "
                        "use --view-set single")
            raise NothingToDo("no case built from the inputs"
                              + (f" ({reasons})" if reasons else " (no DICOM or image files found)")
                              + hint + f"; no case table written; see {prob}")
        out_csv, prob = write_cases(table, out)
        summary = Table(title=f"breastlab cases: {len(table)} cases ({table.view_set.name}: "
                              f"{', '.join(table.view_names)})")
        summary.add_column("item")
        summary.add_column("count", justify="right")
        counts = table.label_counts()
        summary.add_row("malignant (1)", str(counts.get(1, 0)))
        summary.add_row("benign (0)", str(counts.get(0, 0)))
        summary.add_row("no label", str(counts.get(None, 0)))
        for view in table.view_names:
            n = sum(1 for c in table.cases if c.paths.get(view) and view not in c.filled)
            summary.add_row(f"view {view} (own file)", str(n))
        for source, n in sorted(table.view_sources.items()):
            summary.add_row(f"view found by: {source}", str(n))
        for reason, n in sorted(table.problem_counts().items()):
            summary.add_row(f"[yellow]problem: {reason}[/]", str(n))
        Console().print(summary)
        typer.echo(f"wrote {out_csv} and {prob}" + ("" if keep_phi else " (pseudonymised ids)"))
