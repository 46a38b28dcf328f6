"""``ember vm``: commands in throwaway VMs, the guest image, and the VMs of an ember.

``run`` submits a ``vm`` job to a running ember and follows it: the guest's console goes to
stderr, the command's stdout and stderr to ours as they come, and ``ember vm run`` exits with
the command's exit code (``error[vm_timeout]`` and exit 1 past its wall clock). ``--file``
puts a file in the VM's workspace; ``--output DIR`` downloads the files it leaves. ``ps``
lists the VMs; ``image build`` makes the guest image on this machine.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from ember.cli.agents import download_artifacts
from ember.cli.common import (
    ConfigOption,
    TokenOption,
    UrlOption,
    api_client,
    console,
    load,
    notes,
    reported,
)
from ember.cli.jobs_client import Event, follow, json_body
from ember.errors import BadRequest, JobCancelled, error_for_code
from ember.jobs.states import JobState

__all__ = ["register", "vm_app"]

vm_app = typer.Typer(help="Commands in throwaway VMs, and the guest image they boot.")
image_app = typer.Typer(help="The guest image VMs boot (a Debian kernel and an initramfs).")
vm_app.add_typer(image_app, name="image")


def _files(paths: list[Path]) -> dict[str, str]:
    files = {}
    for path in paths:
        try:
            files[path.name] = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise BadRequest(f"{path}: cannot be sent as a text file ({exc})") from exc
    return files


class _Stream:
    """Prints a ``vm`` job's events: the console and states dimmed on stderr, the command's
    output raw on stdout or stderr."""

    def __init__(self, quiet: bool) -> None:
        self._quiet = quiet

    def __call__(self, event: Event) -> None:
        data = event.data
        if event.type != "log":
            return
        message = data.get("message")
        if message == "output":
            out = sys.stdout if data.get("stream") == "stdout" else sys.stderr
            out.write(str(data.get("text", "")))
            out.flush()
        elif not self._quiet and message == "console":
            notes.print(f"[dim]{escape(str(data.get('line', '')))}[/]", highlight=False)
        elif not self._quiet and message == "vm state":
            notes.print(
                f"[dim]vm {data.get('vm')}: {data.get('state')} ({data.get('accel')})[/]",
                highlight=False,
            )


@vm_app.command(
    "run", context_settings={"allow_interspersed_args": False, "ignore_unknown_options": True}
)
def run(
    argv: Annotated[list[str], typer.Argument(help="The command (after `--`) and its arguments.")],
    cpus: Annotated[int | None, typer.Option("--cpus", help="vCPUs (default vm.vcpus).")] = None,
    memory: Annotated[
        int | None, typer.Option("--memory", help="Memory in MiB (default vm.memory_mib).")
    ] = None,
    disk: Annotated[
        int | None, typer.Option("--disk", help="Workspace disk in MiB (default vm.disk_mib).")
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option("--timeout", help="Wall clock in seconds, boot included (vm.timeout_s)."),
    ] = None,
    file: Annotated[
        list[Path] | None,
        typer.Option("--file", "-f", help="Put this text file in the VM's workspace (repeat)."),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Download the files the VM leaves into this dir."),
    ] = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Only the command's own output.")
    ] = False,
    url: UrlOption = None,
    token: TokenOption = None,
    config_path: ConfigOption = None,
) -> None:
    """Run a command in a throwaway VM and exit with its exit code."""
    with reported():
        payload: dict[str, Any] = {"argv": argv, "files": _files(file or [])}
    if not sys.stdin.isatty():
        payload["stdin"] = sys.stdin.read()
    for name, value in (("vcpus", cpus), ("memory_mib", memory), ("disk_mib", disk)):
        if value is not None:
            payload[name] = value
    if timeout is not None:
        payload["timeout_s"] = timeout
    with api_client(url, token, config_path) as client:
        job = json_body(client.call("POST", "/jobs", json={"kind": "vm", "input": payload}))
        if not quiet:
            notes.print(f"job {job['id']}: vm {' '.join(argv)}", highlight=False, markup=False)
        try:
            outcome = follow(client, job["id"], 0, _Stream(quiet))
        finally:
            if output is not None or not quiet:
                download_artifacts(client, job["id"], output)
        if outcome.state == JobState.CANCELLED:
            raise JobCancelled(f"job {job['id']} was cancelled")
        if outcome.state == JobState.FAILED:
            raise error_for_code(outcome.code)(outcome.detail or f"job {job['id']} failed")
        result = json_body(client.call("GET", f"/jobs/{job['id']}/result"))["result"]
    if result.get("stdout_truncated") or result.get("stderr_truncated"):
        notes.print("(output past vm.output_bytes was dropped)", highlight=False)
    raise typer.Exit(int(result["exit_code"]))


@vm_app.command("ps")
def ps(
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 20,
    url: UrlOption = None,
    token: TokenOption = None,
    config_path: ConfigOption = None,
) -> None:
    """List the newest VMs: state, job, node, acceleration and limits."""
    with api_client(url, token, config_path) as client:
        vms = json_body(client.call("GET", "/vms", params={"limit": limit}))["vms"]
    table = Table("vm", "state", "job", "node", "accel", "cpus", "memory", "disk", "error")
    for vm in vms:
        table.add_row(
            vm["id"],
            vm["state"],
            vm["job_id"] or "-",
            vm["node"],
            vm["accel"],
            str(vm["vcpus"]),
            f"{vm['memory_mib']} MiB",
            f"{vm['disk_mib']} MiB",
            vm["error_code"] or "",
        )
    console.print(table)


@image_app.command("build")
def build(
    kernel_package: Annotated[
        str, typer.Option(help="The Debian kernel package (a metapackage is resolved).")
    ] = "linux-image-cloud-amd64",
    kernel_deb: Annotated[
        Path | None, typer.Option(help="Use this kernel .deb instead of downloading one.")
    ] = None,
    busybox_deb: Annotated[
        Path | None, typer.Option(help="Use this busybox-static .deb instead of downloading.")
    ] = None,
    root_deb: Annotated[
        list[Path] | None,
        typer.Option(help="Build the root disk from these .debs instead (repeat)."),
    ] = None,
    root: Annotated[
        bool,
        typer.Option(help="Add the read-only root disk (Python, a shell, the core tools)."),
    ] = True,
    out: Annotated[
        Path | None, typer.Option(help="Where to put the image (default: vm.image).")
    ] = None,
    config_path: ConfigOption = None,
) -> None:
    """Build the guest image: download the kernel, busybox-static and the root disk's
    packages (apt-get download), then make the initramfs with ember's guest agent and the
    root disk."""
    from ember.vm.image import GuestImageBuilder, fetch_packages, fetch_root_packages

    with reported():
        config = load(config_path)
        target = (out or config.vm_image_dir).expanduser().resolve()
        debs = [kernel_deb, busybox_deb]
        if None in debs:
            fetched = fetch_packages(target.parent / "debs", kernel_package)
            debs = [given or got for given, got in zip(debs, fetched, strict=True)]
        kernel, busybox = (Path(str(deb)) for deb in debs)
        roots: list[Path] = []
        if root:
            roots = list(root_deb or fetch_root_packages(target.parent / "debs"))
        image = GuestImageBuilder().build(kernel, busybox, target, roots)
        manifest = image.manifest
        modules = ", ".join(str(m) for m in manifest["modules"])  # type: ignore[attr-defined]
        disk = f"; root disk of {len(roots)} packages" if roots else "; no root disk"
        console.print(
            f"guest image at {image.directory}: kernel {manifest['kernel_release']}, "
            f"modules {modules}{disk}",
            highlight=False,
            markup=False,
        )


def register(app: typer.Typer) -> None:
    """Add ``ember vm`` to ``app``."""
    app.add_typer(vm_app, name="vm")
