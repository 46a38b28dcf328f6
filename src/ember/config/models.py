"""Configuration models: the schema of ``configs/*.yaml``.

Every model forbids unknown keys, so a typo stops start-up instead of being ignored. Each
field can also be set from the environment as ``EMBER_<SECTION>_<FIELD>`` (see
:mod:`ember.config.loader`); ``home`` is ``EMBER_HOME``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from ember.config.agents import AGENT_KIND, AgentsConfig
from ember.config.pools import PoolConfig
from ember.config.tracing import TracingConfig
from ember.config.vm import VM_KIND, VMConfig

__all__ = [
    "AuthConfig",
    "Budget",
    "DatabaseConfig",
    "EmbeddingsConfig",
    "EmberConfig",
    "JobsConfig",
    "LoggingConfig",
    "MemoryConfig",
    "ModelsConfig",
    "Price",
    "ProviderSpec",
    "ProvidersConfig",
    "RayConfig",
    "RouterConfig",
    "ServeConfig",
    "ServerConfig",
]


EMBEDDING_CALLS_PER_WORKER = 2.0
"""Embedding calls in flight per embedding worker the pool sizes for."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _mapping(value: Any) -> Any:
    """A mapping field's value: a JSON object from the environment is parsed, unset is ``{}``."""
    if value is None:
        return {}
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError as exc:
            raise ValueError(f"not a JSON object: {exc}") from None
    return value


_HOST = re.compile(r"(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.\-]+)(:[0-9]{1,5})?")
"""An entry of ``server.allowed_hosts``: a name, an IPv4 or bracketed IPv6 address, a port."""


def _names(value: Any) -> Any:
    """A list field's value: a JSON list or comma-separated names from the environment."""
    if isinstance(value, str):
        if value.strip().startswith("["):
            return json.loads(value)
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def _not_below(low: str) -> Any:
    """A field validator: the field may not be below the (earlier) field ``low``."""

    def check(cls: type, value: int, info: ValidationInfo) -> int:
        floor = info.data.get(low)
        if floor is not None and value < floor:
            raise ValueError(f"{info.field_name} ({value}) is below {low} ({floor})")
        return value

    return classmethod(check)


class ServerConfig(_Section):
    """Where the HTTP API, the streams and the UI listen."""

    host: str = Field("127.0.0.1", description="Interface the Serve HTTP proxy binds.")
    port: int = Field(8000, ge=1, le=65535, description="Port of the HTTP API and UI.")
    allowed_hosts: list[str] = Field(
        [],
        description="Names (or `name:port`) the `Host` header may carry besides `localhost`, "
        "`127.0.0.1`, `[::1]` and `host`; others get 421 `host_not_allowed` (a list, or "
        "comma-separated in the environment). With a wildcard `host` any IP address passes too.",
    )
    allowed_origins: list[str] = Field(
        [],
        description="Web origins (`https://app.example:8443`) other than ember's own whose "
        "pages may call the API (CORS); a request with another `Origin` gets 403 "
        "`origin_not_allowed`. Empty: same-origin only, no CORS headers.",
    )
    max_body_bytes: int = Field(
        4 * 1024 * 1024,
        ge=1024,
        description="Largest request body, in bytes (413 `request_too_large`, before any work).",
    )
    max_upload_bytes: int = Field(
        80 * 1024 * 1024,
        ge=1024,
        description="Largest body of `POST /collections/{name}/documents` and `/import`, in bytes.",
    )
    max_job_input_bytes: int = Field(
        1024 * 1024,
        ge=2,
        description="Largest `input` of `POST /jobs`, in bytes of compact JSON (413 "
        "`request_too_large`); larger ingests go by `path` or the documents route.",
    )
    max_streams_per_principal: int = Field(
        16,
        ge=1,
        description="Event streams (job SSE and WebSocket) and streamed model answers one "
        "principal may have open at once, per ingress replica (429 `too_many_streams`).",
    )
    probe_cache_s: float = Field(
        2.0,
        ge=0,
        description="Seconds a `/ready` or `/metrics` answer is reused for later calls; 0 "
        "computes each one.",
    )

    @field_validator("allowed_hosts", "allowed_origins", mode="before")
    @classmethod
    def _lists(cls, value: Any) -> Any:
        return _names(value)

    @field_validator("allowed_hosts")
    @classmethod
    def _hosts(cls, hosts: list[str]) -> list[str]:
        for host in hosts:
            if not _HOST.fullmatch(host.strip()):
                raise ValueError(f"{host!r} is not a host name, IP address or name:port")
        return [host.strip().lower() for host in hosts]

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, origins: list[str]) -> list[str]:
        for origin in origins:
            scheme, sep, rest = origin.partition("://")
            if scheme not in ("http", "https") or not sep or not rest or "/" in rest:
                raise ValueError(f"{origin!r} is not an origin like https://app.example:8443")
        return [origin.lower() for origin in origins]


