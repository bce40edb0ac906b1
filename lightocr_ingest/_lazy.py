"""Package members imported on first use (PEP 562), for packages whose members pull in heavy
libraries that some processes never use (a Ray render worker needs no LlamaIndex or Qdrant)."""

from __future__ import annotations

import importlib
import sys


def lazy_members(package: str, members: dict[str, str], exported: list[str]):
    """``__getattr__`` and ``__dir__`` for ``package``: ``members`` maps a name to the relative
    module that defines it; any other name is tried as a submodule (``package.name``), as an
    eager import of the submodules used to leave them. A name is imported once, then cached."""

    def __getattr__(name: str):
        if name in members:
            value = getattr(importlib.import_module(members[name], package), name)
        else:
            try:
                value = importlib.import_module(f".{name}", package)
            except ModuleNotFoundError as exc:
                if exc.name != f"{package}.{name}":
                    raise  # the submodule is there, but something it imports is missing
                raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(exported))

    return __getattr__, __dir__
