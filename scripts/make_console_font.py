"""Make the console's CJK web font: a WOFF2 subset of Noto Sans CJK SC (SIL OFL 1.1) holding only
the characters the console's pages use, so a client without CJK fonts shows no tofu.

Source: Debian's ``fonts-noto-cjk`` (``NotoSansCJK-Regular.ttc``, face "Noto Sans CJK SC"),
upstream https://github.com/googlefonts/noto-cjk. Without installing the package::

    apt-get download fonts-noto-cjk && dpkg-deb -x fonts-noto-cjk_*.deb /tmp/noto
    python scripts/make_console_font.py \
        --source /tmp/noto/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc

The characters are every non-ASCII character in ``api/rest/web/*.{html,js,css}`` (UI strings in
both languages, the plate provinces and suffixes of ``app.js``), those of the string literals of
the modules whose Chinese texts the API serves for the console to show (:data:`API_TEXTS`: the
标定图 problems' ``message_zh``) plus :data:`EXTRA`. ASCII is left
out on purpose: Latin text keeps the next fonts of the stack. The subset is renamed
"sharpeyes Console CJK" (a modified OFL font does not carry the original's name). Rerun after
adding UI strings; ``tests/test_console_font.py`` fails when a character is missing.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import sys
from pathlib import Path

from fontTools import subset  # type: ignore[import-untyped]
from fontTools.ttLib import TTCollection, TTFont  # type: ignore[import-untyped]

REPO = Path(__file__).resolve().parents[1]
WEB = REPO / "api" / "rest" / "web"
DEFAULT_SOURCE = Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")
DEFAULT_OUT = WEB / "fonts" / "console-cjk.woff2"
FACE = "Noto Sans CJK SC"
FAMILY = "sharpeyes Console CJK"
PS_NAME = "sharpeyesConsoleCJK-Regular"
# all provinces (some are only in the plate pattern the API serves) and plate suffixes
EXTRA = "京沪津渝冀晋蒙辽吉黑苏浙皖闽赣鲁豫鄂湘粤桂琼川贵云藏陕甘青宁新学警港澳挂领使应急民航"
EXTRA += "，。：；、！？（）《》【】“”‘’「」·—…"
PAGE_SUFFIXES = (".html", ".js", ".css")
# modules whose Chinese string literals reach the console through the API
API_TEXTS = (REPO / "pipeline" / "geometry_check.py",)


def literal_characters(path: Path) -> set[str]:
    """The non-ASCII characters of the string literals of a Python module (not its comments)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {
        c
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
        for c in node.value
        if ord(c) > 127
    }


def page_characters(web: Path = WEB) -> set[str]:
    """Every non-ASCII character in the console's pages, plus :data:`EXTRA`."""
    chars = set(EXTRA)
    for path in sorted(web.iterdir()):
        if path.suffix in PAGE_SUFFIXES:
            chars |= {c for c in path.read_text(encoding="utf-8") if ord(c) > 127}
    for module in API_TEXTS:
        chars |= literal_characters(module)
    return {c for c in chars if c.isprintable() and not c.isspace()}


def load_face(source: Path, face: str = FACE) -> TTFont:
    """The face named ``face`` from a collection (.ttc), or the font file itself."""
    if source.suffix.lower() != ".ttc":
        return TTFont(source)
    for font in TTCollection(source).fonts:
        if font["name"].getDebugName(1) == face:
            return font
    raise SystemExit(f"{source}: no face {face!r}")


def rename(font: TTFont) -> None:
    """Give the subset its own family name (OFL: a Modified Version is renamed)."""
    name = font["name"]
    name.removeNames(nameID=16)
    name.removeNames(nameID=17)
    for name_id, value in ((1, FAMILY), (2, "Regular"), (3, f"{PS_NAME};subset"), (4, FAMILY)):
        name.setName(value, name_id, 3, 1, 0x409)
    name.setName(PS_NAME, 6, 3, 1, 0x409)
    if "CFF " in font:
        font["CFF "].cff.fontNames = [PS_NAME]


def make_font(source: Path, out: Path, chars: set[str]) -> list[str]:
    """Write the WOFF2 subset; returns the characters the source font lacks."""
    font = load_face(source)
    cmap = font.getBestCmap()
    missing = sorted(c for c in chars if ord(c) not in cmap)
    options = subset.Options()
    options.flavor = "woff2"
    options.hinting = False
    options.desubroutinize = True
    options.name_IDs = [0, 1, 2, 3, 4, 5, 6, 7, 13, 14]
    options.layout_features = ["*"]
    sub = subset.Subsetter(options)
    sub.populate(unicodes=sorted(ord(c) for c in chars if ord(c) in cmap))
    sub.subset(font)
    rename(font)
    out.parent.mkdir(parents=True, exist_ok=True)
    font.flavor = "woff2"
    font.recalcTimestamp = False  # same input, same bytes
    font.save(out)
    return missing


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="NotoSansCJK-Regular.ttc")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = p.parse_args(argv)
    if not args.source.is_file():
        sys.stderr.write(f"error: {args.source} not found (see the docstring)\n")
        return 1
    chars = page_characters()
    missing = make_font(args.source, args.out, chars)
    data = args.out.read_bytes()
    sys.stdout.write(
        f"{args.out.relative_to(REPO)}: {len(chars) - len(missing)} characters, "
        f"{len(data) / 1024:.1f} KiB, sha256 {hashlib.sha256(data).hexdigest()}\n"
    )
    if missing:
        sys.stdout.write(f"not in {FACE} (left to the next fonts): {''.join(missing)}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