class AuthConfig(_Section):
    """Bearer tokens and per-principal rate limits of the HTTP API."""

    loopback_without_tokens: bool = Field(
        True,
        description="While no API token has ever been created, accept loopback clients "
        "(127.0.0.0/8, ::1) without one as the `local` principal; `false` means every request "
        "needs a token.",
    )
    loopback_after_tokens: bool = Field(
        False,
        description="Let the loopback bypass come back once every token is revoked or expired; "
        "`false` keeps it off for good after the first `ember tokens create`.",
    )
    rate_limit_per_s: float = Field(
        20.0,
        ge=0,
        description="Requests per second each principal may make (token bucket, per ingress "
        "replica); 0 turns rate limiting off.",
    )
    rate_limit_burst: int = Field(
        40, ge=1, description="Requests a principal may make at once before the rate applies."
    )
    anonymous_rate_limit_per_s: float = Field(
        2.0,
        ge=0,
        description="Refused (401) requests per second one client address may make before "
        "they are answered 429 `rate_limited` (per ingress replica); 0 turns it off.",
    )
    anonymous_rate_limit_burst: int = Field(
        20, ge=1, description="Refused requests a client address may make at once."
    )


class RayConfig(_Section):
    """How ember starts or joins a Ray cluster."""

    address: str | None = Field(
        None,
        description="Ray cluster to join (`auto` or `host:port`); unset starts a local one. "
        "`RAY_ADDRESS` is honoured when this is unset.",
    )
    num_cpus: int | None = Field(
        None, gt=0, description="CPUs a started local cluster offers; unset means all cores."
    )
    dashboard: bool = Field(True, description="Start the Ray dashboard with a local cluster.")
    dashboard_port: int = Field(8265, ge=1, le=65535, description="Ray dashboard port.")


class ServeConfig(_Section):
    """Placement of the Serve ingress replicas, a fixed number or autoscaled by Serve."""

    num_replicas: int = Field(1, ge=1, description="Ingress replicas (when not autoscaling).")
    num_cpus: float = Field(0.25, gt=0, description="CPUs reserved per ingress replica.")
    max_ongoing_requests: int = Field(
        256, ge=1, description="Concurrent requests one replica accepts before queueing."
    )
    autoscaling: bool = Field(
        False,
        description="Let Serve scale the ingress between `min_replicas` and `max_replicas` "
        "by ongoing requests (`num_replicas` is then unused). Not with FAISS or Milvus Lite: "
        "each replica opens its own copy of an index.",
    )
    min_replicas: int = Field(1, ge=1, description="Fewest ingress replicas when autoscaling.")
    max_replicas: int = Field(4, ge=1, description="Most ingress replicas when autoscaling.")
    target_ongoing_requests: float = Field(
        64.0,
        gt=0,
        description="Ongoing requests per replica Serve's autoscaler aims for (it adds "
        "replicas above, removes them below).",
    )

    _max_at_least_min = field_validator("max_replicas")(_not_below("min_replicas"))

    @property
    def scaling(self) -> PoolConfig:
        """The ingress replicas as a pool: ``num_replicas`` of them, or ``min_replicas`` to
        ``max_replicas`` for Serve's autoscaler (whose own delays apply: no cooldown here)."""
        low, high = (
            (self.min_replicas, self.max_replicas)
            if self.autoscaling
            else (self.num_replicas, self.num_replicas)
        )
        return PoolConfig(
            min_size=low,
            max_size=high,
            num_cpus=self.num_cpus,
            target_per_worker=self.target_ongoing_requests,
            cooldown_s=0.0,
        )


