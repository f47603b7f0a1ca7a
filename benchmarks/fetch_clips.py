"""Footage the labelled benchmarks use that is not in the shared data folder: found, or fetched.

    python -m benchmarks.fetch_clips [NAME ...] [--list]

A clip is looked for in the shared data folder's ``sample_videos/`` (``$SHARPEYES_SHARED``),
then in the user cache (``<cache>/clips``: ``$SHARPEYES_CACHE/../clips``, by default
``~/.cache/sharpeyes/clips``); missing, it is downloaded from its sources in order, checked
against its pinned sha256 and moved into the cache (a temporary file, then an atomic rename: a
download cut short leaves nothing behind). A source is either the file itself or a Debian
package (``.deb``) that holds it: the package is an ``ar`` archive whose ``data.tar.*`` member
holds the file, read here with the standard library (no ``dpkg`` needed).

Clips (nothing of them is committed to the repository):

* ``vtest.avi`` — 795 pictures, 768 × 576, 10 fps: pedestrians walking across a university
  campus seen from an upper floor (PETS 2009, view 001 of S2.L1; shipped by OpenCV as
  ``samples/data/vtest.avi``). Used by ``tests/data/colour_labels_pets.json``: clothing colours
  on footage the colour rules were never tuned on. The sha256 is that of the copy in Debian's
  ``opencv-doc`` 4.6.0+dfsg-12 (``usr/share/doc/opencv-doc/examples/data/vtest.avi``).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import logging
import os
import shutil
import sys
import tarfile
import tempfile
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from sharpeyes.models.resolve import cache_dir
from sharpeyes.pipeline.data import shared_path

log = logging.getLogger(__name__)

__all__ = ["CLIPS", "ClipSource", "ClipSpec", "FetchError", "clip_cache", "fetch", "locate"]


class FetchError(RuntimeError):
    """A clip could not be found or fetched (the message says what was tried)."""


@dataclass(frozen=True, slots=True)
class ClipSource:
    """Where a clip can be downloaded: the file itself, or ``member`` of a Debian package."""

    url: str
    member: str | None = None  # path inside the package's data archive (``./usr/…``)


@dataclass(frozen=True, slots=True)
class ClipSpec:
    name: str
    sha256: str
    size: int
    sources: tuple[ClipSource, ...]
    origin: str


_OPENCV_DOC = "opencv-doc_4.6.0+dfsg-12_all.deb"
CLIPS: dict[str, ClipSpec] = {
    "vtest.avi": ClipSpec(
        name="vtest.avi",
        sha256="45cddc9490be69345cbdab64ca583be65987e864ca408038e648db99e10516cf",
        size=8131690,
        sources=(
            ClipSource(
                f"https://deb.debian.org/debian/pool/main/o/opencv/{_OPENCV_DOC}",
                "./usr/share/doc/opencv-doc/examples/data/vtest.avi",
            ),
            ClipSource(
                "https://raw.githubusercontent.com/opencv/opencv/4.x/samples/data/vtest.avi"
            ),
        ),
        origin="PETS 2009 S2.L1 view 001, as OpenCV's samples/data/vtest.avi",
    ),
}

_AR_MAGIC = b"!<arch>\n"
_AR_HEADER = 60
_CHUNK = 1 << 20


def clip_cache() -> Path:
    """Where fetched clips are kept: ``clips/`` beside the model cache."""
    return cache_dir().parent / "clips"


def _spec(name: str) -> ClipSpec:
    try:
        return CLIPS[name]
    except KeyError:
        known = ", ".join(sorted(CLIPS))
        raise FetchError(f"unknown clip {name!r} (known: {known})") from None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def locate(name: str) -> Path | None:
    """The clip in the shared folder or the cache, or None (not verified: see :func:`fetch`)."""
    for place in (shared_path("sample_videos", name), clip_cache() / name):
        if place.is_file():
            return place
    return None


def _deb_data(fh: BinaryIO) -> tuple[str, bytes]:
    """The name and bytes of the ``data.tar.*`` member of a Debian package (an ``ar`` archive)."""
    if fh.read(len(_AR_MAGIC)) != _AR_MAGIC:
        raise FetchError("not a Debian package (no ar archive header)")
    while True:
        header = fh.read(_AR_HEADER)
        if len(header) < _AR_HEADER:
            raise FetchError("Debian package without a data.tar member")
        name = header[:16].decode("ascii", "replace").strip().rstrip("/")
        try:
            size = int(header[48:58].decode("ascii").strip())
        except ValueError:
            raise FetchError(f"corrupt ar member header: {header[:16]!r}") from None
        if name.startswith("data.tar"):
            data = fh.read(size)
            if len(data) != size:
                raise FetchError(f"Debian package cut short in {name}")
            return name, data
        fh.seek(size + (size % 2), os.SEEK_CUR)  # members are 2-byte aligned


def extract_from_deb(deb: Path, member: str, out: Path) -> None:
    """Write ``member`` of the package ``deb``'s data archive to ``out``."""
    with deb.open("rb") as fh:
        name, data = _deb_data(fh)
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
            try:
                src = tar.extractfile(member)
            except KeyError:
                src = None
            if src is None:
                raise FetchError(f"{member} is not a file in {deb.name}'s {name}")
            with src, out.open("wb") as dst:
                shutil.copyfileobj(src, dst, _CHUNK)
    except tarfile.TarError as exc:
        raise FetchError(f"cannot read {name} of {deb.name}: {exc}") from exc


def _download(url: str, to: Path, timeout_s: float) -> None:
    with urllib.request.urlopen(url, timeout=timeout_s) as resp, to.open("wb") as dst:
        shutil.copyfileobj(resp, dst, _CHUNK)


def fetch(name: str, *, timeout_s: float = 60.0) -> Path:
    """The clip's path: found (and verified) or downloaded into the cache. Raises
    :class:`FetchError` naming every place tried when no source gives the pinned bytes."""
    spec = _spec(name)
    tried: list[str] = []
    found = locate(name)
    if found is not None:
        digest = _sha256(found)
        if digest == spec.sha256:
            return found
        tried.append(f"{found}: sha256 {digest}, expected {spec.sha256}")
    cache = clip_cache()
    cache.mkdir(parents=True, exist_ok=True)
    for source in spec.sources:
        with tempfile.TemporaryDirectory(dir=cache, prefix=".fetch-") as tmp:
            got = Path(tmp) / "download"
            clip = Path(tmp) / name
            try:
                log.info("downloading %s", source.url)
                _download(source.url, got, timeout_s)
                if source.member is None:
                    got.replace(clip)
                else:
                    extract_from_deb(got, source.member, clip)
            except (OSError, FetchError) as exc:
                tried.append(f"{source.url}: {exc}")
                continue
            digest = _sha256(clip)
            if digest != spec.sha256:
                tried.append(f"{source.url}: sha256 {digest}, expected {spec.sha256}")
                continue
            target = cache / name
            os.replace(clip, target)
            return target
    raise FetchError(f"cannot get {name}: " + "; ".join(tried or ["no source"]))


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", help=f"clips to fetch (default: all of {sorted(CLIPS)})")
    ap.add_argument("--list", action="store_true", help="say where each clip is; fetch nothing")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    names = args.names or sorted(CLIPS)
    failed = 0
    for name in names:
        if args.list:
            spec = _spec(name)
            place = locate(name)
            sys.stdout.write(f"{name}  {place or 'not present'}  ({spec.origin})\n")
            continue
        try:
            sys.stdout.write(f"{name}  {fetch(name)}\n")
        except FetchError as exc:
            sys.stderr.write(f"{exc}\n")
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
