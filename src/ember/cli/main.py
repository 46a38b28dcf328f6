"""The ``ember`` command line, assembled: the typer app with every command module's commands,
and :func:`main`, the ``ember`` script.

The commands live in noun-named modules (:mod:`~ember.cli.server`, :mod:`~ember.cli.db`,
:mod:`~ember.cli.memory`, :mod:`~ember.cli.tokens`, :mod:`~ember.cli.models`,
:mod:`~ember.cli.jobs`, :mod:`~ember.cli.agents`), each with a ``register(app)``; what they
share (options, consoles, ``error[code]: detail`` reporting and exit codes) is in
:mod:`ember.cli.common`. Nothing imports this module but ``ember.cli`` itself.
"""

from __future__ import annotations

import typer

from ember.cli import agents, db, jobs, memory, models, server, tokens, vm

__all__ = ["app", "main"]

app = typer.Typer(
    name="ember",
    help="ember: a local-first AI compute cluster on Ray.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

server.register(app)
db.register(app)
memory.register(app)
tokens.register(app)
models.register(app)
jobs.register(app)
agents.register(app)
vm.register(app)


def main() -> None:
    """Entry point of the ``ember`` script."""
    app()