class DatabaseConfig(_Section):
    """The SQL database that holds ember's durable state."""

    url: str | None = Field(
        None,
        description="SQLAlchemy URL (`postgresql+psycopg://...`); unset means SQLite "
        "at `$EMBER_HOME/ember.db`.",
    )
    pool_size: int = Field(5, ge=1, description="Postgres connection pool size.")
    max_overflow: int = Field(10, ge=0, description="Postgres connections beyond the pool.")
    connect_timeout_s: float = Field(5.0, gt=0, description="Timeout of one connection attempt.")
    retry_attempts: int = Field(
        5, ge=1, description="Attempts for an operation that hits a transient connection error."
    )
    retry_max_wait_s: float = Field(2.0, gt=0, description="Longest backoff between attempts.")


class LoggingConfig(_Section):
    """Structured logs."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Lowest level written."
    )
    format: Literal["json", "text"] = Field(
        "json", description="`json`: one object per line; `text`: human-readable lines."
    )


class EmbeddingsConfig(_Section):
    """The embedding model that turns chunks and queries into vectors."""

    provider: Literal["sentence-transformers", "openai"] = Field(
        "sentence-transformers",
        description="`sentence-transformers` runs a local model; `openai` calls an "
        "OpenAI-compatible `/v1/embeddings` server.",
    )
    model: str | None = Field(
        None,
        description="Local model directory or OpenAI model name; unset means the bundled "
        "all-MiniLM-L6-v2.",
    )
    dim: int | None = Field(
        None,
        gt=0,
        description="Vector dimension; required for `openai`, read from the model otherwise.",
    )
    batch_size: int = Field(32, ge=1, description="Passages per embedding call.")
    device: str | None = Field(None, description="Torch device; unset picks cuda when present.")
    base_url: str | None = Field(None, description="OpenAI-compatible server URL (`openai`).")
    api_key: str | None = Field(
        None,
        description="API key for `openai`; unset, `OPENAI_API_KEY` is sent to OpenAI's own API "
        "only, and another `base_url` gets none (set this, e.g. as `EMBER_EMBEDDINGS_API_KEY`).",
    )
    projection: str | None = Field(
        None,
        description="A `.npy` matrix of shape (model dim, new dim) applied to every vector "
        "(then re-normalized); the vectors get their own model id, so setting or changing it "
        "calls for a reindex.",
    )
    worker_num_cpus: float = Field(
        0.5, gt=0, description="CPUs Ray reserves for each embedding worker actor."
    )
    worker_num_gpus: float = Field(
        0.25,
        ge=0,
        description="GPUs (a fraction shares one) each embedding worker asks for; used only "
        "when the cluster has GPUs.",
    )
    workers_min: int = Field(1, ge=1, description="Embedding workers kept running.")
    workers_max: int = Field(
        2, ge=1, description="Most embedding workers the pool grows to under load."
    )
    scale_cooldown_s: float = Field(
        30.0,
        ge=0,
        description="Seconds the embedding pool's load must stay low before it removes workers.",
    )
    placement_strategy: Literal["PACK", "STRICT_PACK", "SPREAD", "STRICT_SPREAD"] = Field(
        "PACK",
        description="How the placement group of the first `workers_min` embedding workers "
        "spreads them over nodes (Ray's strategies).",
    )
    placement_timeout_s: float = Field(
        120.0,
        gt=0,
        description="Seconds an embedding worker may take to be placed (an autoscaling "
        "cluster may add a node for it) and load its model before the pool gives up on it.",
    )
    pool: bool = Field(
        False,
        description="On Ray, each process embeds through its own pool of EmbeddingWorker "
        "actors (GPUs when the cluster has them) instead of a model of its own.",
    )

    _max_at_least_min = field_validator("workers_max")(_not_below("workers_min"))

    @model_validator(mode="after")
    def _remote_model_named(self) -> EmbeddingsConfig:
        if self.provider == "openai" and (self.model is None or self.dim is None):
            raise ValueError("model and dim are required when provider is openai")
        return self

    @property
    def scaling(self) -> PoolConfig:
        """The embedding workers as a pool (two calls in flight per worker before it grows)."""
        return PoolConfig(
            min_size=self.workers_min,
            max_size=self.workers_max,
            num_cpus=self.worker_num_cpus,
            num_gpus=self.worker_num_gpus,
            target_per_worker=EMBEDDING_CALLS_PER_WORKER,
            cooldown_s=self.scale_cooldown_s,
        )


class MemoryConfig(_Section):
    """Ingest, vector indexes and retrieval."""

    chunk_tokens: int = Field(200, ge=8, description="Most tokens in one chunk.")
    chunk_overlap: int = Field(32, ge=0, description="Tokens shared by neighbouring chunks.")
    max_document_bytes: int = Field(
        50 * 1024 * 1024,
        ge=1,
        description="Largest document accepted, in bytes; over it, `POST "
        "/collections/{name}/documents` is refused whole (413 `document_too_large`).",
    )
    max_metadata_bytes: int = Field(
        16 * 1024,
        ge=2,
        description="Largest `metadata` of one document sent to the API, in bytes of compact "
        "JSON (each chunk stores a copy); over it the request is 422 `validation_failed`.",
    )
    max_beir_lines: int = Field(
        100_000,
        ge=1,
        description="Most lines of one BEIR corpus document sent to the API; over it the "
        "request is 422 `validation_failed`.",
    )
    ingest_batch_size: int = Field(64, ge=1, description="Documents embedded together.")
    vector_backend: Literal["faiss", "milvus", "weaviate"] = Field(
        "faiss", description="Where vectors live: in-process FAISS, Milvus or Weaviate."
    )
    faiss_kind: Literal["flat", "hnsw"] = Field(
        "flat", description="FAISS index: exact `flat` or approximate `hnsw`."
    )
    faiss_threads: int = Field(
        1,
        ge=1,
        description="OpenMP threads of FAISS in this process; 1 is fastest for one query.",
    )
    ingest_roots: list[str] = Field(
        [],
        description="Directories whose files an `ingest` job may read by `path` (a list, or "
        "`:`-separated in the environment); empty: jobs take documents in the request only.",
    )
    shards: int = Field(
        1,
        ge=1,
        description="Shards per vector index (by chunk id). On Ray, an index with more than "
        "one, or any Milvus Lite index, is served by VectorShard actors, each owning its shard.",
    )
    milvus_uri: str | None = Field(
        None,
        description="Milvus server URI; unset means Milvus Lite under `$EMBER_HOME/milvus`.",
    )
    weaviate_url: str | None = Field(None, description="Weaviate server URL (`weaviate`).")
    search_candidates: int = Field(
        100, ge=1, description="Candidates taken from each of dense and keyword search."
    )
    fusion: Literal["rrf", "relative"] = Field(
        "relative",
        description="`relative`: weighted sum of min-max-normalized scores; `rrf`: reciprocal "
        "rank fusion.",
    )
    rrf_k: int = Field(60, ge=1, description="The k of reciprocal rank fusion.")
    dense_weight: float = Field(1.0, ge=0, description="Weight of dense candidates in fusion.")
    keyword_weight: float = Field(1.0, ge=0, description="Weight of keyword candidates.")
    max_filter_terms: int = Field(
        256,
        ge=1,
        le=512,
        description="Most terms in one metadata filter (each compared value counts, each value "
        "of `$in`/`$nin` too); a wider filter is `invalid_filter`. At most 512, which SQLite and "
        "Postgres both run.",
    )

    @field_validator("ingest_roots", mode="before")
    @classmethod
    def _roots(cls, value: Any) -> Any:
        if isinstance(value, str):
            if value.strip().startswith("["):
                return json.loads(value)
            return [part for part in value.split(os.pathsep) if part]
        return value

    @model_validator(mode="after")
    def _weaviate_named(self) -> MemoryConfig:
        if self.vector_backend == "weaviate" and self.weaviate_url is None:
            raise ValueError("weaviate_url is required when vector_backend is weaviate")
        return self


class JobsConfig(_Section):
    """Durable jobs: leases, retries, quotas, workers and event streams."""

    lease_ttl_s: float = Field(
        10.0, gt=0, description="A job's lease lasts this long unless its worker renews it."
    )
    renew_interval_s: float = Field(
        2.0, gt=0, description="How often a worker renews its leases (well under the TTL)."
    )
    poll_interval_s: float = Field(
        0.5, gt=0, description="Longest wait of the dispatcher between looks at the queue."
    )
    max_attempts: int = Field(
        3, ge=1, description="Attempts before a job whose worker keeps dying fails."
    )
    max_active_per_principal: int = Field(
        100, ge=1, description="Unfinished jobs one principal may have (quota)."
    )
    workers_min: int = Field(
        1, ge=0, description="Worker actors each job kind keeps (0: none while it is idle)."
    )
    workers_max: int = Field(
        4, ge=1, description="Most worker actors a job kind's pool grows to as its queue fills."
    )
    slots_per_worker: int = Field(4, ge=1, description="Jobs one worker runs at a time.")
    jobs_per_worker_target: float | None = Field(
        None,
        gt=0,
        description="Queued plus running jobs per worker a pool sizes for (unset: "
        "`slots_per_worker`, so a pool grows once its workers' slots are full).",
    )
    scale_cooldown_s: float = Field(
        30.0,
        ge=0,
        description="Seconds a smaller job pool must have been enough (with no rise in "
        "demand) before idle workers are retired.",
    )
    worker_num_cpus: float = Field(0.1, gt=0, description="CPUs Ray reserves per worker actor.")
    heartbeat_s: float = Field(15.0, gt=0, description="Idle streams get a heartbeat this often.")
    event_ring_size: int = Field(
        2048, ge=16, description="Recent events per job the hub keeps for live readers."
    )
    event_flush_interval_s: float = Field(
        0.05, gt=0, description="Longest time an event waits before it is written."
    )
    plugins: str | None = Field(
        None,
        description="Comma-separated `module:function` plug-ins, each returning more job "
        "kinds for a config.",
    )

    _max_at_least_min = field_validator("workers_max")(_not_below("workers_min"))

    @model_validator(mode="after")
    def _renewed_in_time(self) -> JobsConfig:
        if self.renew_interval_s >= self.lease_ttl_s:
            raise ValueError(
                f"renew_interval_s ({self.renew_interval_s:g}) must be below lease_ttl_s "
                f"({self.lease_ttl_s:g}), or every lease expires before it is renewed"
            )
        return self

    @property
    def scaling(self) -> PoolConfig:
        """Each job kind's worker actors as a pool."""
        return PoolConfig(
            min_size=self.workers_min,
            max_size=self.workers_max,
            num_cpus=self.worker_num_cpus,
            target_per_worker=self.jobs_per_worker_target or self.slots_per_worker,
            cooldown_s=self.scale_cooldown_s,
        )


