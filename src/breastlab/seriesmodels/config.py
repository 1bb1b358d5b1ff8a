"""Where ``breastlab sort`` finds image models without ``--model`` (light: no torch import).

1. ``$BREASTLAB_MRI_MODEL``: one or more model files separated by ``os.pathsep``;
2. the user configuration ``$BREASTLAB_CONFIG`` or ``~/.config/breastlab/config.toml``::

       [sort]
       model = "/models/site-phase.pt"          # or: models = ["seq.pt", "phase.pt"]

Relative paths in the configuration are relative to the configuration file.
"""
from __future__ import annotations

import os
from pathlib import Path

CONFIG_ENV = "BREASTLAB_CONFIG"
MODEL_ENV = "BREASTLAB_MRI_MODEL"


def config_path() -> Path:
    """The user configuration file: ``$BREASTLAB_CONFIG`` or ``~/.config/breastlab/config.toml``."""
    env = os.environ.get(CONFIG_ENV)
    if env:
        return Path(env).expanduser()
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "breastlab" / "config.toml"


def configured_models() -> list[Path]:
    """Models named by ``$BREASTLAB_MRI_MODEL`` (``os.pathsep``-separated) or ``[sort] models``/``model`` in the config."""
    env = os.environ.get(MODEL_ENV)
    if env:
        return [Path(p).expanduser() for p in env.split(os.pathsep) if p]
    path = config_path()
    if not path.is_file():
        return []
    import tomllib

    with open(path, "rb") as fh:
        cfg = tomllib.load(fh)
    section = cfg.get("sort", {})
    value = section.get("models", section.get("model", []))
    values = [value] if isinstance(value, str) else list(value)
    return [(path.parent / Path(v).expanduser()) if not Path(v).expanduser().is_absolute() else Path(v).expanduser()
            for v in values]
