"""The `appliance` command (appliance/cli/main.py) and its subcommands, each in its own module."""

from appliance.cli.main import main

__all__ = ["main"]
