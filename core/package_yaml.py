"""YAML files shipped inside the project's packages, read with libyaml's C loader when present.

The pure-Python ``yaml.safe_load`` of ``taxonomy.yaml`` took 0.18 s under cProfile in a whole
``mdsdx diagnose`` run; the C loader accepts the same safe subset.
"""
from __future__ import annotations

from importlib import resources

import yaml

SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def package_yaml(package: str, name: str):
    """The parsed ``name`` shipped in ``package`` (``yaml.safe_load`` semantics), e.g.
    ``package_yaml("core", "taxonomy.yaml")``."""
    return yaml.load(resources.files(package).joinpath(name).read_text("utf-8"), Loader=SafeLoader)  # noqa: S506
