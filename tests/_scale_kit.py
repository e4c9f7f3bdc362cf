"""A rig for the scale-out tests and benchmark: one PostgreSQL store, one sandbox with many
locations (each with its own token, stored in the vault), and real `ghlsync worker` processes.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import yaml

import ghlsync.mapping
from ghlsync._secret import Secret
from ghlsync.engine import Delivery, accept
from ghlsync.ghl._crypto import TokenCipher, generate_key
from ghlsync.ghl._vault import TokenVault
from ghlsync.sandbox import SandboxServer, SandboxState
from ghlsync.sandbox._state import Limits
from ghlsync.store import begin_immediate, create_engine, migrate
from ghlsync.store._tables import rate_budget
from ghlsync.store._tables_engine import audit_log, work_items

GHLSYNC = str(Path(sys.executable).parent / "ghlsync")
# The start line of `ghlsync worker` (a log line: timestamp, level, then the message).
_STARTED = re.compile(r"worker (\S+) running \(SIGTERM/Ctrl-C drains\)")


@dataclass
class Rig:
    """The store, the sandbox and the config the worker processes run with."""

    url: str
    engine: sa.Engine
    sandbox: SandboxServer
    config_path: Path
    env: dict[str, str]
    locations: list[str]
    logs: Path
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def state(self) -> SandboxState:
        return self.sandbox.state

    def start_worker(self, *args: str) -> subprocess.Popen[bytes]:
        """A `ghlsync worker` process; its stderr goes to a log file (read with `log`)."""
        index = len(self.workers)
        err = (self.logs / f"worker{index}.log").open("wb")
        proc = subprocess.Popen(
            [GHLSYNC, "worker", "--config", str(self.config_path), *args],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
        err.close()
        self.workers.append(proc)
        return proc

    def log(self, proc: subprocess.Popen[bytes]) -> str:
        return (self.logs / f"worker{self.workers.index(proc)}.log").read_text()

    def worker_id(self, proc: subprocess.Popen[bytes], timeout: float = 180.0) -> str:
        """The id the worker logged on start ("worker ID running (SIGTERM/Ctrl-C drains)").
        Generous: on a 2-core machine under a load average of 15-20, a worker's start-up
        (imports, vault, LISTEN) took over 30 s."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = _STARTED.search(self.log(proc))
            if found is not None:
                return found.group(1)
            time.sleep(0.05)
        raise AssertionError(f"worker never started:\n{self.log(proc)}")

    def close(self) -> None:
        for proc in self.workers:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
        self.engine.dispose()
        self.sandbox.stop()


def make_rig(
    url: str,
    tmp: Path,
    *,
    locations: int,
    limits: Limits,
    special: dict[str, Limits] | None = None,
    worker: dict[str, Any] | None = None,
) -> Rig:
    """`locations` sandbox locations `loc00`, `loc01`, ... with tokens in the vault."""
    sandbox = SandboxServer(state=SandboxState(burst=limits.burst, interval_ms=limits.interval_ms))
    sandbox.start()
    names = [f"loc{i:02d}" for i in range(locations)]
    engine = create_engine(url)
    migrate(engine)
    key = generate_key()
    vault = TokenVault(engine, TokenCipher([key]))
    for name in names:
        lim = (special or {}).get(name, limits)
        sandbox.state.add_location(
            name, token=f"tok-{name}", limits=Limits(lim.burst, lim.interval_ms, lim.daily)
        )
        vault.save_private(name, Secret(f"tok-{name}"))
        _seed_budget(engine, name, lim)
    preset = Path(ghlsync.mapping.__file__).parent / "preset.yaml"
    config = {
        **yaml.safe_load(preset.read_text()),  # a config file replaces the preset: start from it
        "database_url": url,
        "ghl": {"base_url": sandbox.url},
        "worker": {"concurrency": 8, "lease_seconds": 6, "poll_interval": 5, **(worker or {})},
    }
    config_path = tmp / "ghlsync.yaml"
    config_path.write_text(yaml.safe_dump(config))
    env = {
        **os.environ,
        "GHLSYNC_SECRET_KEY": key,
        "GHLSYNC_LOG_LEVEL": "warning",
    }
    for name in ("GHLSYNC_DATABASE_URL", "GHLSYNC_GHL_TOKEN", "GHLSYNC_GHL_LOCATION_ID"):
        env.pop(name, None)
    logs = tmp / "logs"
    logs.mkdir()
    return Rig(url, engine, sandbox, config_path, env, names, logs)


