"""Configs for `appliance run` made from examples/bench.toml, the whole bench world: the appliance's
sections and the [bench] table its `bench sim` child serves, found from any working directory."""

from __future__ import annotations

import re
from pathlib import Path

from bench.harness.ports import port_below_ephemeral

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "bench.toml"
CONTROL_PORT = 15099  # the bench world's fault API in examples/bench.toml
WORLD_FILES = "/tmp/edge-appliance-bench"  # where examples/bench.toml puts the world's pty links


def example(listen: str = "127.0.0.1:0") -> str:
    """examples/bench.toml with its status page on `listen` (default: a free port) and its QC model found
    from any working directory."""
    text = EXAMPLE.read_text().replace('listen = "127.0.0.1:8080"', f'listen = "{listen}"')
    return text.replace('model = "../', f'model = "{EXAMPLE.parent.parent}/')


def bench_world(extra: str) -> str:
    """examples/bench.toml on a free status port, the model found from anywhere, its [safety] replaced by
    `extra` (its own rules would interleave the trips a benchmark makes)."""
    return re.sub(r"\n\[safety\].*?(?=\n# ---)", "\n", example(), flags=re.S) + extra


def world_config(http_port: int, broker: bool, folder: Path) -> tuple[str, dict[int, int]]:
    """examples/bench.toml on the given status port, the model found from anywhere, with or without the
    world's MQTT broker; the world's own ports (15xxx) moved to free ones and its files into `folder`, so
    that nothing else on the machine (a test, another bench) meets it. Also the ports it moved."""
    text = example(f"127.0.0.1:{http_port}")
    moved = {int(p): port_below_ephemeral() for p in sorted(set(re.findall(r"\b(15\d{3})\b", text)))}
    text = re.sub(r"\b15\d{3}\b", lambda m: str(moved[int(m.group())]), text)
    text = text.replace(WORLD_FILES, str(folder))
    ledger = f'ledger = "{folder}/upstream.db"'
    text = re.sub(r"\nupstream = \{ (mqtt = [^}]*)\}", rf"\nupstream = {{ \1, {ledger} }}", text)
    if not broker:
        text = re.sub(r"\nupstream = \{[^\n]*", "", text)
    return text, moved
