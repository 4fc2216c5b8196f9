"""The bench's harness: the appliance's processes and the simulated world as child processes (`appliance
run`, `appliance safety`, `bench sim`), the configs they run on, and the ports, HTTP calls, load and clock
steps around them. The rest of the bench and the tests start children through it; bench/perf measures with
it. Like all of the bench it imports only the bench and appliance.config (tests/test_layout.py)."""
