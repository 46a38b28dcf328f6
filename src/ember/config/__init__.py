"""Configuration: pydantic models for ``configs/*.yaml`` and the loader with env overrides."""

from ember.config.loader import CONFIG_ENV, environment_variables, load_config
from ember.config.models import (
    AuthConfig,
    DatabaseConfig,
    EmbeddingsConfig,
    EmberConfig,
    JobsConfig,
    LoggingConfig,
    MemoryConfig,
    RayConfig,
    ServeConfig,
    ServerConfig,
)

__all__ = [
    "CONFIG_ENV",
    "AuthConfig",
    "DatabaseConfig",
    "EmbeddingsConfig",
    "EmberConfig",
    "JobsConfig",
    "LoggingConfig",
    "MemoryConfig",
    "RayConfig",
    "ServeConfig",
    "ServerConfig",
    "environment_variables",
    "load_config",
]
