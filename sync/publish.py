"""Publishing an XLSForm to KoBo through its API, the way KoBo's own web app does it.

Upload the `.xlsx` to `/api/v2/imports/` (with `library=false`, or KoBo makes a library block, not a
project), poll the import until it is `complete`, then deploy with `active: true` (KoBo's default is
an *archived* deployment) — or, for an existing asset, import with `destination` and redeploy with
the new `version_id`.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from common.errors import KoboError
from sync.client import KoboClient, check_asset_uid, parse_json

_IMPORT_UID = re.compile(r"^i[0-9A-Za-z]{10,40}\Z")


def _answer(body: bytes, what: str) -> dict[str, Any]:
    try:
        value = parse_json(body).body
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise KoboError(f"KoBo's answer to {what} is not a JSON object")
    return value


@dataclass(frozen=True, slots=True)
class Published:
    asset_uid: str
    version_id: str
    redeployed: bool


def publish_xlsform(client: KoboClient, xlsx: bytes, filename: str, *, asset_uid: str | None = None,
                    poll_seconds: float = 0.2, timeout: float = 120.0,
                    sleep: Callable[[float], None] = time.sleep) -> Published:
    data = {"library": "false", "name": filename}
    if asset_uid:
        data["destination"] = f"{client.server_url}/api/v2/assets/{asset_uid}/"
    resp = client.request("POST", "/api/v2/imports/", data=data,
                          files={"file": (filename, xlsx, "application/vnd.openxmlformats-officedocument"
                                                               ".spreadsheetml.sheet")})
    task = _answer(resp.content, f"the upload of {filename}")
    import_uid = task.get("uid")
    if not isinstance(import_uid, str) or not _IMPORT_UID.match(import_uid):
        raise KoboError(f"KoBo's answer to the upload of {filename} names no import task")
    waited, delay = 0.0, poll_seconds
    while True:
        status = client.get_json(f"/api/v2/imports/{import_uid}/")
        status = status if isinstance(status, dict) else {}
        if status.get("status") == "complete":
            break
        if status.get("status") == "error":
            messages = status.get("messages") if isinstance(status.get("messages"), dict) else {}
            raise KoboError(f"KoBo could not import {filename}: {messages.get('error_type', 'error')}: "
                            f"{messages.get('error', 'no reason given')}")
        if waited >= timeout:
            raise KoboError(f"KoBo was still processing the import of {filename} after {timeout:.0f} s")
        sleep(delay)
        waited += delay
        delay = min(delay * 2, 5.0)
    messages = status.get("messages") if isinstance(status.get("messages"), dict) else {}
    touched = (messages.get("updated") if asset_uid else messages.get("created")) or []
    first = touched[0] if isinstance(touched, list) and touched and isinstance(touched[0], dict) else {}
    if not first.get("uid"):
        raise KoboError(f"KoBo imported {filename} but named no asset in its answer")
    uid = check_asset_uid(first["uid"])
    asset = client.asset(uid)
    if asset.get("has_deployment"):
        body = {"active": True, "version_id": asset["version_id"]}
        deployed = client.request("PATCH", f"/api/v2/assets/{uid}/deployment/", json=body)
    else:
        deployed = client.request("POST", f"/api/v2/assets/{uid}/deployment/", json={"active": True})
    info = _answer(deployed.content, f"the deployment of {uid}")
    return Published(asset_uid=uid, version_id=str(info.get("version_id")),
                     redeployed=bool(asset.get("has_deployment")))


@dataclass(frozen=True, slots=True)
class PublishedForm:
    """A form published on a server: its form id there (a KoBo asset uid, a Central xmlFormId)."""

    form_id: str
    redeployed: bool
    unchanged: bool = False  # this version was already the published one: nothing was sent


def publish_form(source: Any, form: Any, *, asset_uid: str | None = None) -> PublishedForm:
    """Publish a compiled form (forms.build.CompiledForm) on the source's server: KoBo through its imports API
    (the .xlsx), ODK Central as its XForm (odk-central-api.md §3): created and published in the project, or,
    when the form exists, a draft of the new XForm published with the form's stamped version (publishing a
    version that was published before is refused by Central, 409.6)."""
    if source.kind == "kobo":
        published = publish_xlsform(source.client, form.xlsx, f"{form.name}.xlsx", asset_uid=asset_uid)
        return PublishedForm(published.asset_uid, published.redeployed)
    return publish_central(source.client, source.project, form.xform)


def publish_central(client: Any, project: int, xform: str) -> PublishedForm:
    from forms.xform import parse_xform
    from sync.central_client import check_xml_form_id

    parsed = parse_xform(xform)
    form_id = check_xml_form_id(parsed.form_id)
    try:
        current = client.form(project, form_id)
    except KoboError as exc:
        if getattr(exc, "status", None) != 404:
            raise
        client.create_form(project, xform.encode("utf-8"), publish=True)
        return PublishedForm(form_id, redeployed=False)
    if parsed.version and current.get("version") == parsed.version:
        return PublishedForm(form_id, redeployed=False, unchanged=True)  # Central would refuse it (409.6)
    client.create_draft(project, form_id, xform.encode("utf-8"))
    try:
        client.publish_draft(project, form_id)
    except KoboError:
        with contextlib.suppress(KoboError):  # leave the form as it was: no draft behind
            client.delete_draft(project, form_id)
        raise
    return PublishedForm(form_id, redeployed=True)
