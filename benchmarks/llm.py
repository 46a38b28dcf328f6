"""What ember's LLM gateway costs: per token against llama-cpp-python, per request against the
LiteLLM proxy, each ratio from one run.

Part ``throughput``: ``ember up`` on its defaults (the bundled Gemma 3 270M in a ModelHost
actor) and, in this process, llama-cpp-python on the same file with the same threads; greedy
completions of one prompt alternate between ``/v1/completions`` (streamed, one SSE chunk per
token) and the direct call. Tokens/s counts from the first token to the last; time to first
token is from the request. Target: ember at or above 95 % of direct tokens/s.

Part ``router_overhead``: one instant OpenAI-compatible upstream (a raw ASGI app under uvicorn,
in its own process, answering every ``POST /v1/chat/completions`` with the same tiny
completion) and, one after the other, each proxy forwarding ``/v1/chat/completions`` to it:

- ``litellm``: the LiteLLM proxy (``litellm --config``) from its own virtualenv
  (``benchmarks/litellm_env.sh`` builds it), one model ``bench-model`` mapped to the upstream;
- ``ember``: ``ember up`` with one OpenAI-compatible provider instance ``bench`` at the
  upstream and the alias ``bench-model`` for ``bench/fake-model``, bundled models off; traces
  on, every request sampled, kept in the EventHub's store (the defaults);
- ``ember-untraced``: the same with ``tracing.enabled: false``, so ember against itself shows
  what tracing costs.

LiteLLM refuses to start without a master key, so it checks one on every request; ember serves
the loopback client as its dev principal, with no token.

Both proxies run at once. At each level of concurrent clients (one ``httpx.AsyncClient`` per
client and target, keep-alive, non-streaming, a one-line prompt), after a warm-up, the direct
calls (the baseline) and each proxy take turns: ``--turns`` rounds of ``requests / turns``
calls each, so a noisy moment of the shared machine falls on all of them alike; ``added`` is
proxy minus direct over all the rounds. Both proxies log at WARNING or above and have no
rate limits.

    bash benchmarks/litellm_env.sh          # once: LiteLLM in .venv-bench-litellm
    .venv/bin/python benchmarks/llm.py [--parts throughput router_overhead]
        [--targets litellm ember ember-untraced] [--levels 1 8 32] [--requests 1000] [--warmup 100]
        [--turns 5] [--tokens 128] [--rounds 5] [--out results.json]

Each part is a function ``(args) -> dict`` in :data:`PARTS`; its dict goes under its name in
the ``--out`` JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx

try:
    from benchmarks._stats import percentile
except ModuleNotFoundError:  # run as ``python benchmarks/X.py``: this folder is on sys.path
    from _stats import percentile

ROOT = Path(__file__).resolve().parent.parent
MODEL = "bench-model"
UPSTREAM_MODEL = "fake-model"
PROMPT = [{"role": "user", "content": "Say ok."}]
BUNDLED = "gemma3-270m"
THROUGHPUT_PROMPT = "Once upon a time, in a small village by the sea,"
KEY = "sk-bench-0123456789abcdef0123456789abcdef"
"""LiteLLM's master key (it refuses to start without one); every request sends it."""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- the upstream -----------------------------------------------------------------------------


async def _upstream_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """An OpenAI-compatible server that answers at once: chat completions and the model list."""
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    body: dict[str, Any]
    if scope["path"] == "/v1/models":
        body = {"object": "list", "data": [{"id": UPSTREAM_MODEL, "object": "model"}]}
    elif scope["path"] == "/v1/chat/completions" and scope["method"] == "POST":
        body = {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": 0,
            "model": UPSTREAM_MODEL,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "ok"},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 4, "completion_tokens": 1, "total_tokens": 5},
        }
    else:
        body = {"error": {"message": "not found", "type": "invalid_request_error"}}
    payload = json.dumps(body).encode()
    status = 404 if "error" in body else 200
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(payload))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


def _serve_upstream(port: int) -> None:
    import uvicorn

    uvicorn.run(_upstream_app, host="127.0.0.1", port=port, log_level="error", access_log=False)


@contextmanager
def upstream() -> Iterator[str]:
    """The instant upstream in its own process; yields its base URL (``.../v1``)."""
    port = _free_port()
    server = multiprocessing.get_context("spawn").Process(
        target=_serve_upstream, args=(port,), daemon=True
    )
    server.start()
    try:
        _wait_ok(f"http://127.0.0.1:{port}/v1/models", 30, lambda: server.is_alive())
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.terminate()
        server.join()


# --- the proxies ------------------------------------------------------------------------------


def _wait_ok(url: str, timeout_s: float, alive: Callable[[], bool]) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError(f"the server for {url} exited")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} was not ready within {timeout_s:.0f}s")


