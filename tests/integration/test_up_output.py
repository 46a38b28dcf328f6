"""``ember up`` for real, as a user runs it: its terminal holds its own lines and its summary,
last; what Ray's processes print (Serve's proxy, controller and replica, the model host's
llama.cpp) is in Ray's log folder, which the summary names, with ember's JSON lines from the
replica; an API token used over HTTP is in neither. On Ctrl-C every Ray process it started
is gone."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support.postgres import free_port

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
FORWARDED = re.compile(r"\(\w[\w:.-]* pid=\d+(, ip=[\d.]+)?\)")
"""The prefix Ray puts on a worker's line it forwards to the driver."""
SERVE_CHATTER = ("Started Serve in namespace", "is ready at", "Deploying new version")


def _wait_for(path: Path, text: str, process: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while text not in path.read_text(errors="replace"):
        assert process.poll() is None, f"ember up exited {process.returncode}"
        assert time.monotonic() < deadline, f"no {text!r} within {timeout_s:g} s"
        time.sleep(0.5)


def _ray_processes(session: str) -> list[int]:
    """The processes whose command line names the Ray session ``session``."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and session in (entry / "cmdline").read_text():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def test_ember_up_prints_its_own_lines_and_leaves_rays_in_the_log_folder(tmp_path: Path) -> None:
    port = free_port()
    out, err = tmp_path / "stdout", tmp_path / "stderr"
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "EMBER_RAY_ADDRESS")},
        "EMBER_HOME": str(tmp_path / "home"),
        "EMBER_RAY_DASHBOARD": "false",
        "COLUMNS": "200",
    }
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "ember", "up", "--port", str(port)],
            cwd=REPO,
            env=env,
            stdout=stdout,
            stderr=stderr,
        )
    try:
        _wait_for(out, "ember is up.", process, timeout_s=300)
        url = f"http://127.0.0.1:{port}"
        made = httpx.post(
            f"{url}/tokens",
            json={"name": "watcher", "scopes": ["models:use", "jobs:read"]},
            timeout=60,
        )
        assert made.status_code == 201, made.text
        secret = made.json()["token"]
        auth = {"Authorization": f"Bearer {secret}"}
        chat = {"model": "default", "messages": [{"role": "user", "content": "Hi"}]}
        answered = httpx.post(
            f"{url}/v1/chat/completions", json={**chat, "max_tokens": 4}, headers=auth, timeout=120
        )
        assert answered.status_code == 200, answered.text
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    assert process.returncode == 0

    printed = out.read_text().splitlines()
    summary = [line.strip().partition(" ") for line in printed if line.startswith(" ")]
    rows = {name: value.strip() for name, _, value in summary}
    assert printed[-3:] == ["ember is up. Press Ctrl-C to stop.", "stopping…", "stopped."]
    log_dir = Path(rows["Logs"].split()[0])
    assert log_dir.name == "logs" and log_dir.is_dir()

    stderr_text = err.read_text(errors="replace")
    assert not FORWARDED.search(stderr_text), stderr_text
    assert not any(chatter in stderr_text for chatter in SERVE_CHATTER), stderr_text
    assert "max_restarts > 0" not in stderr_text

    workers = "".join(p.read_text(errors="replace") for p in log_dir.glob("worker-*.err"))
    proxy = next((log_dir / "serve").glob("proxy_*.log")).read_text(errors="replace")
    assert "Proxy starting" in proxy
    assert "llama" in workers, "the model host's llama.cpp lines are in its worker file"
    access = [
        json.loads(line)
        for line in workers.splitlines()
        if line.startswith("{") and '"ember.access"' in line
    ]
    chats = [a for a in access if a["path"] == "/v1/chat/completions"]
    assert [(a["principal"], a["status"]) for a in chats] == [("watcher", 200)]

    every_file = [p for p in log_dir.rglob("*") if p.is_file()]
    assert [str(p) for p in every_file if secret in p.read_text(errors="replace")] == []
    assert secret not in out.read_text() + stderr_text

    session = log_dir.parent.name
    deadline = time.monotonic() + 30
    while _ray_processes(session) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _ray_processes(session) == []
