"""The sweep's questions (sync.sweep_source) asked of KoBo, with KoBo's own API (/work/shared/kobo-api.md):

- a count: KoBo computes `count` for any `query` (Mongo `count_documents`, §1), so `limit=1` and
  `fields=["_id"]` with `query={"_id": {"$gte": a, "$lt": b}}` tells how many submissions a range holds;
- the check figure of a range: the same count, of `$or` of `_uuid` `$regex` and `_validation_status.uid`
  `$exists` (KoBo keeps `_validation_status.` keys as dotted paths, §1);
- a manifest (id, `_uuid`, validation status) of a range, of the ever-edited set
  (`{"meta/deprecatedID": {"$exists": true}}`, §3) or of the reviews since a time
  (`{"_validation_status.timestamp": {"$gte": t}}`, §3), with keyset paging on `_id`;
- the project history (`/api/v2/assets/{uid}/history/`, §3: needs `manage_asset`, 403 otherwise; newest
  first; look-back limited by the plan), filtered to `modify-submission` and `delete-submission`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from common.errors import KoboRefused, KoboUnavailable
from sync.client import KoboClient
from sync.sweep_source import Denied, Fetched, History, Listed
from warehouse.convert import BadValue, from_unix_seconds, submission_id
from warehouse.manifest import CHECK_DIGITS, State

SWEEP_FIELDS = ["_id", "_uuid", "_validation_status"]
PRESENT_FIELDS = ["_id"]
REFETCH_BATCH = 100  # ids per `$in` query: keeps the URL well under proxies' 8 KB line limit
HISTORY_ACTIONS = {"modify-submission": "modified", "delete-submission": "deleted"}
MAX_HISTORY_PAGES = 20  # newest first: a history longer than this since the last sweep is left to the checks
KOBO_LOG_TIME = "%Y-%m-%dT%H:%M:%SZ"  # how KoBo's history serializes date_created


def sweep_state(item: Mapping[str, Any]) -> State:
    """(_uuid, validation uid, validation time in whole seconds) of a submission, as the warehouse stores them."""
    status = item.get("_validation_status")
    status = status if isinstance(status, Mapping) else {}
    uid = status.get("uid")
    stamp = status.get("timestamp")
    try:
        at = int(stamp) if stamp is not None and from_unix_seconds(stamp) else None
    except BadValue:
        at = None
    uuid = item.get("_uuid")
    return (uuid if isinstance(uuid, str) else "", uid if isinstance(uid, str) else None, at)


def check_query(lo: int, hi: int, position: int) -> dict[str, Any]:
    """The query whose count is the check figure of [lo, hi) (warehouse.manifest.check_bit)."""
    digits = f"^.{{{position}}}[{CHECK_DIGITS[0]}-{CHECK_DIGITS[-1]}]"
    return {"$and": [{"_id": {"$gte": lo, "$lt": hi}}, {"$or": [
        {"_uuid": {"$regex": digits}, "_validation_status.uid": {"$exists": False}},
        {"_uuid": {"$not": {"$regex": digits}}, "_validation_status.uid": {"$exists": True}},
    ]}]}


class KoboSweepSource:
    """sync.sweep_source.SweepSource for one KoBo asset."""

    has_check_figure = True

    def __init__(self, client: KoboClient, asset_uid: str, *, page_size: int):
        self.client = client
        self.uid = self.name = asset_uid
        self.server_url = client.server_url
        self.page_size = page_size

    def requests_made(self) -> int:
        return self.client.requests_made

    def bytes_received(self) -> int:
        return self.client.bytes_received

    # -- counts ---------------------------------------------------------------------------------------

    def count(self, lo: int, hi: int) -> int | None:
        return self._count({"_id": {"$gte": lo, "$lt": hi}}, hi - lo)

    def count_check(self, lo: int, hi: int, position: int) -> int | None:
        return self._count(check_query(lo, hi, position), hi - lo)

    def _count(self, query: Mapping[str, Any], most: int) -> int | None:
        """A count no larger than the range can hold; anything else is no count."""
        found = self.client.count(self.uid, query)
        return found if found is not None and found <= most else None

    # -- manifests ------------------------------------------------------------------------------------

    def listing(self, lo: int | None, hi: int | None) -> Iterator[Listed]:
        return self._manifest({}, lo, hi)

    def edited(self) -> Iterator[Listed]:
        return self._manifest({"meta/deprecatedID": {"$exists": True}}, None, None)

    def reviewed_since(self, since: int) -> Iterator[Listed]:
        return self._manifest({"_validation_status.timestamp": {"$gte": since}}, None, None)

    def _manifest(self, base: Mapping[str, Any], lo: int | None, hi: int | None) -> Iterator[Listed]:
        """Keyset pages in `_id` order of `base` within [lo, hi); an answer that does not move past the previous
        page raises (no infinite loop); items without a usable `_id`, or outside what was asked, are counted
        as unusable and left out."""
        after: int | None = None
        while True:
            ids: dict[str, int] = {}
            if after is not None:
                ids["$gt"] = after
            elif lo is not None:
                ids["$gte"] = lo
            if hi is not None:
                ids["$lt"] = hi
            query = {**base, "_id": ids} if ids else dict(base)
            page = self.client.data_page(self.uid, query=query or None, sort={"_id": 1}, fields=SWEEP_FIELDS,
                                         limit=self.page_size)
            entries: dict[int, State] = {}
            unusable = 0
            for item in page.results:
                sid = submission_id(item.get("_id")) if isinstance(item, Mapping) else "not an object"
                if (isinstance(sid, int) and (after is None or sid > after) and (lo is None or sid >= lo)
                        and (hi is None or sid < hi)):
                    entries[sid] = sweep_state(item)
                else:
                    unusable += 1
            last_page = not page.next or not page.results
            if not last_page and not entries:
                raise KoboUnavailable(f"{self.client.server_url} answered a sweep page of {self.uid} that does not "
                                      f"move past submission {after}: stopping instead of looping")
            ordered = sorted(entries.items())
            through = None if last_page else ordered[-1][0]
            yield Listed(ordered, through, unusable)
            if last_page:
                return
            after = through

    def present(self, ids: Sequence[int]) -> set[int]:
        found: set[int] = set()
        wanted = sorted(set(ids))
        for i in range(0, len(wanted), REFETCH_BATCH):
            batch = wanted[i:i + REFETCH_BATCH]
            page = self.client.data_page(self.uid, query={"_id": {"$in": batch}}, sort={"_id": 1},
                                         fields=PRESENT_FIELDS, limit=len(batch))
            found |= {sid for item in page.results if isinstance(item, Mapping)
                      and isinstance(sid := submission_id(item.get("_id")), int)}
        return found & set(wanted)

    def fetch(self, ids: Sequence[int]) -> Iterator[Fetched]:
        wanted = sorted(set(ids))
        for i in range(0, len(wanted), REFETCH_BATCH):
            batch = wanted[i:i + REFETCH_BATCH]
            page = self.client.data_page(self.uid, query={"_id": {"$in": batch}}, sort={"_id": 1}, limit=len(batch))
            states = [(sid, sweep_state(item)) for item in page.results if isinstance(item, Mapping)
                      and isinstance(sid := submission_id(item.get("_id")), int)]
            yield Fetched(page.results, page.dirty, states)

    def total_on_server(self) -> int | None:
        counted = self.client.asset(self.uid).get("deployment__submission_count")
        return counted if isinstance(counted, int) and not isinstance(counted, bool) else None

    # -- history --------------------------------------------------------------------------------------

    def history_since(self, since: dt.datetime) -> History:
        actions = " OR ".join(f"action:{a}" for a in HISTORY_ACTIONS)
        q = f'({actions}) AND date_created__gte:"{since.strftime(KOBO_LOG_TIME)}"'
        out = History()
        start = 0
        for _ in range(MAX_HISTORY_PAGES):
            try:
                page = self.client.history_page(self.uid, q=q, start=start, limit=self.page_size)
            except KoboRefused as exc:
                if exc.status in (401, 403):
                    raise Denied(str(exc)) from exc
                raise
            for entry in page.results:
                found = _history_entry(entry)
                if found is None:
                    out.skipped += 1
                else:
                    getattr(out, found[0]).add(found[1])
            if not page.next or not page.results:
                return out
            start += len(page.results)
        out.complete = False
        return out


def _history_entry(entry: Any) -> tuple[str, str] | None:
    """("modified" | "deleted", root uuid) of a history entry, or None when it is not what it should be."""
    if not isinstance(entry, Mapping):
        return None
    action = entry.get("action")
    kind = HISTORY_ACTIONS.get(action) if isinstance(action, str) else None
    metadata = entry.get("metadata")
    submission = metadata.get("submission") if isinstance(metadata, Mapping) else None
    root = submission.get("root_uuid") if isinstance(submission, Mapping) else None
    if kind is None or not isinstance(root, str):
        return None
    root = root.removeprefix("uuid:").strip()
    if not root or len(root) > 200 or not root.isprintable():
        return None
    return kind, root
