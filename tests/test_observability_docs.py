"""Issue 12 §2: docs/observability.md, the Grafana dashboard and the alert rules stay true.

Both files must parse, and every metric they (or the docs) name must be one `/metrics` exposes;
every metric `/metrics` exposes must be documented.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from prometheus_client import CollectorRegistry

from ghlsync._metrics import SyncMetrics
from ghlsync.server._metrics import ReceiverMetrics
from ghlsync.server._queue_metrics import QueueCollector
from ghlsync.store import create_engine, migrate

DOCS = Path(__file__).resolve().parent.parent / "docs"
_NAME = re.compile(r"\bghlsync_[a-z_]+")
_SUFFIXES = ("_total", "_bucket", "_count", "_sum", "_created")


def _exposed(tmp_path: Path) -> set[str]:
    """Every metric family /metrics can show (the gauges from a migrated, empty store)."""
    engine = create_engine(f"sqlite:///{tmp_path}/store.db")
    migrate(engine)
    try:
        names = {f.name for f in QueueCollector(engine).collect()}
    finally:
        engine.dispose()
    registries: list[CollectorRegistry] = [ReceiverMetrics().registry, SyncMetrics().registry]
    for registry in registries:
        names |= {family.name for family in registry.collect()}
    return names


def _base(name: str) -> str:
    for suffix in _SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _named(text: str) -> set[str]:
    return {_base(name) for name in _NAME.findall(text)}


def test_dashboard_and_alerts_parse_and_name_only_real_metrics(tmp_path: Path) -> None:
    exposed = _exposed(tmp_path)
    dashboard = json.loads((DOCS / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    assert len(exprs) >= 10 and dashboard["uid"] == "ghlsync"
    assert all(panel["datasource"]["uid"] == "${datasource}" for panel in dashboard["panels"])
    rules = yaml.safe_load((DOCS / "alerts.yml").read_text())["groups"][0]["rules"]
    assert {"GhlsyncSyncLagging", "GhlsyncDeadLetters", "GhlsyncRateLimited"} <= {
        r["alert"] for r in rules
    }
    assert "GhlsyncTokenExpired" in {r["alert"] for r in rules}
    assert all({"alert", "expr", "labels", "annotations"} <= set(r) for r in rules)
    for expr in [*exprs, *(r["expr"] for r in rules)]:
        named = _named(expr)
        assert named and named <= exposed, (expr, named - exposed)


def test_every_exposed_metric_is_documented_and_every_documented_one_exposed(
    tmp_path: Path,
) -> None:
    exposed = _exposed(tmp_path)
    documented = _named((DOCS / "observability.md").read_text())
    assert documented == exposed, (exposed - documented, documented - exposed)
