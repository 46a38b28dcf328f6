"""Configuration: pydantic models for ``configs/*.yaml`` and the loader with env overrides."""

from ember.config.loader import CONFIG_ENV, environment_variables, load_config
from ember.config.models import (
    AuthConfig,
    Budget,
    DatabaseConfig,
    EmbeddingsConfig,
    EmberConfig,
    JobsConfig,
    LoggingConfig,
    MemoryConfig,
    Price,
    ProvidersConfig,
    RayConfig,
    RouterConfig,
    ServeConfig,
    ServerConfig,
)
from ember.config.pools import PoolConfig
from ember.config.tracing import TracingConfig

__all__ = [
    "CONFIG_ENV",
    "AuthConfig",
    "Budget",
    "DatabaseConfig",
    "EmbeddingsConfig",
    "EmberConfig",
    "JobsConfig",
    "LoggingConfig",
    "MemoryConfig",
    "PoolConfig",
    "Price",
    "ProvidersConfig",
    "RayConfig",
    "RouterConfig",
    "ServeConfig",
    "ServerConfig",
    "TracingConfig",
    "environment_variables",
    "load_config",
]
