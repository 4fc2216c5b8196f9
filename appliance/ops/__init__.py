"""The runtime watching itself: the event loop's lag, steps of the wall clock, and the health watch that turns
the status into insights once a second."""
