"""The web UI's built assets (``static/``, made from ``ui/`` in the repository by ``make up``
and ``make test``); served by :mod:`ember.serve_app.ui`."""
