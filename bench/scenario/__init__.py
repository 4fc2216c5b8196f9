"""`bench scenario`: named scenarios as data (bench/scenarios/NAME.toml) run against a box from outside, each
expectation judged into a verdict, and a report (docs/bench.md#scenarios)."""
