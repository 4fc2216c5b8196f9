"""`bench perf`: benchmarks of the appliance's own code, each against a baseline measured in the same run."""
