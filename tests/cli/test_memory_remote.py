"""Issue 15, defect 18: with an ember running, ``ember ingest``, ``search`` and
``collections`` use its API, so the CLI process never loads the embedding model; with
``--local``, ``--workspace`` or no ember running they work on the local store.

The CLI runs as a real subprocess with ``-X importtime``, so a test can see every module it
imported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.live_app import LiveApp, live_app

pytestmark = pytest.mark.slow

_HEAVY = ("sentence_transformers", "torch")


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApp]:
    with live_app(tmp_path_factory.mktemp("server")) as app:
        yield app


def ember(home: Path, *args: str, token: str | None = None) -> tuple[int, str, set[str]]:
    """Run ``ember ARGS`` under ``home``; its exit code, output and imported modules."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("EMBER_")},
        "EMBER_HOME": str(home),
        "COLUMNS": "200",
        "HF_HUB_OFFLINE": "1",
    }
    if token is not None:
        env["EMBER_TOKEN"] = token
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "ember", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    imported, lines = set(), []
    for line in done.stderr.splitlines():
        if line.startswith("import time:"):
            imported.add(line.rsplit("|", 1)[-1].strip())
        else:
            lines.append(line)
    return done.returncode, done.stdout + "\n".join(lines), imported


def recorded(home: Path, url: str) -> Path:
    """Record ``url`` as served by a live process (this one) in ``home``, as ``ember up``."""
    record = home / "run" / "serve.json"
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps({"url": url, "pid": os.getpid()}))
    return home


def test_memory_commands_go_to_the_running_ember(live: LiveApp, tmp_path: Path) -> None:
    home = recorded(tmp_path / "client", live.url)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "saturn.txt").write_text("Saturn has rings made of ice and rock.")
    (corpus / "mars.md").write_text("# Mars\nMars is the red planet with dusty storms.")
    (corpus / "bad.txt").write_bytes(b"\x00\x01 not text")

    code, out, imported = ember(home, "ingest", str(corpus), "-C", "planets", token=live.token)
    assert code == 1, out
    assert "2 created" in out and "1 failed" in out and "error[binary_document]" in out
    assert not imported & set(_HEAVY), "the CLI loaded the embedding model itself"
    assert {c.name for c in live.services.memory.collections.list()} == {"planets"}

    code, out, imported = ember(
        home, "search", "ringed planet", "-C", "planets", "--explain", token=live.token
    )
    assert code == 0, out
    first = next(line for line in out.splitlines() if line.startswith("│ 1 "))
    assert "saturn.txt" in first
    assert not imported & set(_HEAVY)

    code, out, _ = ember(home, "collections", "list", token=live.token)
    assert code == 0 and "planets" in out
    assert live.services.memory.embedder.model_id in out

    code, out, imported = ember(home, "collections", "reindex", "planets", token=live.token)
    assert code == 0, out
    assert "vectors in index" in out and not imported & set(_HEAVY)

    code, out, _ = ember(home, "collections", "create", "moons", token=live.token)
    assert code == 0 and "created moons" in out
    code, out, _ = ember(home, "collections", "delete", "moons", "--yes", token=live.token)
    assert code == 0 and "deleted moons" in out
    assert {c.name for c in live.services.memory.collections.list()} == {"planets"}


def test_the_servers_answers_keep_their_codes(live: LiveApp, tmp_path: Path) -> None:
    home = recorded(tmp_path / "client", live.url)
    code, out, _ = ember(home, "search", "x", "-C", "nowhere", token=live.token)
    assert code == 1 and "error[collection_not_found]" in out
    code, out, _ = ember(home, "collections", "list", token="not-a-token")
    assert code == 1 and "error[unauthorized]" in out
    code, out, _ = ember(home, "search", "x", "-C", "planets", "--url", "ftp://nowhere")
    assert code == 2 and "--url" in out


def test_local_work_when_asked_or_when_none_runs(live: LiveApp, tmp_path: Path) -> None:
    home = recorded(tmp_path / "client", live.url)
    code, out, _ = ember(home, "collections", "create", "here", "--local")
    assert code == 0 and "created here" in out
    code, out, _ = ember(home, "collections", "list", "--local")
    assert "here" in out
    code, out, _ = ember(home, "collections", "list", "-w", "default2")
    assert code == 0 and "here" not in out
    assert "here" not in {c.name for c in live.services.memory.collections.list()}

    (home / "run" / "serve.json").write_text(json.dumps({"url": live.url, "pid": 999_999_999}))
    code, out, _ = ember(home, "collections", "list")
    assert code == 0 and "here" in out, "a dead ember's record is ignored: local work"
