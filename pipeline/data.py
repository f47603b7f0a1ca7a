"""Where sharpeyes finds data it does not ship: the shared folder of models, sample videos and
conformance templates (``$SHARPEYES_SHARED``, else ``shared/`` beside the checkout), and the
sample configs it does ship (the ``sharpeyes.sample_videos`` package). One place, so every
module looks in the same folders in the same order.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

SHARED_ENV = "SHARPEYES_SHARED"
_CHUNK = 1 << 20


def package_root() -> Path:
    """The folder holding ``pipeline/``, ``models/``, … (checkout or site-packages/sharpeyes)."""
    return Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    """``$SHARPEYES_SHARED``, else ``shared/`` beside the checkout (may not exist)."""
    env = os.environ.get(SHARED_ENV)
    return Path(env) if env else package_root().parent / "shared"


def shared_path(*parts: str) -> Path:
    """A path inside :func:`shared_dir` (may not exist)."""
    return shared_dir().joinpath(*parts)


def samples_dir() -> Path:
    """The shipped sample configs and labels (``sample_videos/``)."""
    return package_root() / "sample_videos"


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes (models, evidence files), read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