class RouterConfig(_Section):
    """How the provider router picks, retries and fails over between candidates."""

    breaker_failures: int = Field(
        5, ge=1, description="Consecutive retryable failures that open a provider's breaker."
    )
    breaker_open_s: float = Field(
        30.0, gt=0, description="Seconds an open breaker refuses calls before one trial call."
    )
    breaker_successes: int = Field(
        1, ge=1, description="Successful trial calls that close a half-open breaker."
    )
    retry_attempts: int = Field(
        2, ge=1, description="Attempts per candidate for retryable errors (1 means no retry)."
    )
    retry_base_s: float = Field(
        0.2, gt=0, description="Backoff before the first retry; doubles each retry (full jitter)."
    )
    retry_max_s: float = Field(
        5.0, gt=0, description="Longest backoff; a longer `Retry-After` moves on at once."
    )
    default_provider: str | None = Field(
        "local",
        description="Provider a bare model name (neither an alias nor `provider/model`) goes "
        "to; unset makes such a name `provider_model_not_found`.",
    )
    default_embedding_provider: str | None = Field(
        "embeddings",
        description="Provider a bare model name goes to in an embedding call.",
    )
    aliases: dict[str, list[str]] = Field(
        {"default": ["local/gemma3-270m"]},
        description="Model alias to its tiers of `provider/model` candidates, best first; "
        "candidates in one tier, split by a vertical bar, are equal preference. A JSON object "
        "in the environment.",
    )

    @field_validator("aliases", mode="before")
    @classmethod
    def _parse_json(cls, value: Any) -> Any:
        return _mapping(value)

    @field_validator("aliases")
    @classmethod
    def _candidates(cls, aliases: dict[str, list[str]]) -> dict[str, list[str]]:
        for alias, tiers in aliases.items():
            if not tiers:
                raise ValueError(f"alias {alias!r} has no candidates")
            for tier in tiers:
                for candidate in tier.split("|"):
                    provider, _, model = candidate.strip().partition("/")
                    if not provider or not model:
                        raise ValueError(
                            f"alias {alias!r}: {candidate.strip()!r} is not `provider/model`"
                        )
        return aliases


