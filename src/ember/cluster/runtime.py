"""Start or join a Ray cluster, deploy the Serve app, and take it down again.

``ember up`` is :meth:`Runtime.start`, :meth:`Runtime.deploy`, a wait for a signal, then
:meth:`Runtime.stop`. A local cluster started here is shut down on stop; on a joined cluster
only ember's Serve application is deleted. A local cluster's Serve proxy runs ember's
request-id gate (:data:`~ember.serve_app.middleware.PROXY_CALLBACK`) unless
``RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH`` names another callback. A ``quiet`` runtime
(``ember up``'s) leaves what the cluster's processes print in Ray's log folder
(:attr:`ClusterInfo.log_dir`) instead of forwarding it to this process.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import ray
from ray import serve
from ray.exceptions import RayActorError

from ember.config import EmberConfig
from ember.errors import ClusterUnavailable, DeployFailed, PortInUse
from ember.serve_app.deployment import APP_NAME, Booted, boot
from ember.serve_app.middleware import PROXY_CALLBACK, PROXY_CALLBACK_ENV

__all__ = [
    "ClusterInfo",
    "Runtime",
    "check_port_free",
    "check_reachable",
    "quiet_auth_notice",
    "resolve_address",
    "start_serve",
]

_SERVE_LOGGER = "ray.serve"
"""The logger Serve writes to in the driver ("Started Serve", "Application ... is ready")."""
_AUTH_LOGGER = "ray._private.authentication.authentication_token_setup"
"""The logger Ray announces a new local cluster's token authentication on."""


