"""``.env.example`` works where people put it: ``source`` in a shell and Docker's ``--env-file``.

Both read it here the way they do (bash itself; Docker's rules: ``KEY=VALUE`` taken literally,
``#`` only at the start of a line), must agree on every value, and the loader must accept the
result as the defaults. A default a shell would mangle is shown commented out; uncommented, it
still parses to the default.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from ember.config import environment_variables, load_config

EXAMPLE = Path(__file__).resolve().parents[2] / ".env.example"
KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def docker_env_file(text: str) -> dict[str, str]:
    """What ``docker run --env-file`` sets: each line not blank and not starting with ``#`` is
    ``KEY=VALUE``, the value taken literally (quotes and ``#`` included)."""
    found: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep and KEY.fullmatch(key), f"line {number} is not KEY=VALUE: {line!r}"
        found[key] = value
    return found


def sourced(path: Path) -> dict[str, str]:
    """The ``EMBER_*`` variables after ``set -a; source PATH`` in a clean bash."""
    bash = shutil.which("bash")
    assert bash is not None, "bash is needed (the Makefile runs it too)"
    done = subprocess.run(
        [bash, "-c", 'set -a; source "$0" || exit 9; env -0', str(path)],
        env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent-home"},
        capture_output=True,
        check=False,
    )
    assert done.returncode == 0 and not done.stderr, done.stderr.decode()
    pairs = (item.split("=", 1) for item in done.stdout.decode().split("\0") if "=" in item)
    return {key: value for key, value in pairs if key.startswith("EMBER_")}


def test_the_shell_and_docker_read_the_same_values_and_the_loader_takes_them() -> None:
    text = EXAMPLE.read_text()
    docker = docker_env_file(text)
    assert sourced(EXAMPLE) == docker
    assert set(docker) <= {*environment_variables(), "EMBER_CONFIG"}
    assert load_config(None, docker) == load_config(None, {})


def test_no_value_carries_an_inline_comment_or_quotes() -> None:
    for key, value in docker_env_file(EXAMPLE.read_text()).items():
        assert "#" not in value and "'" not in value and '"' not in value, key
        assert value == value.strip(), key


def test_every_variable_is_there_and_a_commented_default_parses_to_the_default() -> None:
    text = EXAMPLE.read_text()
    shown = dict(docker_env_file(text))
    for line in text.splitlines():
        match = re.fullmatch(r"# (EMBER_[A-Z0-9_]+)=(.*)", line)
        if match:
            shown[match[1]] = match[2]
    assert set(environment_variables()) <= set(shown)
    defaults = load_config(None, {})
    for line in text.splitlines():
        match = re.fullmatch(r"# (EMBER_[A-Z0-9_]+)=(.*)", line)
        if match:
            assert load_config(None, {match[1]: match[2]}) == defaults, line
