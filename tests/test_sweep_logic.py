"""The sweep's logic (sync.sweep) against a server in memory that may lie, on SQLite and PostgreSQL: what each
mechanism finds, what it costs in requests, and that no count, however wrong, marks anything deleted."""

from __future__ import annotations

import datetime as dt
import itertools
import random

import pytest

from common.errors import KoboError, KoboRefused, SyncInterrupted
from sync.sweep import SweepSettings, sweep
from sync.sweep_source import History
from tests.sweep_doubles import MemorySource, WarehouseTarget, edited, reviewed, submission
from warehouse.manifest import CHECK_POSITIONS, StoredForm, check_bit
from warehouse.protect import Pseudonymizer
from warehouse.store import SweepState, Warehouse, utcnow

N, PAGE = 1000, 10  # 100 pages: well above the size a full sweep is used for anyway
APPROVED = "validation_status_approved"
NOW = int(dt.datetime.now(dt.UTC).timestamp())


@pytest.fixture()
def warehouse(warehouse_url):
    wh = Warehouse(warehouse_url, pseudonymizer=Pseudonymizer("sweep-logic-key-0123456789"))
    yield wh
    wh.dispose()


@pytest.fixture()
def world(warehouse, household_schema, household_content):
    """A server of N submissions (ids 1..N) and a warehouse holding exactly them."""
    rng = random.Random(14)
    form = warehouse.register_form(asset_uid="aHouse", server_url="http://kobo.test", name="Household",
                                   schema=household_schema, version_uid="v1", content=household_content)
    docs = {i: submission(i, rng) for i in range(1, N + 1)}
    for start in range(1, N + 1, 500):
        warehouse.load_page(form, [docs[i] for i in range(start, min(start + 500, N + 1))], None)
    return rng, docs, MemorySource(docs, page_size=PAGE), WarehouseTarget(warehouse, form)


def state(**changes) -> SweepState:
    return SweepState(last_sweep_at=utcnow() - dt.timedelta(hours=1), **changes)


def run(source, target, *, full=False, fraction=0.5, position=0, sweep_state=None, stop=None):
    settings = SweepSettings(page_size=PAGE, max_delete_fraction=fraction, full=full, position=position)
    return sweep(source, target, sweep_state or state(), settings, stop)


def live(target) -> dict:
    return target.stored.manifest(None, None)


def as_server(docs) -> dict:
    from sync.sweep_kobo import sweep_state
    return {i: sweep_state(d) for i, d in docs.items()}


def test_an_unchanged_form_costs_four_requests_and_five_with_the_history(world):
    _rng, docs, source, target = world
    result = run(source, target)
    assert (result.mode, result.requests, result.deleted) == ("incremental", 5, 0)
    assert source.asked == ["history", "edited", "reviewed", "count", "check"]  # the history was refused (403)
    assert result.marks.history_denied_at is not None and result.marks.history_since is None
    denied = run(source, target, sweep_state=state(history_denied_at=utcnow()))
    assert denied.requests == 4  # refused less than a day ago: not asked again
    source.history = History()
    allowed = run(source, target, sweep_state=state(history_denied_at=utcnow() - dt.timedelta(days=2)))
    assert allowed.requests == 5 and allowed.marks.history_since is not None
    assert live(target) == as_server(docs)


def test_scattered_changes_are_each_found_by_their_mechanism(world):
    rng, docs, source, target = world
    ids = rng.sample(sorted(docs), 30)
    for i in ids[:10]:
        docs[i] = edited(docs[i], rng)
    for i in ids[10:20]:
        docs[i] = reviewed(docs[i], APPROVED, NOW - 60)
    for i in ids[20:]:
        del docs[i]
    result = run(source, target, sweep_state=state(validation_since=NOW - 3600))
    assert live(target) == as_server(docs)
    found = result.detail["mechanisms"]
    assert found["edited"]["found"] == {"edited": 10}
    assert found["validation"]["found"] == {"validation": 10}
    assert found["count"]["found"] == {"deleted": 10}
    assert result.deleted == 10 and result.marks.validation_since == NOW - 60
    assert result.requests <= 4 + 10 * 8 + 4, result.requests  # a few per deletion, not one per page
    assert run(source, target, sweep_state=state(history_denied_at=utcnow())).requests == 4  # nothing left


