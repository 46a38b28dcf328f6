"""The HTTP API: a FastAPI app (plain ASGI) and the Ray Serve deployment that hosts it.

Import :mod:`ember.serve_app.deployment` for the Serve shell; the rest never imports Ray.
"""

from ember.serve_app.api import create_app
from ember.serve_app.context import AppContext, build_context
from ember.serve_app.readiness import Check, CheckResult, Readiness

__all__ = ["AppContext", "Check", "CheckResult", "Readiness", "build_context", "create_app"]
