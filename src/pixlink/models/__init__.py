"""Model roles, backends and profiles. See :mod:`pixlink.models.registry`."""

from .registry import Profile, get_spec, list_backends, register_backend

__all__ = ["Profile", "get_spec", "list_backends", "register_backend"]
