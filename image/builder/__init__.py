"""The firmware image builder behind image/build: numbered stages, each re-runnable (docs/image.md)."""