class Price(_Section):
    """What one provider charges, in USD per 1000 tokens."""

    prompt_per_1k_usd: float = Field(0.0, ge=0, description="USD per 1000 prompt tokens.")
    completion_per_1k_usd: float = Field(0.0, ge=0, description="USD per 1000 completion tokens.")


class Budget(_Section):
    """Limits per rolling day (the last 24 hours); ``None`` means unlimited."""

    tokens_per_day: int | None = Field(
        None, ge=0, description="Prompt and completion tokens per rolling day."
    )
    cost_per_day_usd: float | None = Field(None, ge=0, description="USD per rolling day.")


class ProviderSpec(_Section):
    """One configured provider: which adapter, and how to reach it."""

    kind: str = Field(
        description="Adapter: `llamacpp`, `ollama`, `openai`, `sentence-transformers`, or the "
        "name of an adapter installed under the `ember.providers` entry point group."
    )
    base_url: str | None = Field(None, description="Server URL (`ollama`, `openai`, plug-ins).")
    api_key: str | None = Field(None, description="API key; prefer `api_key_env`.")
    api_key_env: str | None = Field(
        None,
        description="Environment variable that holds the API key. Unset, an `openai` provider "
        "sends `OPENAI_API_KEY` only to OpenAI's own API (no `base_url`, or "
        "`https://api.openai.com/v1`); any other server gets no key unless this (or `api_key`) "
        "names one.",
    )
    timeout_s: float = Field(120.0, gt=0, description="Seconds one call may take.")
    options: dict[str, Any] = Field(
        {}, description="Adapter-specific settings, passed to the adapter as they are."
    )


