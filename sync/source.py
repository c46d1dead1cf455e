"""What the sync engine asks of a server, whichever it is: the `Source` interface.

The engine (sync.engine) and the warehouse never know which server they talk to; a source answers in
the shapes below, and every submission it hands over is shaped as KoBo's data API gives it (flat
`group/question` keys, repeats as lists of dicts keyed by full paths, `_id` a positive integer, `_uuid`
changing on every edit, `_submission_time`, `_validation_status`, `__version__`), which is what the
warehouse's conversion boundary reads. Two implementations: sync.kobo_source (KoBoToolbox) and
sync.central_source (ODK Central).

A form is named by the server's own id (`form_id`: a KoBo asset uid, a Central xmlFormId); the warehouse
records it as `asset_uid` with the server's URL, so (server, form) is the asset's identity.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from forms.schema import FormSchema
from sync.attachments import AttachmentRules, Downloaded
from sync.sweep import SweepResult, SweepSettings
from sync.sweep_compare import Target
from warehouse.store import SweepState, Watermark


@dataclass(frozen=True, slots=True)
class FormVersion:
    """One version of a form: its id on the server, the definition recorded for it (JSON: KoBo content, or
    forms.definition's wrapped XForm), and its schema."""

    version: str | None
    definition: Mapping[str, Any]
    schema: FormSchema


@dataclass(frozen=True, slots=True)
class OpenedForm:
    """A form the server will give submissions of: its uid as the warehouse records it, its name, and the
    version deployed now."""

    uid: str
    name: str
    deployed: FormVersion


@dataclass(frozen=True, slots=True)
class DataPage:
    """A page of submissions, KoBo-shaped. `watermark`: where the next run may start once this page is stored
    (None: not yet — a source whose pages come newest first moves it only after the last one). `count`: what
    the server said matches the run's question, when it says. `dirty`: text no database can store was met."""

    results: list[Any]
    watermark: Watermark | None = None
    count: int | None = None
    dirty: bool = False
    raw: list[Any] | None = None  # what the server sent, when it differs from `results` (kept as the raw JSON)


@dataclass(frozen=True, slots=True)
class Listing:
    """The forms a server lists for "all": their ids, and those left out with the reason."""

    form_ids: list[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)


class Source(Protocol):
    kind: str  # "kobo" | "central"
    label: str  # how messages name the server's kind
    server_url: str

    @property
    def requests_made(self) -> int: ...

    @property
    def bytes_received(self) -> int: ...

    def close(self) -> None: ...

    def check_form_id(self, form_id: str) -> str:
        """The id, if it is one this server could have (it goes into URLs and paths); ConfigError otherwise."""
        ...

    def asset_uid(self, form_id: str) -> str:
        """The form as the warehouse records it with the server's URL (`forms.asset_uid`)."""
        ...

    def form_id_of(self, asset_uid: str) -> str | None:
        """The form id of a recorded asset uid of this source (None: not one of its forms)."""
        ...

    def list_forms(self) -> Listing:
        """Every form with submissions the credentials can read (for "all")."""
        ...

    def open_form(self, form_id: str, *, sensitive: tuple[str, ...] = ()) -> OpenedForm:
        """The form and its deployed version; a refusal when it cannot be synced (not deployed, encrypted …)."""
        ...

    def version(self, form_id: str, version: str, *, sensitive: tuple[str, ...] = ()) -> FormVersion:
        """One version of the form, met in the data."""
        ...

    def versions_met(self, results: Sequence[Any]) -> set[str]:
        """The form versions the submissions of a page were collected with."""
        ...

    def new_data(self, form_id: str, watermark: Watermark | None, *, overlap: dt.timedelta, page_size: int,
                 state: Mapping[str, Any]) -> Iterator[DataPage]:
        """Every submission new or changed since the watermark (less the overlap), page by page. `state`: what the
        source kept from its last run (sync.engine records `state_to_keep()` when the run succeeds)."""
        ...

    def state_to_keep(self) -> dict[str, Any]:
        """What the source wants to find in `state` next run (e.g. an ETag); recorded only on success."""
        ...

    def sweep(self, form_id: str, target: Target, state: SweepState, settings: SweepSettings,
              should_stop: Callable[[], bool] | None) -> SweepResult:
        """Find what the new data cannot show (deletions, restores, …) and store or mark it through `target`."""
        ...

    def download_attachments(self, rules: AttachmentRules, asset_key: str, form_id: str,
                             results: Sequence[Any]) -> Downloaded:
        ...

    def server_count(self, form_id: str) -> int | None:
        """How many submissions the server has of the form (for `amina status`), when it says."""
        ...


class OverClient:
    """What a source reading through one sync.http.ServerClient shares: the server's URL, the client's
    request and byte counters, closing it."""

    def __init__(self, client: Any):
        self.client = client
        self.server_url: str = client.server_url

    @property
    def requests_made(self) -> int:
        return self.client.requests_made

    @property
    def bytes_received(self) -> int:
        return self.client.bytes_received

    def close(self) -> None:
        self.client.close()
