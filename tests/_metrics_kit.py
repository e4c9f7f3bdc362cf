"""Reading Prometheus exposition text into {(name, labels): value} for the metrics tests."""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from ghlsync._metrics import SYNC_METRICS

Key = tuple[str, frozenset[tuple[str, str]]]
Samples = dict[Key, float]


def parse(text: str) -> Samples:
    """Every sample of `text`, keyed by sample name and label set."""
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def sync_now() -> Samples:
    """The process's sync metrics right now (the baseline a test subtracts)."""
    return parse(generate_latest(SYNC_METRICS.registry).decode())


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value (0 when absent)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of `name` over the samples whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


def delta(after: Samples, before: Samples, name: str, **labels: str) -> float:
    """How much `name` (summed over the matching series) grew between two readings."""
    return total(after, name, **labels) - total(before, name, **labels)


def by_label(samples: Samples, name: str, *keys: str) -> Mapping[tuple[str, ...], float]:
    """`name`'s values keyed by the values of `keys` (summed over the other labels)."""
    found: dict[tuple[str, ...], float] = {}
    for (n, labels), v in samples.items():
        if n == name:
            as_dict = dict(labels)
            key = tuple(as_dict.get(k, "") for k in keys)
            found[key] = found.get(key, 0.0) + v
    return found