def _seed_budget(engine: sa.Engine, key: str, limits: Limits) -> None:
    # What the limiter learns from GHL's headers on the first answer; seeded so the first
    # burst of a location with a test-sized limit is paced right from its first request.
    with engine.begin() as conn:
        conn.execute(
            sa.insert(rate_budget).values(key=key, max=limits.burst, interval_ms=limits.interval_ms)
        )


def contact_events(
    location: str, entities: int, versions: int, *, at: float, first: int = 0
) -> list[Delivery]:
    """`versions` events per contact `c<first>`... (created, then updates), names `v0`, ..."""
    out = []
    for version in range(versions):
        for n in range(first, first + entities):
            source = f"{location}-c{n}"
            out.append(
                _delivery(
                    location,
                    "customer.created" if version == 0 else "customer.updated",
                    "contact",
                    source,
                    at + version,
                    customer_id=source,
                    email=f"{source}@example.com",
                    first_name=f"v{version}",
                )
            )
    return out


def task_events(location: str, entities: int, versions: int, *, at: float) -> list[Delivery]:
    """`versions` events per task of contact `c<n>`, titles `t0`, `t1`, ..."""
    out = []
    for version in range(versions):
        for n in range(entities):
            source = f"{location}-t{n}"
            out.append(
                _delivery(
                    location,
                    "task.created" if version == 0 else "task.updated",
                    "task",
                    source,
                    at + version,
                    task_id=source,
                    customer_id=f"{location}-c{n}",
                    task_title=f"t{version}",
                )
            )
    return out


def _delivery(
    location: str,
    event: str,
    entity_type: str,
    source: str,
    updated_at: float,
    **payload: Any,
) -> Delivery:
    return Delivery(
        connection_id=f"conn-{location}",
        location_id=location,
        event=event,
        delivery_id=f"{source}:{event}:{updated_at}",
        payload={**payload, "updated_at": updated_at},
        entity_type=entity_type,
        source_id=source,
        source_updated_at=updated_at,
        received_at=time.time(),
    )


def accept_all(engine: sa.Engine, deliveries: Iterable[Delivery], batch: int = 50) -> int:
    """Accept in transactions of `batch`, as the receiver's group commit does."""
    items, accepted = list(deliveries), 0
    for start in range(0, len(items), batch):
        with begin_immediate(engine) as conn:
            accepted += sum(accept(conn, item) for item in items[start : start + batch])
    return accepted


def unsettled(engine: sa.Engine) -> int:
    """Work rows not done yet (pending or leased)."""
    with engine.connect() as conn:
        query = sa.select(sa.func.count()).where(work_items.c.status.in_(("pending", "leased")))
        return int(conn.execute(query).scalar_one())


def wait_until_settled(rig: Rig, timeout: float) -> None:
    """Until every work row is done or dead; fails with the worker logs on timeout."""
    deadline = time.monotonic() + timeout
    while unsettled(rig.engine):
        if time.monotonic() > deadline:
            logs = "\n".join(rig.log(p)[-2000:] for p in rig.workers)
            raise AssertionError(f"{unsettled(rig.engine)} items never settled:\n{logs}")
        time.sleep(0.2)


def stop_all(rig: Rig, procs: Sequence[subprocess.Popen[bytes]], timeout: float = 60) -> None:
    """SIGTERM each running process and require a clean exit."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        code = proc.wait(timeout=timeout)
        assert code == 0, rig.log(proc)


def work_rows(engine: sa.Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(sa.select(work_items)).all())


def audit_rows(engine: sa.Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(sa.select(audit_log).order_by(audit_log.c.id)).all())
