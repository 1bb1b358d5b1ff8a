"""The persistent header index of ``breastlab sort`` (Parquet parts; see docs/scale.md)."""
