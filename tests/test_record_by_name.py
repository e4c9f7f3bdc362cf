"""Issue 12 §1: records found by name too (console search, `ghlsync record`): every word of
the query in the person's name, case-insensitive; synced, still queued and GHL-only people."""

from __future__ import annotations

from ghlsync.records import lookup
from tests._twoway_kit import TwoWay


async def _people(tw: TwoWay) -> None:
    for source, first, last in (("dj_1", "Ada", "Lovelace"), ("dj_2", "Adam", "Smith")):
        tw.dripjobs("customer.updated", source, first_name=first, last_name=last,
                    email=f"{source}@x.io", updated_at=tw.clock.now())  # fmt: skip
    await tw.settle()
    tw.dripjobs("customer.updated", "dj_3", first_name="Zoë", last_name="Ångström")  # queued


async def test_a_name_finds_the_person_and_partial_words_list_everyone(tw: TwoWay) -> None:
    await _people(tw)

    one = await lookup(tw.engine, tw.config, "ada lovelace")
    by_last = await lookup(tw.engine, tw.config, "LOVELACE")
    several = await lookup(tw.engine, tw.config, "ada")
    queued = await lookup(tw.engine, tw.config, "zoë")
    nobody = await lookup(tw.engine, tw.config, "grace hopper")

    assert [m.source_id for m in one.matches] == ["dj_1"] and one.record is not None
    assert one.record["person"]["dripjobs_id"] == "dj_1"
    assert [m.source_id for m in by_last.matches] == ["dj_1"]
    assert [m.source_id for m in several.matches] == ["dj_1", "dj_2"]  # Ada, Adam: listed
    assert several.record is None
    assert [m.source_id for m in queued.matches] == ["dj_3"]  # never synced: from the queue
    assert nobody.matches == []


async def test_an_id_or_email_is_not_read_as_a_name(tw: TwoWay) -> None:
    await _people(tw)

    by_id = await lookup(tw.engine, tw.config, "dj_2")
    by_email = await lookup(tw.engine, tw.config, "dj_1@x.io")

    assert [m.source_id for m in by_id.matches] == ["dj_2"]
    assert [m.source_id for m in by_email.matches] == ["dj_1"]
