"""The console's store queries on SQLite and PostgreSQL: the 24 h series per hour, the
overview card of a location with a dead letter, dead-letter filters and the activity log."""

from __future__ import annotations

import time

import sqlalchemy as sa

from ghlsync.console import _data
from ghlsync.engine import claim, dead_letter
from ghlsync.mapping import AppConfig
from ghlsync.store import create_engine, migrate
from ghlsync.store._tables_engine import audit_log
from tests._engine_kit import delivery, send

NOW = time.time()


def test_overview_series_and_filters(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        migrate(engine)
        # Received 90 min and 10 min ago; both claimed and parked at NOW - 30 min.
        send(engine, delivery("c1", location="L", received_at=NOW - 5400, email="bad"))
        send(engine, delivery("c2", location="L", received_at=NOW - 600))
        for item in claim(engine, "w", ["L"], 10, 30):
            dead_letter(engine, item, "GHL answered 422: bad email", "UnprocessableError")
        with engine.begin() as conn:
            conn.execute(
                sa.insert(audit_log),
                [
                    {
                        "at": NOW - 60,
                        "location_id": "L",
                        "entity_type": "contact",
                        "source_id": "c3",
                        "action": "created",
                        "calls": 1,
                    }
                ],
            )
        (card,) = _data.overview(engine, AppConfig.default(), NOW)
        assert card["location_id"] == "L" and card["dead_letters"] == 2
        assert card["health"]["tone"] == "bad"
        series = card["series"]
        assert series["in"][22] == 1 and series["in"][23] == 1  # hours 22-23 and 23-24
        assert series["out"][23] == 1 and sum(series["out"]) == 1
        assert card["totals"]["in"] == 2
        rows = _data.dead_letter_rows(
            engine, location="L", entity="contact", text="422", replayed=False
        )
        assert {row["source_id"] for row in rows} == {"c1", "c2"}
        assert rows[0]["words"].startswith("GHL refused the data")
        assert _data.matching_dead_ids(engine, location="other", entity=None, text=None) == []
        failed = _data.activity(engine, location="L", direction=None, outcome="failed")
        assert failed == []
        (line,) = _data.activity(engine, location=None, direction="to_ghl", outcome="ok")
        assert (line["what"], line["ok"]) == ("contact c3", True)
    finally:
        engine.dispose()
