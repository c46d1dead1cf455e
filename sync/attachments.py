"""Downloading submissions' attachments (photos of attendance sheets, audio…) next to the warehouse.

Files go to `<directory>/<asset>/<submission _id>/<file name>`; a file already there is not fetched
again, so a re-run or an unchanged submission costs nothing. Attachments can be personal data: keep the
directory where only data managers can read it.

Everything in an attachment's description comes from the server, so:
- a `download_url` on the server's own origin is fetched with the token; one on an origin the config
  allows (`[attachments] allowed_origins`, e.g. a storage host) without it; any other is not fetched;
- the file name is reduced to a plain name (no directories, no `..`, no control characters, at most
  200 bytes), and the path is proven to lie inside the directory before anything is written.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.errors import KoboError, KoboRefused
from sync.client import KoboClient
from sync.origin import origin_of, resolve, same_origin

log = logging.getLogger(__name__)
_UNSAFE = re.compile(r"[\x00-\x1f\x7f/\\:*?\"<>|]")
MAX_NAME_BYTES = 200


@dataclass(frozen=True, slots=True)
class AttachmentRules:
    directory: Path
    allowed_origins: tuple[str, ...] = ()  # other origins files may come from, fetched without the token


@dataclass(slots=True)
class Downloaded:
    downloaded: int = 0
    refused: int = 0
    reason: str = ""


def safe_name(text: str, fallback: str = "file") -> str:
    """A plain file name from what a server says: no directories, no leading dots, no control characters."""
    name = _UNSAFE.sub("_", text.replace("\\", "/").rsplit("/", 1)[-1]).strip().lstrip(".")
    if name in ("", ".", ".."):
        name = fallback
    if len(name.encode()) > MAX_NAME_BYTES:
        stem, dot, ext = name.rpartition(".")
        ext = ext if dot and len(ext.encode()) <= 16 else ""
        digest = hashlib.sha1(name.encode()).hexdigest()[:10]
        head = (stem if ext else name).encode()[: MAX_NAME_BYTES - 32].decode(errors="ignore")
        name = f"{head}_{digest}" + (f".{ext}" if ext else "")
    return name


def inside(directory: Path, *parts: str) -> Path:
    """directory/parts…, refusing any result that does not lie inside `directory`."""
    root = directory.resolve()
    target = root.joinpath(*parts).resolve()
    if not target.is_relative_to(root) or target == root:
        raise KoboError(f"an attachment path would leave {directory}; nothing was written")
    return target


def attachment_path(directory: Path, asset_key: str, submission_id: int, item: Mapping[str, Any]) -> Path:
    name = item.get("media_file_basename") or item.get("filename") or "file"
    return inside(directory, safe_name(asset_key, "asset"), str(int(submission_id)), safe_name(str(name)))


def download_attachments(client: KoboClient, rules: AttachmentRules, asset_key: str,
                         submissions: Iterable[Any]) -> Downloaded:
    """Fetch every attachment of `submissions` not on disk yet (see the module doc for what is refused)."""
    done = Downloaded()
    allowed = {origin_of(o) for o in rules.allowed_origins} - {None}
    for sub in submissions:
        if not isinstance(sub, Mapping) or not isinstance(sub.get("_id"), int):
            continue
        listed = sub.get("_attachments")
        for item in listed if isinstance(listed, list) else []:
            if not isinstance(item, Mapping) or not isinstance(item.get("download_url"), str) or item.get("is_deleted"):
                continue
            url = resolve(client.server_url, item["download_url"])
            if not same_origin(url, client.server_url) and origin_of(url) not in allowed:
                done.refused += 1
                done.reason = ("their download address is on another origin (or plain http) that [attachments] "
                               "allowed_origins does not list")
                continue
            try:
                target = attachment_path(rules.directory, asset_key, sub["_id"], item)
            except KoboError as exc:
                done.refused += 1
                done.reason = str(exc)
                continue
            if target.exists():
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                data = client.fetch_file(url, allowed=lambda u: origin_of(u) in allowed)
            except KoboRefused as exc:  # one attachment the server will not give, or sends elsewhere: the rest goes on
                done.refused += 1
                done.reason = str(exc)
                continue
            partial = target.with_name(target.name + ".part")
            partial.write_bytes(data)
            os.replace(partial, target)  # never a half-written file under the real name
            done.downloaded += 1
    if done.downloaded:
        log.info("asset %s: %d attachment(s) downloaded to %s", asset_key, done.downloaded, rules.directory)
    return done
