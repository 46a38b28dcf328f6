#!/usr/bin/env bash
# Builds the LiteLLM proxy's own virtualenv for benchmarks/llm.py, apart from ember's .venv:
# LiteLLM pins its own versions of httpx, pydantic, fastapi and openai.
#
#     bash benchmarks/litellm_env.sh [DIR]    # DIR defaults to .venv-bench-litellm
#
# The version is pinned: LiteLLM releases 1.82.7, 1.82.8 and 1.107.0 were compromised on PyPI
# (since removed); move the pin only to a release checked against such advisories. 1.108.7 is
# the newest whose `proxy` extra resolves from the registry this project uses (later ones pin
# post-releases of litellm-enterprise or litellm-proxy-extras, or a litellm-proxy package, that
# it lacks).
set -euo pipefail

LITELLM_VERSION="1.108.7"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${1:-$root/.venv-bench-litellm}"
python="${PYTHON:-python3.11}"

if [[ ! -x "$venv/bin/python" ]]; then
    "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet "litellm[proxy]==$LITELLM_VERSION"
LITELLM_LOCAL_MODEL_COST_MAP=True "$venv/bin/litellm" --version >/dev/null
echo "litellm $LITELLM_VERSION in $venv"