def _not_auth_notice(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith("Token authentication is enabled")


def quiet_auth_notice() -> None:
    """Drop Ray's notice that a cluster it starts has token authentication on (its warning
    that a cluster has none stays); idempotent."""
    auth = logging.getLogger(_AUTH_LOGGER)
    if _not_auth_notice not in auth.filters:
        auth.addFilter(_not_auth_notice)


@dataclass(frozen=True, slots=True)
class ClusterInfo:
    """Where the cluster is and whether this process started it."""

    address: str
    dashboard_url: str | None
    started_here: bool
    log_dir: str | None = None
    """This node's Ray log folder (``<session dir>/logs``): every Ray worker on this node
    (Serve's proxy, controller and replicas, job workers, model hosts) writes its stdout and
    stderr to ``worker-*.out`` and ``worker-*.err`` there, ember's JSON lines included;
    ``None`` when Ray did not say (a Ray Client connection, ``ray://``)."""


def check_port_free(host: str, port: int) -> None:
    """:raises PortInUse: something listens on ``host:port``.

    Serve's proxy binds with ``SO_REUSEPORT``, so a second ember on a taken port would
    silently share it with the first; this plain bind finds that out before start-up.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                raise PortInUse(
                    f"{host}:{port} is already in use; stop what listens there or choose "
                    "another port (--port or EMBER_SERVER_PORT)"
                ) from exc
            raise


def resolve_address(address: str) -> str:
    """``address``, with ``auto`` replaced by the address Ray would connect to for it:
    ``$RAY_ADDRESS``, else a Ray cluster running on this machine, else the one last started
    here (the file ``ray_current_cluster`` in Ray's temp directory, ``$RAY_TMPDIR/ray`` or
    ``/tmp/ray``, which Ray leaves behind when a cluster dies). Ray's own lookup is used.

    :raises ClusterUnavailable: ``auto``, and no Ray cluster is found.
    """
    if address != "auto":
        return address
    from ray._private import services

    try:
        found: str | None = services.get_ray_address_from_environment("auto", None)
    except ConnectionError as exc:
        raise ClusterUnavailable(f"Ray is not running: {exc}") from exc
    return found or address


def check_reachable(address: str, timeout_s: float = 3.0) -> str:
    """The address to connect to (``auto`` resolved, see :func:`resolve_address`), once
    something answers there.

    ``ray.init`` waits minutes on an address where nothing listens (``auto`` included, when
    it leads to a cluster that is gone); a plain TCP connect finds out in at most
    ``timeout_s``. Other symbolic addresses are left to Ray.

    :raises ClusterUnavailable: nothing answers at the ``host:port`` address, or ``auto``
        finds no cluster.
    """
    resolved = resolve_address(address)
    target = resolved.removeprefix("ray://")
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        return resolved
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as exc:
        if resolved != address:
            raise ClusterUnavailable(
                f"Ray is not running: no Ray cluster answers at {resolved} (what `{address}` "
                f"leads to, as the last cluster started on this machine): {exc}"
            ) from exc
        raise ClusterUnavailable(f"no Ray cluster answers at {address}: {exc}") from exc
    return resolved


class Runtime:
    """One ember process's hold on a Ray cluster.

    ``quiet``: Ray's own lines stay out of this process's output. What the cluster's workers
    print is not forwarded here (``ray.init(log_to_driver=False)``; it stays in their files
    under :attr:`ClusterInfo.log_dir`), and Serve's INFO lines in this process are off (its
    warnings remain), as is Ray's notice that a cluster it starts has token authentication
    on (its warning that one has none is kept). Otherwise Ray's default holds
    (``$RAY_LOG_TO_DRIVER``, else on): it forwards every worker's lines, prefixed with the
    actor and its pid, to this process's stdout and stderr.
    """

    def __init__(self, config: EmberConfig, *, quiet: bool = False) -> None:
        self._config = config
        self._quiet = quiet
        self._info: ClusterInfo | None = None
        self._booted: Booted | None = None

    def start(self) -> ClusterInfo:
        """Join ``ray.address`` (or ``$RAY_ADDRESS``), else start a local cluster.

        :raises ClusterUnavailable: the cluster cannot be reached or started.
        """
        address = self._config.ray.address or os.environ.get("RAY_ADDRESS")
        try:
            context = self._init(address)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = address or "a new local cluster"
            raise ClusterUnavailable(f"cannot start or join {where}: {exc}") from exc
        dashboard = context.dashboard_url or None
        session = (getattr(context, "address_info", None) or {}).get("session_dir")
        self._info = ClusterInfo(
            address=ray.get_runtime_context().gcs_address,
            dashboard_url=f"http://{dashboard}" if dashboard else None,
            started_here=not address,
            log_dir=os.path.join(session, "logs") if session else None,
        )
        return self._info

    def _init(self, address: str | None) -> Any:
        if address:
            reachable = check_reachable(address)
            return ray.init(
                address=reachable,
                namespace="ember",
                logging_level=logging.WARNING,
                log_to_driver=False if self._quiet else None,
            )
        ray_config = self._config.ray
        # The Serve proxy of a cluster started here never echoes an invalid X-Request-ID.
        os.environ.setdefault(PROXY_CALLBACK_ENV, PROXY_CALLBACK)
        if self._quiet:
            quiet_auth_notice()
        return ray.init(
            address="local",
            namespace="ember",
            num_cpus=ray_config.num_cpus,
            include_dashboard=ray_config.dashboard,
            dashboard_host="127.0.0.1",
            dashboard_port=ray_config.dashboard_port,
            logging_level=logging.WARNING,
            log_to_driver=False if self._quiet else None,
        )

    def deploy(self) -> str:
        """Run ember's boot sequence (:func:`~ember.serve_app.deployment.boot`), deploy (or
        update) the Serve app and return its base URL once it is healthy.

        :raises DeployFailed: a replica failed to start.
        """
        server = self._config.server
        if self._quiet:
            logging.getLogger(_SERVE_LOGGER).setLevel(logging.WARNING)
        self._booted = boot(self._config)
        start_serve(lambda: serve.start(http_options={"host": server.host, "port": server.port}))
        try:
            serve.run(self._booted.application, name=APP_NAME, route_prefix="/")
        except RuntimeError as exc:
            raise DeployFailed(f"the Serve app did not start: {exc}") from exc
        return f"http://{server.host}:{server.port}"

    def leave(self) -> None:
        """Disconnect this process; a local cluster started here stops with it, a joined
        cluster and everything on it keep running."""
        self._booted = None
        if ray.is_initialized():
            ray.shutdown()

    def stop(self) -> None:
        """Remove ember's app; shut the cluster down if this process started it."""
        self._booted = None
        if not ray.is_initialized():
            return
        if self._info is not None and self._info.started_here:
            ray.shutdown()
            return
        try:
            serve.delete(APP_NAME)
        finally:
            ray.shutdown()


def start_serve(start: Callable[[], None], attempts: int = 3) -> None:
    """``start`` (Serve's controller and HTTP proxy), again when a proxy died while it started:
    on a loaded machine Serve's controller kills a proxy that is slow to become ready and
    starts another, and the call that waited on the first fails. After ``attempts`` such
    failures, or any other error, the error stands.

    :raises DeployFailed: every attempt lost its proxy.
    """
    for attempt in range(1, attempts + 1):
        try:
            start()
            return
        except RayActorError as exc:
            if attempt == attempts:
                raise DeployFailed(f"Serve's HTTP proxy did not start: {exc}") from exc
            logging.getLogger(__name__).warning(
                "Serve's HTTP proxy died while starting; starting it again (%d of %d)",
                attempt + 1,
                attempts,
            )