def test_the_history_finds_deletions_without_counting_down_to_them(world):
    rng, docs, source, target = world
    gone = rng.sample(sorted(docs), 10)
    roots = {docs[i]["meta/rootUuid"].removeprefix("uuid:") for i in gone}
    for i in gone:
        del docs[i]
    source.history = History(deleted=roots)
    result = run(source, target)
    assert result.detail["mechanisms"]["history"]["found"] == {"deleted": 10}
    assert result.detail["mechanisms"]["count"]["found"] == {}
    assert result.requests == 6  # history, its check of the ids, edited, reviews, count, check figure
    assert live(target) == as_server(docs)


def test_a_history_that_cannot_be_read_is_noted_and_the_checks_run(world):
    rng, docs, source, target = world
    source.history = KoboRefused("KoBo answered 404 for /api/v2/assets/aHouse/history/", status=404)
    gone = rng.choice(sorted(docs))
    del docs[gone]
    result = run(source, target)
    assert result.deleted == 1 and live(target) == as_server(docs)
    assert any("could not be read" in n for n in result.notes)
    assert result.marks.history_denied_at is None and result.marks.history_since is None


def test_a_lying_history_deletes_nothing_and_its_modifications_are_verified(world):
    rng, docs, source, target = world
    some = rng.sample(sorted(docs), 6)
    source.history = History(deleted={docs[i]["meta/rootUuid"].removeprefix("uuid:") for i in some[:3]},
                             modified={docs[i]["meta/rootUuid"].removeprefix("uuid:") for i in some[3:]})
    result = run(source, target)
    assert result.deleted == 0 and live(target) == as_server(docs)
    assert result.detail["mechanisms"]["history"]["found"] == {}  # fetched, found the same: nothing changed


def test_counts_that_are_no_counts_or_contradict_each_other_fall_back_to_listing(world):
    rng, docs, source, target = world
    gone = rng.sample(sorted(docs), 3)
    for i in gone:
        del docs[i]
    source.count_answer = lambda lo, hi, n: None if hi - lo < 300 else n  # smaller ranges: no usable count
    result = run(source, target)
    assert result.deleted == 3 and live(target) == as_server(docs)

    source.count_answer = lambda lo, hi, n: n + 2 if lo == 0 else max(n - 5, 0)  # halves less than the whole
    del docs[rng.choice(sorted(docs))]
    result = run(source, target)
    assert result.deleted == 1 and live(target) == as_server(docs)


def test_counts_alone_never_mark_anything_deleted(world):
    _rng, docs, source, target = world
    source.count_answer = lambda lo, hi, n: max(n - 7, 0)  # counts say 7 fewer everywhere; listings say all there
    source.check_answer = lambda lo, hi, n: n + 1
    result = run(source, target)
    assert result.deleted == 0 and live(target) == as_server(docs)


def test_a_server_counting_and_listing_nothing_is_never_read_as_all_deleted(world):
    _rng, docs, source, target = world
    source.count_answer = source.check_answer = lambda lo, hi, n: 0
    source.listing_hides = set(docs)
    source.counter = N
    with pytest.raises(KoboError, match=f"found none of the {N:,} stored submissions"):
        run(source, target)
    with pytest.raises(KoboError, match="found none"):
        run(source, target, fraction=1.0)  # the server's own counter still says N
    assert len(live(target)) == N
    source.counter = 0
    assert run(source, target, fraction=1.0).deleted == N


