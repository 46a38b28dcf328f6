"""The Ray namespace ember's named actors live in."""

from __future__ import annotations

__all__ = ["NAMESPACE"]

NAMESPACE = "ember"
