"""The runtime watching itself: the event loop's lag, steps of the wall clock, the health watch that turns
the status into insights once a second, and the box's own files: secret files and the data directory."""
