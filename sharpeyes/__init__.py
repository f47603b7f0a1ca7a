"""sharpeyes — video analytics for Xueliang (雪亮) public-security and e-police traffic cameras.

The source folders stay at the repository root as the design card names them (``api/``,
``pipeline/``, ``models/``, ``streams/``, ``sample_videos/``); this package holds a link to each,
so that they are installed and imported only as ``sharpeyes.api``, ``sharpeyes.pipeline``, … and a
wheel puts exactly one top-level package, ``sharpeyes``, into site-packages (see docs/LAYOUT.md).
"""

__version__ = "0.2.0"
