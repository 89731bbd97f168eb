"""Where our packages are and what they are imported as: top-level folders (`policy/`,
imported as `policy`) or, once moved, folders under `schoolgate/` (imported as
`schoolgate.policy`; docs/architecture-names.md). The guards ask here, so they hold in both."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CLI = "schoolgate"  # the command line's package, and the one installed name


def package_dir(package: str) -> Path:
    """Where `package`'s folder is: top level, or under schoolgate/."""
    top = ROOT / package
    return top if package == CLI or top.is_dir() else ROOT / CLI / package


def import_prefix(package: str) -> str:
    """The name `package` is imported by: `policy` at top level, `schoolgate.policy` under
    schoolgate/."""
    return package if package_dir(package) == ROOT / package else f"{CLI}.{package}"
