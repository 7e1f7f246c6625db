"""Material for ``pixlink demo``: a small KB and region queries built from registry packages.

See :mod:`pixlink.demo.materials` and ``docs/demo-materials.md``.
"""
