"""Publishing an XLSForm to KoBo through its API, the way KoBo's own web app does it.

Upload the `.xlsx` to `/api/v2/imports/` (with `library=false`, or KoBo makes a library block, not a
project), poll the import until it is `complete`, then deploy with `active: true` (KoBo's default is
an *archived* deployment) — or, for an existing asset, import with `destination` and redeploy with
the new `version_id`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import orjson

from common.errors import KoboError
from sync.client import KoboClient


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
    task = orjson.loads(resp.content)
    waited, delay = 0.0, poll_seconds
    while True:
        status = client.get_json(f"/api/v2/imports/{task['uid']}/")
        if status.get("status") == "complete":
            break
        if status.get("status") == "error":
            messages = status.get("messages") or {}
            raise KoboError(f"KoBo could not import {filename}: {messages.get('error_type', 'error')}: "
                            f"{messages.get('error', 'no reason given')}")
        if waited >= timeout:
            raise KoboError(f"KoBo was still processing the import of {filename} after {timeout:.0f} s")
        sleep(delay)
        waited += delay
        delay = min(delay * 2, 5.0)
    messages = status.get("messages") or {}
    touched = (messages.get("updated") if asset_uid else messages.get("created")) or []
    if not touched:
        raise KoboError(f"KoBo imported {filename} but named no asset in its answer")
    uid = str(touched[0]["uid"])
    asset = client.asset(uid)
    if asset.get("has_deployment"):
        body = {"active": True, "version_id": asset["version_id"]}
        deployed = client.request("PATCH", f"/api/v2/assets/{uid}/deployment/", json=body)
    else:
        deployed = client.request("POST", f"/api/v2/assets/{uid}/deployment/", json={"active": True})
    info = orjson.loads(deployed.content)
    return Published(asset_uid=uid, version_id=str(info.get("version_id")),
                     redeployed=bool(asset.get("has_deployment")))
