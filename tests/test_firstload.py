"""The first-load memory answers double-upload lookups as the database would, and follows rollbacks."""

from __future__ import annotations

from warehouse.firstload import FirstLoad


def test_earliest_lower_id_with_the_same_instance():
    memory = FirstLoad()
    memory.store([(5, "uuid:a"), (3, "uuid:a"), (9, "uuid:a"), (4, "uuid:b"), (6, None), (7, "")])
    assert [memory.first_of(sid, i) for sid, i in [(5, "uuid:a"), (3, "uuid:a"), (9, "uuid:a"), (4, "uuid:b")]] == \
        [3, None, 3, None]
    assert memory.first_of(6, None) is None and memory.first_of(7, "") is None


def test_an_edit_moves_a_submission_to_its_new_instance():
    memory = FirstLoad()
    memory.store([(1, "uuid:a"), (2, "uuid:a")])
    memory.commit()
    memory.store([(1, "uuid:edited")])  # _id 1 rewritten with a new instanceID
    assert memory.first_of(2, "uuid:a") is None and memory.first_of(3, "uuid:edited") == 1


def test_a_rolled_back_page_is_forgotten():
    memory = FirstLoad()
    memory.store([(1, "uuid:a")])
    memory.commit()
    memory.store([(2, "uuid:b"), (1, "uuid:c"), (3, "uuid:a")])
    memory.rollback()
    assert memory.first_of(4, "uuid:a") == 1
    assert memory.first_of(4, "uuid:b") is None and memory.first_of(4, "uuid:c") is None


def _instance_index(wh) -> bool:
    import sqlalchemy as sa

    with wh.engine.connect() as conn:
        return any(ix["column_names"] == ["_instance_id"] for ix in sa.inspect(conn).get_indexes("household"))


def test_the_instance_index_waits_for_the_end_of_a_first_load(tmp_path, household_content):
    from forms.schema import FormSchema
    from tests.conftest import household_submission
    from warehouse.protect import Pseudonymizer
    from warehouse.store import Warehouse

    def open_form(wh):
        return wh.register_form(asset_uid="aHouse", server_url="https://kf.example.org", name="Household",
                                schema=FormSchema.from_content(household_content), version_uid="v1",
                                content=household_content)

    wh = Warehouse(str(tmp_path / "w.db"), load_path="columnar", pseudonymizer=Pseudonymizer("k" * 32))
    form = open_form(wh)
    assert _instance_index(wh)
    run = wh.start_run("aHouse", "https://kf.example.org")
    wh.load_page(form, [household_submission(1)], None, run_id=run)
    assert not _instance_index(wh)  # dropped for the load
    second = household_submission(2, **{"meta/instanceID": household_submission(1)["meta/instanceID"]})
    wh.load_page(form, [second], None, run_id=run)
    wh.finish_run(run, status="ok")
    assert _instance_index(wh)  # built once, at the end
    with wh.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT _id, _duplicate_of FROM household ORDER BY _id").all() == \
            [(1, None), (2, 1)]
    wh.dispose()

    crashed = Warehouse(str(tmp_path / "c.db"), load_path="columnar", pseudonymizer=Pseudonymizer("k" * 32))
    crashed.load_page(open_form(crashed), [household_submission(1)], None)
    assert not _instance_index(crashed)
    crashed.dispose()  # the run ends without finish_run (a kill -9 in effect)
    again = Warehouse(str(tmp_path / "c.db"), load_path="columnar", pseudonymizer=Pseudonymizer("k" * 32))
    form = open_form(again)
    assert _instance_index(again)  # the next run builds it before it writes
    again.load_page(form, [household_submission(3, **{"meta/instanceID": household_submission(1)["meta/instanceID"]})],
                    None)
    with again.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT _duplicate_of FROM household WHERE _id = 3").scalar_one() == 1
    again.dispose()
