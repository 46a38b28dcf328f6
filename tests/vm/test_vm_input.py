"""The ``vm`` job kind's input, checked at submit: the command, the files, the limits against
the ``vm`` section's caps, unknown fields; the same through the kinds registry (per-field
errors under ``input.``); and the ``vm`` section itself (its caps, its pool, its
directories). Nothing is run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from ember.auth.scopes import Scope
from ember.config import EmberConfig
from ember.config.vm import QEMU_OVERHEAD_MIB, VM_KIND, VMConfig
from ember.errors import ValidationFailed
from ember.jobs.kinds import KindRegistry
from ember.jobs.vm_kind import MAX_FILES_BYTES, VMInput, VMParts, vm_input_model, vm_kind

MODEL = vm_input_model(VMConfig())
LIMITS = ["vcpus", "memory_mib", "disk_mib", "timeout_s"]
ABOVE = {"vcpus": 5, "memory_mib": 2049, "disk_mib": 4097, "timeout_s": 3600.5}
"""One past each default cap (4, 2048, 4096, 3600)."""


def refused(payload: dict[str, Any], model: type[BaseModel] = MODEL) -> list[dict[str, Any]]:
    """The errors of ``payload``, which must not validate."""
    with pytest.raises(ValidationError) as raised:
        model.model_validate(payload)
    return list(raised.value.errors())


def locations(errors: list[dict[str, Any]]) -> set[tuple[Any, ...]]:
    return {tuple(error["loc"]) for error in errors}


def never() -> Any:
    raise AssertionError("validation must not build the runner or the artifact store")


@pytest.fixture
def registry(tmp_path: Path) -> KindRegistry:
    parts = VMParts(
        runner=lambda: never(),
        artifacts=lambda: never(),
        settings=VMConfig(),
        work_root=tmp_path,
    )
    return KindRegistry([vm_kind(parts)])


# -- argv ---------------------------------------------------------------------------------------


def test_a_plain_command_is_accepted_with_defaults() -> None:
    parsed = MODEL.model_validate({"argv": ["echo", "hi", ""]})
    assert isinstance(parsed, VMInput)
    assert parsed.argv == ["echo", "hi", ""]
    assert parsed.files == {} and parsed.env == {} and parsed.stdin is None
    assert all(getattr(parsed, name) is None for name in LIMITS)


@pytest.mark.parametrize(
    "payload",
    [{}, {"argv": []}, {"argv": [""]}, {"argv": "echo hi"}, {"argv": None}],
    ids=["missing", "empty", "empty-command", "a-string", "null"],
)
def test_argv_is_required_and_not_empty(payload: dict[str, Any]) -> None:
    assert locations(refused(payload)) == {("argv",)}


@pytest.mark.parametrize("argv", [["ec\0ho"], ["echo", "a\0b"], ["echo", "ok", "\0"]])
def test_a_nul_in_argv_is_refused(argv: list[str]) -> None:
    errors = refused({"argv": argv})
    assert locations(errors) == {("argv",)}
    assert "NUL" in errors[0]["msg"]


# -- files --------------------------------------------------------------------------------------


def test_relative_file_paths_are_accepted() -> None:
    files = {"a.txt": "x", "dir/b.py": "print(1)", "./c": "", "d/./e": "é"}
    assert MODEL.model_validate({"argv": ["ls"], "files": files}).files == files


@pytest.mark.parametrize(
    "name",
    ["/etc/passwd", "../up", "a/../../b", "a/..", "..", "", "nul\0name", "//x"],
)
def test_absolute_or_climbing_file_paths_are_refused(name: str) -> None:
    errors = refused({"argv": ["ls"], "files": {"ok.txt": "", name: "content"}})
    assert locations(errors) == {("files",)}
    assert "relative" in errors[0]["msg"]


def test_files_are_capped_in_bytes_not_characters() -> None:
    at_cap = {"a": "x" * (MAX_FILES_BYTES - 10), "b": "y" * 10}
    assert MODEL.model_validate({"argv": ["ls"], "files": at_cap}).files == at_cap
    over = {"a": "x" * (MAX_FILES_BYTES - 10), "b": "y" * 11}
    errors = refused({"argv": ["ls"], "files": over})
    assert locations(errors) == {("files",)}
    assert str(MAX_FILES_BYTES) in errors[0]["msg"]
    # "é" is two bytes: half as many characters already reach the cap.
    wide = "é" * (MAX_FILES_BYTES // 2)
    assert MODEL.model_validate({"argv": ["ls"], "files": {"w": wide}}).files == {"w": wide}
    assert locations(refused({"argv": ["ls"], "files": {"w": wide + "é"}})) == {("files",)}


# -- limits -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", LIMITS)
def test_a_limit_above_its_cap_is_refused_by_name(name: str) -> None:
    errors = refused({"argv": ["ls"], name: ABOVE[name]})
    assert locations(errors) == {(name,)}
    assert f"vm.max_{name}" in errors[0]["msg"]


def test_limits_at_their_caps_are_accepted() -> None:
    settings = VMConfig()
    caps = {name: getattr(settings, f"max_{name}") for name in LIMITS}
    parsed = MODEL.model_validate({"argv": ["ls"], **caps})
    assert {name: getattr(parsed, name) for name in LIMITS} == caps


@pytest.mark.parametrize(
    ("name", "low"), [("vcpus", 0), ("memory_mib", 63), ("disk_mib", 7), ("timeout_s", 0)]
)
def test_limits_below_their_floor_are_refused(name: str, low: float) -> None:
    assert locations(refused({"argv": ["ls"], name: low})) == {(name,)}


def test_the_caps_come_from_the_section() -> None:
    roomy = vm_input_model(
        VMConfig(max_vcpus=16, max_memory_mib=8192, max_disk_mib=9000, max_timeout_s=7200)
    )
    big = {"vcpus": 16, "memory_mib": 8192, "disk_mib": 9000, "timeout_s": 7200}
    assert roomy.model_validate({"argv": ["ls"], **big}).vcpus == 16
    assert locations(refused({"argv": ["ls"], **big})) == {(name,) for name in LIMITS}
    tight = vm_input_model(VMConfig(max_vcpus=1))
    assert locations(refused({"argv": ["ls"], "vcpus": 2}, tight)) == {("vcpus",)}
    assert "at most 1 " in refused({"argv": ["ls"], "vcpus": 2}, tight)[0]["msg"]


def test_every_limit_over_its_cap_is_reported_at_once() -> None:
    errors = refused({"argv": ["ls"], **ABOVE})
    assert locations(errors) == {(name,) for name in LIMITS}


@pytest.mark.parametrize("extra", ["network", "image", "VCPUS", "max_vcpus"])
def test_unknown_fields_are_refused(extra: str) -> None:
    errors = refused({"argv": ["ls"], extra: 1})
    assert locations(errors) == {(extra,)}
    assert errors[0]["type"] == "extra_forbidden"


# -- through the kinds registry -----------------------------------------------------------------


def test_the_kind_is_vm_and_needs_vms_run(registry: KindRegistry) -> None:
    kind = registry.get(VM_KIND)
    assert kind.name == "vm" == VM_KIND
    assert kind.scopes == frozenset({Scope.VMS_RUN})
    assert registry.names() == ["vm"]


def test_the_registry_parses_a_good_payload(registry: KindRegistry) -> None:
    parsed = registry.parse("vm", {"argv": ["ls"], "vcpus": 4, "files": {"a": "b"}})
    assert isinstance(parsed, VMInput)
    assert parsed.vcpus == 4 and parsed.files == {"a": "b"}
    stored = registry.validate("vm", {"argv": ["ls"], "timeout_s": 3})
    assert stored["argv"] == ["ls"] and stored["timeout_s"] == 3.0 and stored["vcpus"] is None


def test_the_registry_names_each_bad_field_under_input(registry: KindRegistry) -> None:
    payload = {
        "argv": ["ls"],
        "vcpus": 5,
        "memory_mib": 4096,
        "files": {"/abs": "x"},
        "network": True,
    }
    with pytest.raises(ValidationFailed) as raised:
        registry.parse("vm", payload)
    error = raised.value
    paths = {e["path"] for e in error.errors}
    assert paths == {"input.vcpus", "input.memory_mib", "input.files", "input.network"}
    by_path = {e["path"]: e for e in error.errors}
    assert "vm.max_vcpus" in by_path["input.vcpus"]["message"]
    assert "vm.max_memory_mib" in by_path["input.memory_mib"]["message"]
    assert by_path["input.network"]["type"] == "extra_forbidden"
    assert "input.vcpus" in error.detail
    assert error.status == 422


@pytest.mark.parametrize(
    ("payload", "path"),
    [
        ({}, "input.argv"),
        ({"argv": []}, "input.argv"),
        ({"argv": ["a\0"]}, "input.argv"),
        ({"argv": ["ls"], "files": {"../x": ""}}, "input.files"),
        ({"argv": ["ls"], "timeout_s": 3601}, "input.timeout_s"),
        ({"argv": ["ls"], "disk_mib": 4097}, "input.disk_mib"),
    ],
)
def test_the_registry_refuses_each_bad_input(
    registry: KindRegistry, payload: dict[str, Any], path: str
) -> None:
    with pytest.raises(ValidationFailed) as raised:
        registry.parse("vm", payload)
    assert [e["path"] for e in raised.value.errors] == [path]


def test_the_registry_uses_its_settings_caps(tmp_path: Path) -> None:
    parts = VMParts(
        runner=lambda: never(),
        artifacts=lambda: never(),
        settings=VMConfig(max_vcpus=2, vcpus=1),
        work_root=tmp_path,
    )
    registry = KindRegistry([vm_kind(parts)])
    assert registry.parse("vm", {"argv": ["ls"], "vcpus": 2}).vcpus == 2  # type: ignore[attr-defined]
    with pytest.raises(ValidationFailed) as raised:
        registry.parse("vm", {"argv": ["ls"], "vcpus": 3})
    assert [e["path"] for e in raised.value.errors] == ["input.vcpus"]
    assert list(tmp_path.iterdir()) == []


# -- the vm section -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [("vcpus", 8), ("memory_mib", 4096), ("disk_mib", 8192), ("timeout_s", 7200.0)],
)
def test_a_default_above_its_cap_is_refused(field: str, value: float) -> None:
    with pytest.raises(ValidationError, match=f"{field} .* is above max_{field}"):
        VMConfig(**{field: value})
    assert getattr(VMConfig(**{field: value, f"max_{field}": value}), field) == value


def test_supervisors_max_may_not_be_below_min() -> None:
    with pytest.raises(ValidationError, match="supervisors_max"):
        VMConfig(supervisors_min=3, supervisors_max=2)
    same = VMConfig(supervisors_min=2, supervisors_max=2)
    assert same.scaling.fixed


def test_the_vm_pool_reserves_memory_for_its_vms() -> None:
    pool, slots = EmberConfig().job_pool("vm")
    settings = VMConfig()
    assert slots == settings.vms_per_supervisor == 2
    assert pool.memory_bytes == 2 * (256 + 64) * 1024 * 1024
    assert pool.memory_bytes == (
        settings.vms_per_supervisor * (settings.memory_mib + QEMU_OVERHEAD_MIB) * 1024 * 1024
    )
    assert (pool.min_size, pool.max_size) == (settings.supervisors_min, settings.supervisors_max)
    assert pool.target_per_worker == slots
    assert pool.num_cpus == settings.supervisor_num_cpus


def test_the_vm_pool_follows_the_section() -> None:
    config = EmberConfig(
        vm=VMConfig(
            vms_per_supervisor=3,
            memory_mib=512,
            supervisors_min=1,
            supervisors_max=4,
            supervisor_num_cpus=2,
        )
    )
    pool, slots = config.job_pool("vm")
    assert slots == 3
    assert pool.memory_bytes == 3 * (512 + 64) * 1024 * 1024
    assert (pool.min_size, pool.max_size, pool.num_cpus) == (1, 4, 2.0)
    other, _ = config.job_pool("ingest")
    assert other == config.jobs.scaling
    assert other != pool


def test_the_vm_work_dir_is_per_home_under_var_tmp(tmp_path: Path) -> None:
    one = EmberConfig(home=tmp_path / "one").vm_work_dir
    two = EmberConfig(home=tmp_path / "two").vm_work_dir
    assert one != two
    for found in (one, two):
        assert found.parent == Path("/var/tmp")
        assert found.name.startswith("ember-vm-")
    assert EmberConfig(home=tmp_path / "one").vm_work_dir == one
    assert EmberConfig(home=tmp_path / "x" / ".." / "one").vm_work_dir == one
    assert str(tmp_path) not in str(one)


def test_a_configured_vm_work_dir_wins(tmp_path: Path) -> None:
    chosen = tmp_path / "vms"
    config = EmberConfig(home=tmp_path / "home", vm=VMConfig(work_dir=chosen))
    assert config.vm_work_dir == chosen.resolve()
    relative = EmberConfig(vm=VMConfig(work_dir=Path("rel/vms"))).vm_work_dir
    assert relative.is_absolute() and relative == Path("rel/vms").resolve()


def test_the_vm_image_dir_defaults_to_the_cache(tmp_path: Path) -> None:
    assert EmberConfig().vm_image_dir == (Path.home() / ".cache/ember/vm/image").resolve()
    chosen = tmp_path / "image"
    assert EmberConfig(vm=VMConfig(image=chosen)).vm_image_dir == chosen.resolve()


@pytest.mark.parametrize(
    "files",
    [{".": "x"}, {"a": "x", "a/b": "y"}, {"d/e": "x", "d/e/f": "y"}],
    ids=["dot", "file-and-dir", "nested-clash"],
)
def test_file_paths_that_cannot_all_be_files_are_refused(files: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        vm_input_model(VMConfig()).model_validate({"argv": ["true"], "files": files})
