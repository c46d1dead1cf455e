"""KoBoToolbox as a sync.source.Source: assets, their deployed versions, new data by watermark, the sweep.

New submissions are found with a watermark on (`_submission_time`, `_id`), KoBo's own fields: pages are
requested in that order with keyset paging (`query` picks up strictly after the last row of the previous
page; no `start` offsets that shift when submissions arrive or are deleted), each page carries the
watermark of its last row (stored with it in one transaction), and a run re-reads an overlap window before
the watermark (`$gte`), so submissions committed in the same second, or made visible late by KoBo (§9 of
the API notes: attachments are saved before the record appears), are not skipped; re-reading is harmless
because rows are upserted by `_id` and an unchanged submission (same JSON digest) is not rewritten.

Edits, validation-status changes and deletions do not move `_submission_time`; the sweep finds them
(sync.sweep, asking KoBo through sync.sweep_kobo).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from common.errors import FormBuildError, KoboRefused, KoboUnavailable
from common.text import storable
from forms.definition import schema_of_definition
from forms.schema import FormSchema
from sync.attachments import AttachmentRules, Downloaded, download_attachments
from sync.client import KoboClient, check_asset_uid, is_asset_uid
from sync.source import DataPage, FormVersion, Listing, OpenedForm, OverClient
from sync.sweep import SweepResult, SweepSettings, sweep
from sync.sweep_compare import Target
from sync.sweep_kobo import KoboSweepSource
from warehouse.convert import submission_id
from warehouse.store import SweepState, Watermark

ORDER = {"_submission_time": 1, "_id": 1}
KOBO_TIME = "%Y-%m-%dT%H:%M:%S"
VERSION_UID = re.compile(r"^v[0-9A-Za-z]{4,40}$")
DEPLOYED_SURVEYS = "asset_type:survey AND _deployment_status:deployed"


def schema_of(content: Mapping[str, Any], *, what: str, title: str | None = None,
              sensitive: tuple[str, ...] = ()) -> FormSchema:
    """The schema of a form definition a server sent: any shape it cannot read is a FormBuildError naming the
    form, never a crash."""
    try:
        return schema_of_definition(content, title=title, sensitive=sensitive)
    except FormBuildError as exc:
        raise FormBuildError(f"{what}: {exc}") from exc
    except (TypeError, ValueError, AttributeError, KeyError, IndexError, RecursionError) as exc:
        raise FormBuildError(f"{what}: the form definition the server sent cannot be read ({exc.__class__.__name__}: "
                             f"{storable(str(exc))[:120]})") from exc


def text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def content_of(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def deployed_content(client: KoboClient, asset: Mapping[str, Any]) -> tuple[str | None, Mapping[str, Any]]:
    """(version uid, content) of the version the asset is deployed with; the draft may differ."""
    deployed = text(asset.get("deployed_version_id"))
    if deployed and deployed != text(asset.get("version_id")):
        version = client.asset_version(check_asset_uid(text(asset.get("uid")) or ""), version_uid(deployed))
        return deployed, content_of(version.get("content"))
    return (deployed or text(asset.get("version_id"))), content_of(asset.get("content"))


def version_uid(value: str) -> str:
    if not VERSION_UID.match(value):
        raise KoboRefused(f"the server names a form version {storable(value)[:40]!r}, which is not a KoBo version uid")
    return value


def last_position(results: Sequence[Any]) -> Watermark | None:
    """The watermark of a page: (`_submission_time`, `_id`) of its last submission with a usable `_id`."""
    for s in reversed(results):
        if isinstance(s, Mapping):
            sid = submission_id(s.get("_id"))
            if isinstance(sid, int):
                when = s.get("_submission_time")
                return Watermark(when if isinstance(when, str) else "", sid)
    return None


def since(watermark: Watermark, overlap: dt.timedelta) -> str:
    """The `_submission_time` a run starts from: the watermark's second, less the overlap window."""
    try:
        start = dt.datetime.strptime(watermark.submission_time[:19], KOBO_TIME) - overlap
    except ValueError:
        return watermark.submission_time
    return start.strftime(KOBO_TIME)


def query_after(base: dict[str, Any] | None, cursor: Watermark | None) -> dict[str, Any] | None:
    if cursor is None:
        return base
    keyset = {"$or": [
        {"_submission_time": {"$gt": cursor.submission_time}},
        {"_submission_time": cursor.submission_time, "_id": {"$gt": cursor.submission_id}},
    ]}
    return {"$and": [base, keyset]} if base else keyset


