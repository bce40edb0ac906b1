"""``--runner ray``: the run loop of ``pipeline.run`` reading, chunking and embedding on Ray Data.

``driver`` (``RayIngestor``: the flow, in its docstring), ``dataset`` (the Ray Data plan and what
each stage asks of the cluster), ``ocr_actor`` (one stream of requests over every file) and
``workers`` (rendering, chunking and embedding in worker processes).
"""

from typing import TYPE_CHECKING

from ..._lazy import lazy_members

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time, ``__getattr__`` below
    from .driver import RayIngestor, ray_available

# Imported on first use (PEP 562): a Ray worker imports ``ray_runner.workers``, and with it this
# package, and must not pay for the driver's LlamaIndex and Qdrant.
_LAZY = {"RayIngestor": ".driver", "ray_available": ".driver"}

__all__ = ["RayIngestor", "ray_available"]

__getattr__, __dir__ = lazy_members(__name__, _LAZY, __all__)