@contextmanager
def _process(
    command: list[str], env: dict[str, str], log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """A server in its own session (so its children stop with it), output to ``log``."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            yield process
        finally:
            _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    for sig, wait_s in ((signal.SIGINT, 60.0), (signal.SIGKILL, 10.0)):
        if process.poll() is not None:
            return
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(wait_s)
        except subprocess.TimeoutExpired:
            continue


def _tail(log: Path, lines: int = 30) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def litellm_version(venv: Path) -> str:
    """The LiteLLM version installed in ``venv``."""
    if not (venv / "bin" / "litellm").exists():
        raise RuntimeError(f"no LiteLLM in {venv}: run bash benchmarks/litellm_env.sh")
    code = "import importlib.metadata as m; print(m.version('litellm'))"
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


@contextmanager
def litellm_proxy(venv: Path, base_url: str, work: Path) -> Iterator[str]:
    """The LiteLLM proxy with ``bench-model`` mapped to the upstream; yields its URL."""
    config = work / "litellm.yaml"
    entry = {
        "model_name": MODEL,
        "litellm_params": {"model": f"openai/{UPSTREAM_MODEL}", "api_base": base_url}
        | {"api_key": "bench"},
    }
    config.write_text(json.dumps({"model_list": [entry]}))  # JSON is YAML
    port = _free_port()
    env = os.environ | {
        "LITELLM_LOG": "ERROR",
        "LITELLM_MASTER_KEY": KEY,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    }
    command = [str(venv / "bin" / "litellm"), "--config", str(config)]
    command += ["--host", "127.0.0.1", "--port", str(port), "--num_workers", "1"]
    log = work / "litellm.log"
    with _process(command, env, log) as process:
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_ok(f"{url}/health/liveliness", 180, lambda: process.poll() is None)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}\n{_tail(log)}") from exc
        yield url


def upstream_settings(base_url: str) -> dict[str, str]:
    """ember's settings for one provider instance ``bench`` at the upstream, no local models."""
    instance = {"kind": "openai", "base_url": base_url}
    return {
        "EMBER_PROVIDERS_INSTANCES": json.dumps({"bench": instance}),
        "EMBER_MODELS_BUNDLED": "false",
        "EMBER_ROUTER_ALIASES": json.dumps({MODEL: [f"bench/{UPSTREAM_MODEL}"]}),
    }


@contextmanager
def ember_server(work: Path, settings: dict[str, str]) -> Iterator[str]:
    """``ember up`` with ``settings`` over the defaults; yields its URL once ``/ready``."""
    ember = Path(sys.executable).parent / "ember"
    home = work / "ember-home"
    home.mkdir()
    port = _free_port()
    env = os.environ | {
        "EMBER_HOME": str(home),
        "RAY_AUTH_MODE": "disabled",
        "EMBER_RAY_DASHBOARD": "false",
        "EMBER_LOGGING_LEVEL": "WARNING",
        "EMBER_AUTH_RATE_LIMIT_PER_S": "0",
        **settings,
    }
    command = [str(ember), "up", "--config", str(ROOT / "configs" / "default.yaml")]
    command += ["--port", str(port)]
    log = work / "ember.log"
    with _process(command, env, log) as process:
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_ok(f"{url}/ready", 300, lambda: process.poll() is None)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}\n{_tail(log)}") from exc
        yield url


# --- the client -------------------------------------------------------------------------------


async def _load(clients: list[httpx.AsyncClient], requests: int) -> tuple[list[float], float]:
    """``requests`` chat completions spread over ``clients``, each one request at a time:
    the latencies (ms) and the wall time (s)."""
    body = {"model": MODEL, "messages": PROMPT, "max_tokens": 4}
    remaining = requests
    samples: list[float] = []

    async def run(http: httpx.AsyncClient) -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            started = time.perf_counter()
            response = await http.post("/chat/completions", json=body)
            elapsed = (time.perf_counter() - started) * 1000
            if response.status_code != 200:
                raise RuntimeError(f"{http.base_url}: {response.status_code} {response.text[:300]}")
            samples.append(elapsed)

    started = time.perf_counter()
    await asyncio.gather(*(run(http) for http in clients))
    return samples, time.perf_counter() - started


def _check_answer(base_url: str) -> None:
    """One request whose answer must be the upstream's, through whatever is in between."""
    body = {"model": MODEL, "messages": PROMPT, "max_tokens": 4}
    headers = {"authorization": f"Bearer {KEY}"}
    answer = httpx.post(f"{base_url}/chat/completions", json=body, headers=headers, timeout=30)
    answer.raise_for_status()
    text = answer.json()["choices"][0]["message"]["content"]
    if text != "ok":
        raise RuntimeError(f"{base_url} answered {text!r}, not the upstream's 'ok'")


