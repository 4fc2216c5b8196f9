"""The appliance's one TOML configuration file, parsed into typed, validated settings."""

from appliance.config.devices import ModbusTcpDeviceSettings
from appliance.config.loader import ConfigError, load_config, parse_config
from appliance.config.models import ApplianceConfig

__all__ = ["ApplianceConfig", "ConfigError", "ModbusTcpDeviceSettings", "load_config", "parse_config"]