class ModelsConfig(_Section):
    """Local GGUF models: the bundled default, where they load, and when they unload."""

    bundled: bool = Field(
        True,
        description="Assemble, verify and register the bundled Gemma 3 270M model (pinned, "
        "warm) under `home/models` on first start.",
    )
    memory_bytes: int | None = Field(
        None,
        ge=1,
        description="Bytes of loaded models one node may hold; unset: 90% of the first GPU's "
        "memory on a GPU node, else half of the memory Ray reports for the node (half the "
        "machine's memory when models are hosted in process).",
    )
    keep_alive_s: float = Field(
        300.0,
        description="Seconds an idle model stays loaded when a request sets no `keep_alive`; "
        "negative keeps it until evicted for room.",
    )
    n_ctx: int = Field(4096, ge=256, description="Context length a model is loaded with.")
    n_threads: int = Field(
        1, ge=1, description="CPU threads llama.cpp uses per loaded model (never oversubscribe)."
    )
    gpu_layers: int = Field(
        -1, description="Layers offloaded when the host has a GPU; -1 offloads all of them."
    )
    host_num_cpus: float = Field(
        0.5, gt=0, description="CPUs Ray reserves for each model host actor."
    )
    stream_interval_ms: float = Field(
        40.0,
        ge=0,
        description="After the first token, the tokens a model host produces within this many "
        "ms go out as one stream chunk (fewer messages, less CPU per token); 0 sends each alone.",
    )
    load_timeout_s: float = Field(
        120.0,
        gt=0,
        description="Seconds a model host may take to be placed and load its model.",
    )
    host_num_gpus: float = Field(
        1.0, ge=0, description="GPUs a model host asks for on a cluster that has GPUs."
    )
    sweep_interval_s: float = Field(
        5.0, gt=0, description="How often idle models past their keep-alive are unloaded."
    )
    replicas_min: int = Field(
        1, ge=1, description="Fewest hosts of a loaded model (in a Ray cluster)."
    )
    replicas_max: int = Field(
        1,
        ge=1,
        description="Most hosts of a loaded model: above `replicas_min`, hosts are added while "
        "calls queue on them and removed after `scale_cooldown_s` (in a Ray cluster).",
    )
    calls_per_replica_target: float = Field(
        2.0,
        gt=0,
        description="Calls running or waiting per model host the scaling aims for: "
        "`ceil(calls / target)` hosts, so 2 makes one host two at the third call.",
    )
    scale_cooldown_s: float = Field(
        30.0,
        ge=0,
        description="Seconds fewer hosts must have been enough before a model loses one; also "
        "how long a model is not grown after a host found no room or failed to start.",
    )
    scale_interval_s: float = Field(
        1.0, gt=0, description="How often model hosts are sized to their queues."
    )
    route_refresh_s: float = Field(
        1.0,
        gt=0,
        description="Age at which a caller refreshes, in the background, the hosts of a model "
        "it routes over; a host taken out of routing is stopped once idle and `2 *` this after.",
    )

    _max_at_least_min = field_validator("replicas_max")(_not_below("replicas_min"))

    @property
    def scaling(self) -> PoolConfig:
        """Each loaded model's hosts as a pool."""
        return PoolConfig(
            min_size=self.replicas_min,
            max_size=self.replicas_max,
            num_cpus=self.host_num_cpus,
            num_gpus=self.host_num_gpus,
            target_per_worker=self.calls_per_replica_target,
            cooldown_s=self.scale_cooldown_s,
        )