def test_more_than_the_allowed_share_gone_stops_and_marks_nothing(world):
    _rng, docs, source, target = world
    source.listing_hides = set(list(docs)[: N // 2 + 10])
    source.count_answer = lambda lo, hi, n: n - sum(1 for i in source.listing_hides if lo <= i < hi)
    with pytest.raises(KoboError, match="stored submissions missing"):
        run(source, target)
    assert len(live(target)) == N


def test_a_late_arrival_and_a_deletion_in_one_range_are_told_apart_by_the_check_figure(world):
    rng, docs, source, target = world
    stored = live(target)
    # a pair whose check bits differ at every position: whichever the run uses, the figure moves
    late, deleted = next((a, b) for a, b in itertools.combinations(sorted(stored), 2)
                         if all(check_bit(stored[a], p) != check_bit(stored[b], p) for p in range(CHECK_POSITIONS)))
    _forget(target, late)  # as if the warehouse never had it...
    del docs[deleted]  # ...and another one went: the counts cancel out
    assert StoredForm(target.warehouse, target.form).figures(None, None, 0).total == len(docs)
    result = run(source, target, position=rng.randrange(CHECK_POSITIONS))
    assert result.detail["mechanisms"]["count"]["found"] == {"deleted": 1, "missed": 1}
    assert live(target) == as_server(docs)


def test_a_submission_the_warehouse_sets_aside_does_not_make_every_sweep_list_everything(world):
    rng, docs, source, target = world
    refused = rng.choice(sorted(docs))
    _forget(target, refused)
    target.refused = {refused}  # the server has it; each time it is fetched, the warehouse quarantines it
    result = run(source, target)
    assert result.detail["mechanisms"]["count"]["found"] == {"missed": 1} and result.deleted == 0
    assert result.requests < 4 + 2 * 8 + 4, result.requests  # followed down once, not listed in full


def test_what_no_figure_sees_the_full_sweep_finds(world):
    _rng, docs, source, target = world
    stored = live(target)
    pairs = itertools.combinations(sorted(stored), 2)
    same = [(a, b) for a, b in pairs if all(check_bit(stored[a], p) == check_bit(stored[b], p)
                                            for p in range(CHECK_POSITIONS))]
    late, deleted = same[0]  # the same check bit at every position: they cancel out in both figures
    _forget(target, late)
    del docs[deleted]
    c1, c2 = next((a, b) for a, b in itertools.combinations(sorted(set(docs) - {late}), 2)
                  if all(check_bit(stored[a], p) != check_bit(stored[b], p) for p in range(CHECK_POSITIONS)))
    for i in (c1, c2):  # reviewed two hours ago, stored so; then both cleared, which moves the figure both ways
        docs[i] = reviewed(docs[i], APPROVED, NOW - 7200)
        target.warehouse.load_page(target.form, [docs[i]], None)
        docs[i] = reviewed(docs[i], None, 0)
    quiet = run(source, target, sweep_state=state(validation_since=NOW))
    assert quiet.deleted == 0 and live(target) != as_server(docs)  # the incremental sweep cannot see these
    full = run(source, target, full=True)
    assert full.mode == "full" and full.deleted == 1
    assert full.detail["mechanisms"]["full_sweep"]["found"] == {"deleted": 1, "missed": 1, "validation": 2}
    assert N // PAGE <= full.requests <= N // PAGE + 3  # every page, and a fetch per page with a change
    assert live(target) == as_server(docs)


def test_many_changes_cost_no_more_than_listing_everything(world):
    rng, docs, source, target = world
    for i in rng.sample(sorted(docs), 300):
        del docs[i]
    result = run(source, target)
    assert result.deleted == 300 and live(target) == as_server(docs)
    assert result.detail["mechanisms"]["count"]["requests"] <= 2 + N // PAGE + 1


def test_a_stop_during_the_sweep_marks_nothing_deleted(world):
    rng, docs, source, target = world
    for i in rng.sample(sorted(docs), 5):
        del docs[i]
    asked = iter(range(1000))
    with pytest.raises(SyncInterrupted, match="deletions were not marked"):
        run(source, target, stop=lambda: next(asked) > 4)
    assert len(live(target)) == N


def test_a_small_form_is_always_swept_in_full(warehouse, household_schema, household_content):
    rng = random.Random(1)
    form = warehouse.register_form(asset_uid="aSmall", server_url="http://kobo.test", name="Small",
                                   schema=household_schema, version_uid="v1", content=household_content)
    docs = {i: submission(i, rng) for i in range(1, 36)}
    warehouse.load_page(form, list(docs.values()), None)
    source = MemorySource(docs, page_size=PAGE)
    result = run(source, WarehouseTarget(warehouse, form))
    assert (result.mode, result.requests) == ("full", 4)  # 4 pages: as cheap as the incremental sweep, and exact


def _forget(target: WarehouseTarget, sid: int) -> None:
    """Remove a submission from the warehouse altogether, as if it had never been loaded."""
    import sqlalchemy as sa

    from warehouse import bookkeeping as bk
    with target.warehouse.engine.begin() as conn:
        for table in reversed(target.form.tables.all_tables()):
            key = table.c._id if table is target.form.tables.root else table.c._submission_id
            conn.execute(table.delete().where(key == sid))
        conn.execute(bk.submissions_raw.delete().where(bk.submissions_raw.c.submission_id == sid))
        conn.execute(bk.attachments.delete().where(bk.attachments.c.submission_id == sid))
        conn.execute(sa.delete(bk.restricted_values).where(bk.restricted_values.c.submission_id == sid))
