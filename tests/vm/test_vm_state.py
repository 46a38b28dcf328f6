"""Where VMs stand, as ``/ready``'s ``vm`` check and ``ember status`` say it: libvirt's and
QEMU's versions, the image's kernel and the acceleration once known; what is missing when VMs
cannot run, without ever failing readiness. Nothing here boots a VM."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi.testclient import TestClient
from typer.testing import CliRunner

from ember.cli.main import app as cli
from ember.serve_app import create_app
from ember.vm.image import GuestImage
from ember.vm.runner import _boot_id
from tests.support.app import migrated_context

LOOPBACK = ("127.0.0.1", 50000)


def vm_detail(home: Path, **settings: str) -> dict[str, object]:
    with (
        migrated_context(home, **settings) as context,
        TestClient(create_app(context), client=LOOPBACK) as client,
    ):
        response = client.get("/ready")
    assert response.status_code == 200
    check: dict[str, object] = response.json()["checks"]["vm"]
    return check


def test_ready_names_the_hypervisor_the_image_and_the_acceleration(
    hypervisor: object, built_image: GuestImage, tmp_path: Path
) -> None:
    work = tmp_path / "vms"
    settings = {"EMBER_VM_IMAGE": str(built_image.directory), "EMBER_VM_WORK_DIR": str(work)}
    check = vm_detail(tmp_path / "home", **settings)
    release = built_image.manifest["kernel_release"]
    assert check["ok"] is True
    assert str(check["detail"]).startswith("libvirt ")
    assert f"image {release}" in str(check["detail"])
    assert "accel not known until the first VM" in str(check["detail"])
    work.mkdir()
    (work / "accel.json").write_text(json.dumps({"boot_id": _boot_id(), "accel": "tcg"}))
    assert str(vm_detail(tmp_path / "home", **settings)["detail"]).endswith("accel tcg")
    (work / "accel.json").write_text(json.dumps({"boot_id": "an earlier boot", "accel": "kvm"}))
    assert "not known" in str(vm_detail(tmp_path / "home", **settings)["detail"])


def test_without_an_image_vms_are_unavailable_but_ember_is_ready(tmp_path: Path) -> None:
    missing = tmp_path / "no-image"
    check = vm_detail(tmp_path / "home", EMBER_VM_IMAGE=str(missing))
    assert check["ok"] is True
    assert str(check["detail"]).startswith("unavailable: ")
    assert "ember vm image build" in str(check["detail"]) or "libvirt" in str(check["detail"])


def test_ember_status_shows_the_vm_row(
    hypervisor: object, built_image: GuestImage, tmp_path: Path
) -> None:
    env = {
        "EMBER_HOME": str(tmp_path / "home"),
        "EMBER_VM_IMAGE": str(built_image.directory),
        "EMBER_RAY_ADDRESS": "127.0.0.1:1",
        "EMBER_SERVER_PORT": "1",
    }
    result = CliRunner().invoke(cli, ["status"], env=env)
    row = next(line for line in result.output.splitlines() if " vm " in f" {line} ")
    assert "ok" in row and "libvirt" in row, result.output