class ProvidersConfig(_Section):
    """The model providers, their prices, and the budgets the router enforces before a call."""

    instances: dict[str, ProviderSpec] = Field(
        {
            "local": ProviderSpec(kind="llamacpp"),
            "embeddings": ProviderSpec(kind="sentence-transformers"),
        },
        description="Provider name to its adapter and address; the names are what router "
        "aliases and `provider/model` refer to. A JSON object in the environment.",
    )

    prices: dict[str, Price] = Field(
        {},
        description="Provider name to its price; providers not listed cost 0 (local). "
        "A JSON object in the environment.",
    )
    principal_budgets: dict[str, Budget] = Field(
        {},
        description="Principal to its budget; `*` applies to principals not listed. "
        "A JSON object in the environment.",
    )
    provider_budgets: dict[str, Budget] = Field(
        {},
        description="Provider name to its budget, across all principals. "
        "A JSON object in the environment.",
    )
    workspace_budgets: dict[str, Budget] = Field(
        {},
        description="Workspace to its budget, across its principals; `*` applies to "
        "workspaces not listed. A JSON object in the environment.",
    )
    estimate_completion_tokens: int = Field(
        512,
        ge=0,
        description="Completion tokens a budget check assumes when a call sets no `max_tokens`.",
    )

    @field_validator(
        "instances",
        "prices",
        "principal_budgets",
        "provider_budgets",
        "workspace_budgets",
        mode="before",
    )
    @classmethod
    def _parse_json(cls, value: Any) -> Any:
        return _mapping(value)


