"""The ``ember`` command line (typer, rich output)."""

from ember.cli.main import app, main

__all__ = ["app", "main"]