def measure(
    urls: dict[str, str], requests: int, warmup: int, clients: int, rounds: int
) -> dict[str, dict[str, float]]:
    """p50, p99 (ms) and requests/s of chat completions at each of ``urls`` (name to base URL)
    over ``clients`` concurrent clients, each with its own connection per URL, made and warmed
    up before the clock starts (making an httpx client blocks the loop for milliseconds).
    The URLs take turns: ``rounds`` rounds of ``requests / rounds`` each, so a noisy moment
    of the machine falls on all of them alike."""

    async def run() -> dict[str, dict[str, float]]:
        headers = {"authorization": f"Bearer {KEY}"}
        made = {
            name: [
                httpx.AsyncClient(base_url=url, headers=headers, timeout=30) for _ in range(clients)
            ]
            for name, url in urls.items()
        }
        samples: dict[str, list[float]] = {name: [] for name in urls}
        walls: dict[str, float] = dict.fromkeys(urls, 0.0)
        try:
            for group in made.values():
                await _load(group, max(warmup, clients))
            for _ in range(rounds):
                for name, group in made.items():
                    taken, wall_s = await _load(group, max(1, requests // rounds))
                    samples[name].extend(taken)
                    walls[name] += wall_s
        finally:
            for group in made.values():
                await asyncio.gather(*(http.aclose() for http in group))
        return {
            name: {
                "p50_ms": statistics.median(taken),
                "p99_ms": percentile(taken, 0.99),
                "req_per_s": len(taken) / walls[name],
            }
            for name, taken in samples.items()
        }

    return asyncio.run(run())


# --- the parts --------------------------------------------------------------------------------


def router_overhead(args: argparse.Namespace) -> dict[str, Any]:
    """Added latency of each proxy in ``args.targets`` over calling the upstream directly;
    all proxies run at once and take turns with the direct calls at every level."""
    results: dict[str, Any] = {}
    with (
        upstream() as base_url,
        tempfile.TemporaryDirectory(prefix="ember-bench-") as tmp,
        ExitStack() as servers,
    ):
        _check_answer(base_url)
        urls = {"direct": base_url}
        for target in args.targets:
            work = Path(tmp) / target
            work.mkdir()
            found: dict[str, Any] = {}
            try:
                if target == "litellm":
                    found["version"] = litellm_version(args.litellm_venv)
                    server = litellm_proxy(args.litellm_venv, base_url, work)
                else:
                    settings = upstream_settings(base_url)
                    if target == "ember-untraced":
                        settings["EMBER_TRACING_ENABLED"] = "false"
                    server = ember_server(work, settings)
                url = servers.enter_context(server)
                _check_answer(f"{url}/v1")
                urls[target] = f"{url}/v1"
            except Exception as exc:
                found["error"] = str(exc)
                print(f"{target} failed: {exc}", file=sys.stderr)
            results[target] = found
        for clients in args.levels:
            level = measure(urls, args.requests, args.warmup, clients, args.turns)
            for target in urls.keys() - {"direct"}:
                results[target].setdefault("levels", {})[str(clients)] = {
                    "direct": level["direct"],
                    "proxy": level[target],
                    "added_p50_ms": level[target]["p50_ms"] - level["direct"]["p50_ms"],
                    "added_p99_ms": level[target]["p99_ms"] - level["direct"]["p99_ms"],
                }
    return results


def _direct_stream(llama: Any, prompt: str, max_tokens: int) -> tuple[float, float, int]:
    """Time to first token (s), the seconds from the first token to the last, and the tokens
    of one greedy completion streamed by llama-cpp-python in this process."""
    started = time.perf_counter()
    first = last = 0.0
    count = 0
    for chunk in llama.create_completion(
        prompt, max_tokens=max_tokens, temperature=0.0, seed=7, stream=True
    ):
        if chunk["choices"][0].get("text"):
            last = time.perf_counter()
            first = first or last
            count += 1
    return first - started, last - first, count


def _ember_stream(url: str, prompt: str, max_tokens: int) -> tuple[float, float, int]:
    """The same through ember's ``/v1/completions`` stream. A chunk may carry several tokens
    (``models.stream_interval_ms``), so the tokens are the final usage chunk's count; the
    span runs from the first chunk with text to the last."""
    body = {
        "model": BUNDLED,
        "prompt": prompt,
        "max_tokens": max_tokens,
        "temperature": 0.0,
        "seed": 7,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    started = time.perf_counter()
    first = last = 0.0
    count = 0
    with httpx.stream("POST", f"{url}/v1/completions", json=body, timeout=120) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if chunk.get("usage"):
                count = int(chunk["usage"]["completion_tokens"])
            if chunk["choices"] and chunk["choices"][0].get("text"):
                last = time.perf_counter()
                first = first or last
    return first - started, last - first, count


def throughput(args: argparse.Namespace) -> dict[str, Any]:
    """Tokens/s and time to first token of the bundled model through ember's OpenAI streaming
    route against llama-cpp-python called directly in this process, with the same file, the
    same threads (``models.n_threads``) and greedy sampling; runs alternate, direct first."""
    from llama_cpp import Llama

    from ember.config.models import ModelsConfig

    settings = ModelsConfig()
    with tempfile.TemporaryDirectory(prefix="ember-bench-") as tmp:
        work = Path(tmp)
        with ember_server(work, {}) as url:
            path = next((work / "ember-home" / "models").glob("*.gguf"))
            llama = Llama(
                model_path=str(path),
                n_ctx=settings.n_ctx,
                n_threads=settings.n_threads,
                n_threads_batch=settings.n_threads,
                verbose=False,
            )
            _direct_stream(llama, THROUGHPUT_PROMPT, 8)
            _ember_stream(url, THROUGHPUT_PROMPT, 8)
            runs: dict[str, list[tuple[float, float, int]]] = {"direct": [], "ember": []}
            for _ in range(args.rounds):
                runs["direct"].append(_direct_stream(llama, THROUGHPUT_PROMPT, args.tokens))
                runs["ember"].append(_ember_stream(url, THROUGHPUT_PROMPT, args.tokens))
    found: dict[str, Any] = {"tokens": args.tokens, "rounds": args.rounds}
    for side, samples in runs.items():
        found[side] = {
            "ttft_ms": statistics.median(s[0] for s in samples) * 1000,
            "tokens_per_s": statistics.median((s[2] - 1) / s[1] for s in samples if s[1] > 0),
            "tokens": statistics.median(s[2] for s in samples),
        }
    found["ratio"] = found["ember"]["tokens_per_s"] / found["direct"]["tokens_per_s"]
    return found


def _print_throughput(found: dict[str, Any]) -> None:
    print("| path | tokens/s | time to first token ms | tokens |")
    print("| --- | --- | --- | --- |")
    for side in ("direct", "ember"):
        row = found[side]
        print(
            f"| {side} | {row['tokens_per_s']:.1f} | {row['ttft_ms']:.1f} | {row['tokens']:.0f} |"
        )
    print(f"ember / direct tokens/s: {found['ratio']:.3f} (target >= 0.95)")


PARTS: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "router_overhead": router_overhead,
    "throughput": throughput,
}
"""Each part of the benchmark, by name: ``(args) -> results``."""


def _print_overhead(results: dict[str, Any]) -> None:
    print(
        "| proxy | clients | direct p50 ms | proxy p50 ms | added p50 ms | direct p99 ms "
        "| proxy p99 ms | added p99 ms | direct req/s | proxy req/s |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for target, found in results.items():
        name = f"{target} {found['version']}" if "version" in found else target
        if "error" in found:
            print(f"| {name} | failed: {found['error'].splitlines()[0]} |")
            continue
        for clients, level in found["levels"].items():
            direct, proxied = level["direct"], level["proxy"]
            print(
                f"| {name} | {clients} | {direct['p50_ms']:.2f} | {proxied['p50_ms']:.2f} "
                f"| {level['added_p50_ms']:.2f} | {direct['p99_ms']:.2f} "
                f"| {proxied['p99_ms']:.2f} | {level['added_p99_ms']:.2f} "
                f"| {direct['req_per_s']:.0f} | {proxied['req_per_s']:.0f} |"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", choices=sorted(PARTS), default=sorted(PARTS))
    parser.add_argument(
        "--targets",
        nargs="+",
        choices=["litellm", "ember", "ember-untraced"],
        default=["litellm", "ember"],
    )
    parser.add_argument("--levels", nargs="+", type=int, default=[1, 8, 32])
    parser.add_argument("--requests", type=int, default=1000, help="per level and side")
    parser.add_argument("--warmup", type=int, default=100, help="per level and side")
    parser.add_argument("--turns", type=int, default=5, help="rounds the targets alternate in")
    parser.add_argument("--tokens", type=int, default=128, help="tokens per completion")
    parser.add_argument("--rounds", type=int, default=5, help="completions per side")
    parser.add_argument("--litellm-venv", type=Path, default=ROOT / ".venv-bench-litellm")
    parser.add_argument("--out", type=Path, help="write the results here as JSON")
    args = parser.parse_args()

    report: dict[str, Any] = {"args": vars(args)}
    for part in args.parts:
        report[part] = PARTS[part](args)
    if "router_overhead" in report:
        _print_overhead(report["router_overhead"])
    if "throughput" in report:
        _print_throughput(report["throughput"])
    if args.out is not None:
        args.out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    failed = [
        target
        for part in args.parts
        for target, found in report[part].items()
        if isinstance(found, dict) and "error" in found
    ]
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