class KoboSource(OverClient):
    """One KoBo server, through a KoboClient (sync.source.Source)."""

    kind = "kobo"
    label = "KoBo"
    client: KoboClient

    def __init__(self, client: KoboClient):
        super().__init__(client)

    def check_form_id(self, form_id: str) -> str:
        return check_asset_uid(form_id)

    def asset_uid(self, form_id: str) -> str:
        return form_id

    def form_id_of(self, asset_uid: str) -> str | None:
        return asset_uid if is_asset_uid(asset_uid) else None

    def list_forms(self) -> Listing:
        uids: list[str] = []
        skipped: list[tuple[str, str]] = []
        for item in self.client.iter_assets(DEPLOYED_SURVEYS):
            uid = item.get("uid")
            if is_asset_uid(uid):
                if uid not in uids:
                    uids.append(uid)
            else:
                skipped.append((str(uid)[:40], "the server listed it with a uid that is not a KoBo asset uid"))
        return Listing(uids, skipped)

    def open_form(self, form_id: str, *, sensitive: tuple[str, ...] = ()) -> OpenedForm:
        asset = self.client.asset(form_id)
        name = storable(text(asset.get("name")) or form_id)
        if asset.get("asset_type") not in (None, "survey"):
            raise KoboRefused(f"asset {form_id} ('{name}') is a {storable(str(asset.get('asset_type')))[:40]}, "
                              "not a survey: only surveys have submissions")
        if not asset.get("has_deployment", True) or not asset.get("deployed_version_id"):
            raise KoboRefused(f"asset {form_id} ('{name}') has not been deployed on {self.server_url}: deploy it "
                              "in KoBo first")
        version, content = deployed_content(self.client, asset)
        schema = schema_of(content, what=f"asset {form_id} ('{name}')", title=name, sensitive=sensitive)
        return OpenedForm(uid=form_id, name=name, deployed=FormVersion(version, content, schema))

    def version(self, form_id: str, version: str, *, sensitive: tuple[str, ...] = ()) -> FormVersion:
        if not VERSION_UID.match(version):
            raise KoboRefused(f"submissions name a form version {storable(version)[:40]!r}, which is not a KoBo "
                              "version uid")
        content = content_of(self.client.asset_version(form_id, version).get("content"))
        schema = schema_of(content, what=f"form version {version} of {form_id}", sensitive=sensitive)
        return FormVersion(version, content, schema)

    def versions_met(self, results: Sequence[Any]) -> set[str]:
        return {v for s in results if isinstance(s, Mapping) and (v := text(s.get("__version__")))}

    def new_data(self, form_id: str, watermark: Watermark | None, *, overlap: dt.timedelta, page_size: int,
                 state: Mapping[str, Any]) -> Iterator[DataPage]:
        base = {"_submission_time": {"$gte": since(watermark, overlap)}} if watermark else None
        cursor: Watermark | None = None
        while True:
            page = self.client.data_page(form_id, query=query_after(base, cursor), sort=ORDER, limit=page_size)
            if not page.results:
                yield DataPage([], None, page.count, page.dirty)
                return
            before, cursor = cursor, last_position(page.results)
            if cursor is None or (before is not None and (cursor.submission_time, cursor.submission_id) <=
                                  (before.submission_time, before.submission_id)):
                yield DataPage(page.results, None, page.count, page.dirty)  # keep what it holds, then stop
                raise KoboUnavailable(f"{self.server_url} answered a page of {form_id} that does not move past "
                                      f"submission {before.submission_id if before else '(none)'}: stopping "
                                      "instead of looping")
            yield DataPage(page.results, cursor, page.count, page.dirty)
            if not page.next:
                return

    def state_to_keep(self) -> dict[str, Any]:
        return {}

    def sweep(self, form_id: str, target: Target, state: SweepState, settings: SweepSettings,
              should_stop: Callable[[], bool] | None) -> SweepResult:
        source = KoboSweepSource(self.client, form_id, page_size=settings.page_size)
        return sweep(source, target, state, settings, should_stop)

    def download_attachments(self, rules: AttachmentRules, asset_key: str, form_id: str,
                             results: Sequence[Any]) -> Downloaded:
        return download_attachments(self.client, rules, asset_key, results)

    def server_count(self, form_id: str) -> int | None:
        count = self.client.asset(form_id).get("deployment__submission_count")
        return count if isinstance(count, int) and not isinstance(count, bool) else None
