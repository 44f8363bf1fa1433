"""Where the project's files are: the checkout the package is installed from, and the shared fixtures beside it.

Its own module because both the tutorial runner (:mod:`.notebooks`) and the reproductions
(:mod:`.reproduce`) need it, and neither should import the other for a path.
"""

from __future__ import annotations

from pathlib import Path


def repo_root() -> Path:
    """The checkout this package is installed from (editable install)."""
    return Path(__file__).resolve().parents[1]


def shared_fixture(*parts: str) -> Path:
    """A path under ``../shared/fixtures`` beside the repository (it may be absent: check ``exists()``)."""
    return repo_root().parent.joinpath("shared", "fixtures", *parts)
