"""The status document (GET /api/v1/status) as typed sections: one pydantic model per section, each produced
by its service's `status()` and assembled by the runtime. The page, /metrics, /openapi.json and the health
insights all read these models (docs/architecture.md)."""
