"""Dataset loaders: each benchmark's files -> canonical records (:class:`~pixlink.types.Mention`
for linking, :class:`~pixlink.types.Post` for MNER/GMNER), with a :class:`LoadReport` of what was
repaired or could not be read. Submodules are imported on use."""

from .base import LoadReport, LoadResult

__all__ = ["LoadReport", "LoadResult"]
