"""A first load finds double uploads set-wise (hashed instance ids, confirmed by the database) and builds the
instance-id index once, at its end."""

from __future__ import annotations

import sqlalchemy as sa

from forms.schema import FormSchema
from tests.conftest import household_submission
from warehouse.firstload import FirstLoad, instance_hash
from warehouse.protect import Pseudonymizer
from warehouse.store import Warehouse


def test_candidates_are_the_lower_ids_with_the_same_hash():
    memory = FirstLoad()
    assert memory.candidates([(5, "uuid:a"), (3, "uuid:a"), (4, "uuid:b"), (6, None), (7, "")]) == {5: [3]}
    assert memory.candidates([(9, "uuid:a"), (8, "uuid:c")]) == {9: [3, 5]}
    for n in range(200):  # runs merged as they grow: every earlier entry is still found
        memory.candidates([(100 + n, f"uuid:{n}")])
    assert memory.candidates([(1000, "uuid:7"), (1001, "uuid:a")]) == {1000: [107], 1001: [3, 5, 9]}
    assert len(memory) == 207 and instance_hash("uuid:a") == instance_hash("uuid:a")


def _instance_index(wh: Warehouse) -> bool:
    with wh.engine.connect() as conn:
        return any(ix["column_names"] == ["_instance_id"] for ix in sa.inspect(conn).get_indexes("household"))


def test_the_instance_index_waits_for_the_end_of_a_first_load(tmp_path, household_content):
    def open_form(wh: Warehouse):  # type: ignore[no-untyped-def]
        return wh.register_form(asset_uid="aHouse", server_url="https://kf.example.org", name="Household",
                                schema=FormSchema.from_content(household_content), version_uid="v1",
                                content=household_content)

    def warehouse(name: str) -> Warehouse:
        return Warehouse(str(tmp_path / name), load_path="columnar", pseudonymizer=Pseudonymizer("k" * 32))

    first_id = household_submission(1)["meta/instanceID"]
    wh = warehouse("w.db")
    form = open_form(wh)
    assert _instance_index(wh)
    run = wh.start_run("aHouse", "https://kf.example.org")
    wh.load_page(form, [household_submission(1)], None, run_id=run)
    assert not _instance_index(wh)  # dropped for the load
    wh.load_page(form, [household_submission(2, **{"meta/instanceID": first_id})], None, run_id=run)
    edited = household_submission(1, _uuid="edited", **{"meta/instanceID": "uuid:edited"})
    wh.load_page(form, [edited, household_submission(3, **{"meta/instanceID": first_id})], None, run_id=run)
    wh.finish_run(run, status="ok")
    assert _instance_index(wh)  # built once, at the end
    with wh.engine.connect() as conn:  # 3 is a double upload of 2 now: 1 no longer has that instance id
        assert conn.exec_driver_sql("SELECT _id, _duplicate_of FROM household ORDER BY _id").all() == \
            [(1, None), (2, 1), (3, 2)]
    wh.dispose()

    crashed = warehouse("c.db")
    crashed.load_page(open_form(crashed), [household_submission(1)], None)
    assert not _instance_index(crashed)
    crashed.dispose()  # the run ends without finish_run (a kill -9 in effect)
    again = warehouse("c.db")
    form = open_form(again)
    assert _instance_index(again)  # the next run builds it before it writes
    again.load_page(form, [household_submission(3, **{"meta/instanceID": first_id})], None)
    with again.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT _duplicate_of FROM household WHERE _id = 3").scalar_one() == 1
    again.dispose()
