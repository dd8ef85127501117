"""YAML files shipped inside the project's packages, read with libyaml's C loader when present.

The pure-Python ``yaml.safe_load`` of ``taxonomy.yaml`` alone took 0.18 s, an eighth of a whole
``mdsdx diagnose`` run; the C loader accepts the same safe subset.
"""
from __future__ import annotations

from importlib import resources

import yaml

SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(text: str):
    """``yaml.safe_load`` semantics, C speed."""
    return yaml.load(text, Loader=SafeLoader)  # noqa: S506 - a safe loader


def package_yaml(package: str, name: str):
    """The parsed ``name`` shipped in ``package``, e.g. ``package_yaml("models", "taxonomy.yaml")``."""
    return load_yaml(resources.files(package).joinpath(name).read_text("utf-8"))
