"""Optional compiled header walker (``breastlab.dicom._cwalk``, Cython).

Everything else is in pyproject.toml. The extension is built by ``pip install -e .``
(or a wheel build) when Cython and a C compiler are available; when the build fails the
install goes on without it and the pure-Python walker (``breastlab.dicom._parse``) runs:
same records, slower (docs/benchmarks.md).
"""
from __future__ import annotations

import os

from setuptools import setup
from setuptools.command.build_ext import build_ext


class OptionalBuildExt(build_ext):
    """Build the extension if possible; never fail the install because of it."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # noqa: BLE001 - no compiler, no Python headers...
            print(f"breastlab: compiled header walker not built ({exc}); the pure-Python walker is used")

    def build_extension(self, ext) -> None:  # noqa: ANN001
        try:
            super().build_extension(ext)
        except Exception as exc:  # noqa: BLE001
            print(f"breastlab: compiled header walker not built ({exc}); the pure-Python walker is used")


def extensions() -> list:
    if os.environ.get("BREASTLAB_NO_COMPILE"):
        return []
    try:
        from Cython.Build import cythonize
    except ImportError:
        print("breastlab: Cython not available; the pure-Python header walker is used")
        return []
    try:
        return cythonize(["src/breastlab/dicom/_cwalk.pyx"], quiet=True,
                         compiler_directives={"language_level": 3})
    except Exception as exc:  # noqa: BLE001
        print(f"breastlab: Cython failed ({exc}); the pure-Python header walker is used")
        return []


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})
