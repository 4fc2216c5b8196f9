"""The local SQLite store: everything the box records, kept on its own disk."""

from appliance.store.writer import Store

__all__ = ["Store"]
