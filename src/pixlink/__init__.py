"""pixlink: link image regions to knowledge-base entities."""

__version__ = "0.1.0"
