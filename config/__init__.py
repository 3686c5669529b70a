"""Settings for every process of the service, read from the environment (stdlib only)."""

from config.settings import ConfigError, Settings, load_settings

__all__ = ["ConfigError", "Settings", "load_settings"]
