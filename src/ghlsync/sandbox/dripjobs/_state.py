"""The emulator's state: the company model, its settings, faults, logs and counters."""

from __future__ import annotations

import random
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ghlsync._clock import SYSTEM_CLOCK, Clock
from ghlsync.sandbox.dripjobs._model import Model

# A fixed default so a rehearsal works with no setup: base64 of "sandbox-dripjobs-writeback".
DEFAULT_WRITEBACK_SECRET = "whsec_c2FuZGJveC1kcmlwam9icy13cml0ZWJhY2s="  # noqa: S105 - sandbox


@dataclass
class Settings:
    """Where the triggers go, and how write-backs are checked."""

    ghlsync_url: str | None = None  # base URL of ghlsync, e.g. http://127.0.0.1:8080
    connection: str | None = None  # per-location connection id (/hooks/dripjobs/<id>/<event>)
    secret: str | None = None  # the Bearer secret of ghlsync's DripJobs receiver
    writeback_secret: str = DEFAULT_WRITEBACK_SECRET
    timestamp_tolerance: float = 300.0
    fire_delay_seconds: float = 0.0  # DripJobs answers the Zap first, the trigger fires later
    fire_max_attempts: int = 6
    fire_retry_seconds: float = 0.2  # first backoff; doubles per attempt, capped at 5 s

    def hook_url(self, event: str) -> str | None:
        """ghlsync's receiver URL for `event`, or None when no target is set."""
        if not self.ghlsync_url:
            return None
        base = self.ghlsync_url.rstrip("/") + "/hooks/dripjobs"
        if self.connection:
            base += f"/{self.connection}"
        return f"{base}/{event}"

    def view(self) -> dict[str, Any]:
        """The settings with both secrets masked."""
        shown = dict(vars(self))
        shown["secret"] = _mask(self.secret)
        shown["writeback_secret"] = _mask(self.writeback_secret)
        return shown


@dataclass
class HookFaults:
    """Faults of the catch hooks: probabilities per write-back, and a script drawn first."""

    rate_429: float = 0.0
    rate_500: float = 0.0
    timeout: float = 0.0
    retry_after: int = 1
    timeout_seconds: float = 3.0
    script: list[str] = field(default_factory=list)  # "429" | "500" | "timeout" | "none"

    def draw(self, rng: random.Random) -> str | None:
        """The fault for the next write-back, if any."""
        if self.script:
            forced = self.script.pop(0)
            return None if forced == "none" else forced
        roll = rng.random()
        for name, rate in (("429", self.rate_429), ("500", self.rate_500)):
            if roll < rate:
                return name
            roll -= rate
        return "timeout" if roll < self.timeout else None


class DripJobsState:
    """Everything the emulator holds; one lock guards it (the server runs in a thread)."""

    def __init__(self, *, clock: Clock = SYSTEM_CLOCK, seed: int | None = None) -> None:
        self.lock = threading.RLock()
        self.clock = clock
        self.settings = Settings()
        self.rng = random.Random(seed)
        self._seed = seed
        self.reset()

    def reset(self) -> None:
        """Forget every record, log, count and fault; the settings stay."""
        with self.lock:
            self.rng.seed(self._seed)
            self.model = Model()
            self.faults = HookFaults()
            self.seen: dict[str, dict[str, Any]] = {}  # webhook-id → the log entry
            self.writebacks: list[dict[str, Any]] = []
            self.fired: list[dict[str, Any]] = []
            self.counts: Counter[str] = Counter()
            self.by_action: Counter[str] = Counter()
            self.injected: Counter[str] = Counter()

    def counters(self) -> dict[str, Any]:
        """What the emulator received and fired; `duplicates` is what the demo prints."""
        with self.lock:
            leads = Counter(lead.email.lower() for lead in self.model.leads if lead.email)
            by_ghl = Counter(
                a.ghl_appointment_id
                for a in self.model.appointments.values()
                if a.ghl_appointment_id
            )
            duplicate_leads = sum(n - 1 for n in leads.values())
            duplicate_appointments = sum(n - 1 for n in by_ghl.values())
            return {
                "requests": self.counts["requests"],
                "writebacks": self.counts["applied"],
                "by_action": dict(self.by_action),
                "duplicate_webhook_ids": self.counts["duplicate_webhook_ids"],
                "bad_signatures": self.counts["bad_signatures"],
                "no_change": self.counts["no_change"],
                "errors": self.counts["errors"],
                "faults": dict(self.injected),
                "leads_per_email": dict(leads),
                "duplicate_leads": duplicate_leads,
                "duplicate_appointments": duplicate_appointments,
                "duplicates": duplicate_leads + duplicate_appointments,
                "fired": dict(Counter(entry["event"] for entry in self.fired)),
                "fire_pending": sum(1 for entry in self.fired if entry["status"] == "pending"),
                "fire_failed": sum(1 for entry in self.fired if entry["status"] == "failed"),
            }


def _mask(secret: str | None) -> str | None:
    if not secret:
        return secret
    return secret[:6] + "…" if secret.startswith("whsec_") else "…"
