"""Backend modules. Each registers itself with :func:`pixlink.models.register_backend` on
import and imports its heavy libraries only inside its factory."""