class EmberConfig(_Section):
    """The whole configuration."""

    home: Path = Field(
        Path("~/.ember"), description="Directory for the SQLite database, indexes and models."
    )
    server: ServerConfig = ServerConfig()
    auth: AuthConfig = AuthConfig()
    ray: RayConfig = RayConfig()
    serve: ServeConfig = ServeConfig()
    database: DatabaseConfig = DatabaseConfig()
    logging: LoggingConfig = LoggingConfig()
    tracing: TracingConfig = TracingConfig()
    embeddings: EmbeddingsConfig = EmbeddingsConfig()
    memory: MemoryConfig = MemoryConfig()
    jobs: JobsConfig = JobsConfig()
    router: RouterConfig = RouterConfig()
    providers: ProvidersConfig = ProvidersConfig()
    models: ModelsConfig = ModelsConfig()
    agents: AgentsConfig = AgentsConfig()
    vm: VMConfig = VMConfig()

    @property
    def home_dir(self) -> Path:
        """``home`` with ``~`` expanded, made absolute."""
        return self.home.expanduser().resolve()

    def job_pool(self, kind: str) -> tuple[PoolConfig, int]:
        """The pool of ``kind``'s worker actors and the jobs each runs at once: the agent
        pool (``agents.*``) for ``agent`` jobs, the VM supervisors (``vm.*``) for ``vm`` jobs, the
        ``jobs.*`` pool for every other kind."""
        if kind == AGENT_KIND:
            return self.agents.scaling, self.agents.slots_per_worker
        if kind == VM_KIND:
            return self.vm.scaling, self.vm.vms_per_supervisor
        return self.jobs.scaling, self.jobs.slots_per_worker

    @property
    def vm_work_dir(self) -> Path:
        """Where VMs get their files: ``vm.work_dir`` or ``/var/tmp/ember-vm-<hash of
        home>`` (one per installation, reachable by libvirt's unprivileged QEMU)."""
        configured = self.vm.work_dir
        if configured:
            return configured.expanduser().resolve()
        tag = hashlib.sha256(str(self.home_dir).encode()).hexdigest()[:8]
        return Path("/var/tmp") / f"ember-vm-{tag}"

    @property
    def vm_image_dir(self) -> Path:
        """The guest image: ``vm.image`` or ``~/.cache/ember/vm/image``."""
        configured = self.vm.image
        return (configured or Path("~/.cache/ember/vm/image")).expanduser().resolve()

    @property
    def agents_work_dir(self) -> Path:
        """Where agent runs get their working directories: ``agents.work_dir`` or
        ``home/agents``."""
        configured = self.agents.work_dir
        return configured.expanduser().resolve() if configured else self.home_dir / "agents"

    @property
    def database_url(self) -> str:
        """The configured URL, or SQLite under ``home``."""
        return self.database.url or f"sqlite:///{self.home_dir / 'ember.db'}"
