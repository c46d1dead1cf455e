from __future__ import annotations

from warehouse.naming import MAX_IDENTIFIER, NameAllocator, identifier


def test_identifier_is_snake_and_short():
    assert identifier("Training Attendance-2026") == "training_attendance_2026"
    assert identifier("2nd round") == "_2nd_round"
    long_a = "group_" * 20 + "a"
    long_b = "group_" * 20 + "b"
    assert len(identifier(long_a)) <= MAX_IDENTIFIER
    assert identifier(long_a) != identifier(long_b)
    assert identifier(long_a) == identifier(long_a)  # deterministic


def test_non_latin_names_get_a_stable_identifier():
    assert identifier("الاسم") == identifier("الاسم")
    assert identifier("الاسم").startswith("x_")


def test_allocator_resolves_collisions_deterministically():
    names = NameAllocator(reserved={"_id"})
    assert names.claim("age", "a/age") == "age"
    assert names.claim("age", "a/age") == "age"  # same source, same name
    other = names.claim("age", "b/age")
    assert other != "age" and other.startswith("age_")
    assert names.claim("_id", "q/_id") != "_id"
    assert names.claim_first(["name", "g__name"], "g/name") == "name"
    assert names.claim_first(["name", "h__name"], "h/name") == "h__name"
