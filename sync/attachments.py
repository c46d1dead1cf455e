"""Downloading submissions' attachments (photos of attendance sheets, audio…) next to the warehouse.

Files go to `<directory>/<asset uid>/<submission _id>/<basename>`; a file already there is not fetched
again, so a re-run or an unchanged submission costs nothing. Attachments can be personal data: keep the
directory where only data managers can read it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from sync.client import KoboClient

log = logging.getLogger(__name__)


def attachment_path(directory: Path, asset_uid: str, submission_id: int, item: Mapping[str, Any]) -> Path:
    name = str(item.get("media_file_basename") or str(item.get("filename", "file")).rsplit("/", 1)[-1])
    safe = name.replace("/", "_").replace("\\", "_").lstrip(".") or "file"
    return directory / asset_uid / str(submission_id) / safe


def download_attachments(client: KoboClient, directory: Path, asset_uid: str,
                         submissions: Iterable[Mapping[str, Any]]) -> int:
    """Fetch every attachment of `submissions` not on disk yet; return how many were downloaded."""
    count = 0
    for sub in submissions:
        for item in sub.get("_attachments") or []:
            if not isinstance(item, Mapping) or not item.get("download_url") or item.get("is_deleted"):
                continue
            target = attachment_path(directory, asset_uid, int(sub["_id"]), item)
            if target.exists():
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            data = client.request("GET", str(item["download_url"])).content
            partial = target.with_name(target.name + ".part")
            partial.write_bytes(data)
            os.replace(partial, target)  # never a half-written file under the real name
            count += 1
    if count:
        log.info("asset %s: %d attachment(s) downloaded to %s", asset_uid, count, directory)
    return count
