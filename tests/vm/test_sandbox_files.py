"""The VM sandbox tier's file moves, without a VM: a hostile tar from a guest, what counts as
a change of the workspace, and how read-only paths are staged for the data disk."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from ember.errors import SandboxFailed
from ember.vm.bridge import main, stage_read_only
from ember.vm.sandbox import _fingerprint, _pack, _unpack


def tar_of(*members: tuple[tarfile.TarInfo, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for info, data in members:
            info.size = len(data) if info.isfile() else 0
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return buffer.getvalue()


def entry(name: str, kind: bytes = tarfile.REGTYPE, **fields: object) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    for key, value in fields.items():
        setattr(info, key, value)
    return info


def test_a_guests_tar_brings_back_only_files_and_directories_inside(tmp_path: Path) -> None:
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    (workspace / "old.txt").write_text("gone after")
    data = tar_of(
        (entry("kept.txt"), b"kept"),
        (entry("d", tarfile.DIRTYPE), b""),
        (entry("d/inner.txt"), b"inner"),
        (entry("/etc/evil"), b"x"),
        (entry("../outside"), b"x"),
        (entry("link", tarfile.SYMTYPE, linkname="/etc/passwd"), b""),
        (entry("hard", tarfile.LNKTYPE, linkname="kept.txt"), b""),
        (entry("dev", tarfile.CHRTYPE, devmajor=1, devminor=3), b""),
    )
    skipped = _unpack(data, workspace, tmp_path / "scratch")
    assert sorted(skipped) == ["../outside", "/etc/evil", "dev", "hard", "link"]
    assert sorted(p.relative_to(workspace).as_posix() for p in workspace.rglob("*")) == [
        "d",
        "d/inner.txt",
        "kept.txt",
    ]
    assert (workspace / "kept.txt").read_text() == "kept"
    assert not (tmp_path / "outside").exists() and not (tmp_path / "scratch").exists()


def test_what_is_not_a_tar_fails_and_leaves_the_workspace(tmp_path: Path) -> None:
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    (workspace / "a.txt").write_text("a")
    with pytest.raises(SandboxFailed):
        _unpack(b"not a tar at all" * 100, workspace, tmp_path / "scratch")
    assert (workspace / "a.txt").read_text() == "a"


def test_a_packed_workspace_unpacks_the_same(tmp_path: Path) -> None:
    source = tmp_path / "source"
    (source / "d").mkdir(parents=True)
    (source / "d" / "f.txt").write_text("f")
    (source / "g.bin").write_bytes(bytes(range(256)))
    target = tmp_path / "target"
    target.mkdir()
    assert _unpack(_pack(source), target, tmp_path / "scratch") == []
    assert (target / "d" / "f.txt").read_text() == "f"
    assert (target / "g.bin").read_bytes() == bytes(range(256))


def test_the_fingerprint_changes_with_any_file(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("a")
    before = _fingerprint(tmp_path)
    assert _fingerprint(tmp_path) == before
    (tmp_path / "a.txt").write_text("ab")
    changed = _fingerprint(tmp_path)
    assert changed != before
    (tmp_path / "sub").mkdir()
    assert _fingerprint(tmp_path) != changed


def test_read_only_paths_are_staged_at_their_own_paths(tmp_path: Path) -> None:
    shown = tmp_path / "shown"
    (shown / "pkg").mkdir(parents=True)
    (shown / "pkg" / "m.py").write_text("x = 1\n")
    single = tmp_path / "single.txt"
    single.write_text("one")
    staged = tmp_path / "staged"
    staged.mkdir()
    size = stage_read_only([str(shown), str(single)], staged)
    assert (staged / str(shown).lstrip("/") / "pkg" / "m.py").read_text() == "x = 1\n"
    assert (staged / str(single).lstrip("/")).read_text() == "one"
    assert size >= len("x = 1\n") + len("one")


def test_the_bridge_refuses_a_bad_invocation_and_an_unreadable_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["bridge"]) == 2
    config = tmp_path / "sbx-config-x.json"
    config.write_text("{not json")
    assert main(["bridge", str(config)]) == 125
    assert not config.exists(), "the config is removed once read, readable or not"
    assert "cannot read the bridge's config" in capsys.readouterr().err
