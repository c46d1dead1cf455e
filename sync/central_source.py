"""ODK Central as a sync.source.Source: a project's forms, their published versions, new data by time, the sweep.

A form is a Central xmlFormId within the project the server's config names; the warehouse records it as
`<project>/<xmlFormId>`, so the same form id in two projects (or on two servers) is never mixed.

**New data.** Central stamps every submission with `submissionDate` (first received) and `updatedAt` (last
edit or review, §6), both filterable (§5.2), so a run asks for
`__system/submissionDate gt W or __system/updatedAt gt W` — W the watermark less the overlap window —
with `$expand=*` (repeats inline: one request a page, §5.5) and `$top`, following the `$skiptoken`
nextLinks (re-based on our server: sync.central_client). Central answers newest first and its cursors
cannot be combined with an order (§5.3), so the watermark (the newest stamp stored) moves only once the
last page is stored: a crash in between makes the next run read those pages again, which costs requests
and stores nothing twice (rows are upserted by `_id`, an unchanged one not rewritten). The first page is
asked with the ETag of the same question last time (§5.9) when that answer fitted in one page: when nothing
changed, the run is one 304. Central's ETag hashes only the rows of the page it answers (the newest `$top`),
so an answer of several pages keeps no ETag: a 304 on its first page would say nothing of the rest.

**The sweep** (sync.central_sweep): soft deletions by `__system/deletedAt`, and on the safety net's
schedule a listing of every id, for purges (no trace after 30 days, §8) and restorations (which move no
stamp).

**Encrypted forms** (managed encryption, §11) are refused with a clear message: OData never decrypts, and
decrypting them here is a later step.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from common.errors import ConfigError, FormBuildError, KoboRefused
from common.text import storable
from forms.definition import xform_definition
from forms.schema import FormSchema
from sync.attachments import AttachmentRules, Downloaded, download_attachments
from sync.central_client import CentralClient, check_xml_form_id
from sync.central_shape import Shaper
from sync.kobo_source import schema_of
from sync.source import DataPage, FormVersion, Listing, OpenedForm, OverClient
from sync.sweep import SweepResult, SweepSettings
from sync.sweep_compare import Target
from warehouse.store import SweepState, Watermark

CENTRAL_TIME = "%Y-%m-%dT%H:%M:%S.%f"


def central_time(moment: dt.datetime) -> str:
    """A UTC moment as Central writes it: milliseconds and `Z`."""
    return moment.strftime(CENTRAL_TIME)[:-3] + "Z"


def parse_time(text: str) -> dt.datetime | None:
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.astimezone(dt.UTC).replace(tzinfo=None) if moment.tzinfo else moment


class CentralSource(OverClient):
    """One ODK Central project, through a CentralClient (sync.source.Source)."""

    kind = "central"
    label = "Central"
    client: CentralClient

    def __init__(self, client: CentralClient, project: int):
        if not isinstance(project, int) or isinstance(project, bool) or project < 1:
            raise ConfigError(f"an ODK Central project is a number like 3, not {storable(str(project))[:20]!r}")
        super().__init__(client)
        self.project = project
        self._shapers: dict[str, Shaper] = {}
        self._keep: dict[str, Any] = {}

    # -- forms ------------------------------------------------------------------------------------------

    def check_form_id(self, form_id: str) -> str:
        return check_xml_form_id(form_id)

    def asset_uid(self, form_id: str) -> str:
        return f"{self.project}/{form_id}"

    def form_id_of(self, asset_uid: str) -> str | None:
        project, _, form_id = asset_uid.partition("/")
        return form_id if project == str(self.project) and form_id else None

    def list_forms(self) -> Listing:
        ids: list[str] = []
        skipped: list[tuple[str, str]] = []
        for form in self.client.forms(self.project):
            form_id = form.get("xmlFormId")
            try:
                check_xml_form_id(form_id)
            except ConfigError:
                skipped.append((str(form_id)[:40], "the server listed it with an id that is not an xmlFormId"))
                continue
            if not form.get("publishedAt"):
                continue  # a draft never published has no submissions to read
            if form_id not in ids:
                ids.append(form_id)
        return Listing(ids, skipped)

    def open_form(self, form_id: str, *, sensitive: tuple[str, ...] = ()) -> OpenedForm:
        form = self.client.form(self.project, form_id)
        name = storable(form.get("name") if isinstance(form.get("name"), str) and form.get("name") else form_id)
        where = f"form {form_id} ('{name}') of project {self.project} on {self.server_url}"
        if not form.get("publishedAt"):
            raise KoboRefused(f"{where} has never been published: publish it in Central first")
        if form.get("keyId") is not None:
            raise KoboRefused(f"{where} uses managed encryption: Central's OData gives its submissions only "
                              "encrypted, and amina does not decrypt them yet; export them from Central with the "
                              "passphrase meanwhile")
        version = form.get("version") if isinstance(form.get("version"), str) else None
        deployed = self._version(form_id, version, sensitive, current=True, title=name)
        return OpenedForm(uid=self.asset_uid(form_id), name=name, deployed=deployed)

    def version(self, form_id: str, version: str, *, sensitive: tuple[str, ...] = ()) -> FormVersion:
        return self._version(form_id, version, sensitive, current=False)

    def _version(self, form_id: str, version: str | None, sensitive: tuple[str, ...], *, current: bool,
                 title: str | None = None) -> FormVersion:
        xml = self.client.form_xml(self.project, form_id, None if current else version)
        definition = xform_definition(xml)
        schema: FormSchema = schema_of(definition, what=f"form {form_id} version {version or '(current)'}",
                                       title=title, sensitive=sensitive)
        if current:
            base = f"{self.client.server_url}/v1/projects/{self.project}/forms/{form_id}/submissions"
            self._shapers[form_id] = Shaper(schema, attachment_base=base)
        return FormVersion(version if version is not None else schema.version, definition, schema)

    def versions_met(self, results: Sequence[Any]) -> set[str]:
        return {v for s in results if isinstance(s, Mapping) and isinstance(v := s.get("__version__"), str) and v}

    def shaper(self, form_id: str) -> Shaper:
        shaper = self._shapers.get(form_id)
        if shaper is None:
            raise FormBuildError(f"form {form_id}: its definition was not read before its data")
        return shaper

    # -- new data ---------------------------------------------------------------------------------------

    def new_data(self, form_id: str, watermark: Watermark | None, *, overlap: dt.timedelta, page_size: int,
                 state: Mapping[str, Any]) -> Iterator[DataPage]:
        params = {"$top": str(page_size), "$expand": "*", "$count": "true"}
        if watermark is not None:
            moment = parse_time(watermark.submission_time)
            since = central_time(moment - overlap) if moment else watermark.submission_time
            params["$filter"] = f"__system/submissionDate gt {since} or __system/updatedAt gt {since}"
        path = f"{self.client.service(self.project, form_id)}/Submissions"
        question = f"{path}?{sorted(params.items())}"
        # "whole_etag": an ETag kept under the rule below (a warehouse of an older amina may hold an "etag" of a
        # first page only: it is never read)
        etag = state.get("whole_etag") if state.get("question") == question else None
        page = self.client.odata(path, params, etag=etag if isinstance(etag, str) else None)
        # Central's ETag hashes the rows of the page it answers, not the whole answer: it may stand for the
        # question only when one page held every row (no nextLink), else a 304 would hide changes further on
        whole = page.not_modified or not page.next
        self._keep = {"question": question,
                      "whole_etag": (page.etag or (etag if page.not_modified else None)) if whole else None}
        if page.not_modified:
            yield DataPage([], None, 0)
            return
        shaper = self.shaper(form_id)
        newest = watermark.submission_time if watermark else None
        for each in self.client.pages(page, form_id):
            rows = [r for r in each.rows if isinstance(r, Mapping)]
            for row in rows:
                newest = _newer(newest, row.get("__system"))
            odd = [r for r in each.rows if not isinstance(r, Mapping)]  # set aside by the warehouse, never lost
            yield DataPage([shaper.shape(r) for r in rows] + odd, None, each.count, each.dirty, raw=rows + odd)
        if newest is not None and (watermark is None or newest != watermark.submission_time):
            yield DataPage([], Watermark(newest, 0), None)  # everything read: the next run starts from here

    def state_to_keep(self) -> dict[str, Any]:
        return dict(self._keep)

    # -- the sweep and the rest --------------------------------------------------------------------------

    def sweep(self, form_id: str, target: Target, state: SweepState, settings: SweepSettings,
              should_stop: Callable[[], bool] | None) -> SweepResult:
        from sync.central_sweep import central_sweep

        return central_sweep(self, form_id, target, state, settings, should_stop)

    def download_attachments(self, rules: AttachmentRules, asset_key: str, form_id: str,
                             results: Sequence[Any]) -> Downloaded:
        return download_attachments(self.client, rules, asset_key, results)

    def server_count(self, form_id: str) -> int | None:
        count = self.client.form(self.project, form_id, extended=True).get("submissions")
        return count if isinstance(count, int) and not isinstance(count, bool) else None


def _newer(newest: str | None, system: Any) -> str | None:
    """The newest of `newest` and a row's submissionDate / updatedAt (as Central writes them)."""
    if not isinstance(system, Mapping):
        return newest
    for key in ("submissionDate", "updatedAt"):
        value = system.get(key)
        if isinstance(value, str) and parse_time(value) is not None and (
                newest is None or parse_time(newest) is None or parse_time(value) > parse_time(newest)):  # type: ignore[operator]
            newest = value
    return newest
