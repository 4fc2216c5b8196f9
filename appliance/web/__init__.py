"""The local status page and JSON API."""

from appliance.web.server import WebServer, build_app

__all__ = ["WebServer", "build_app"]
