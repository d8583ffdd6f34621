"""lockgate's gateway: the OpenAI-compatible HTTP edge, its config and the CLI."""

__version__ = "0.1.0"
