"""The fake Central's CSV exports (reference §12): `submissions.csv` (the root table) and `submissions.csv.zip`.

Root header: `SubmissionDate`, the root table's fields in document order (group paths joined with `-`, or bare names
with `groupPaths=false`; geopoints split into `-Latitude`, `-Longitude`, `-Altitude`, `-Accuracy`), then `KEY`,
`SubmitterID`, `SubmitterName`, `AttachmentsPresent`, `AttachmentsExpected`, `Status`, `ReviewState`, `DeviceID`,
`Edits`, `FormVersion`. One `<form>-<repeat>.csv` per repeat, ending `PARENT_KEY`, `KEY`, where KEY is positional:
`uuid:…/hh/member[1]/trip[2]`. Values are the XML's text. Encrypted rows show `not decrypted` / `missing encrypted
form data` and no values, unless the key's passphrase is given (`<keyId>=<passphrase>`; a wrong one is 400.12): then
the cleartext the store kept for envelopes it built itself is shown (this fake does no cryptography).
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Mapping, Sequence
from typing import Any
from xml.etree.ElementTree import Element

from defusedxml.ElementTree import fromstring

from fakes.central_forms import CentralField, FormDef
from fakes.central_records import Form, Problem, Submission, iso
from fakes.central_xml import local

GEO_PARTS = ("Latitude", "Longitude", "Altitude", "Accuracy")
TAIL = ("KEY", "SubmitterID", "SubmitterName", "AttachmentsPresent", "AttachmentsExpected", "Status", "ReviewState",
        "DeviceID", "Edits", "FormVersion")


def passphrase_for(form: Form, params: Mapping[str, str]) -> bool:
    """True when the right passphrase for the project's key is given; 400.12 for a wrong one."""
    key = form.project.key
    if key is None or str(key.id) not in params:
        return False
    if params[str(key.id)] != key.passphrase:
        raise Problem(400.12, "Could not perform decryption. Double check your passphrase and your data and try "
                              "again.")
    return True


class Export:
    def __init__(self, form: Form, d: FormDef, subs: Sequence[Submission], *, decrypt: bool, group_paths: bool = True):
        self.form, self.d, self.subs, self.decrypt, self.group_paths = form, d, subs, decrypt, group_paths
        self.model = d.model
        self.repeats = [f for f in self.model.fields if f.type == "repeat"]
        self.repeat_paths = {f.path[1:] for f in self.repeats}

    def _leaves(self, repeat: str | None) -> list[CentralField]:
        return [f for f in self.model.fields if f.repeat == repeat and f.type not in ("structure", "repeat")]

    def _columns(self, leaves: list[CentralField], repeat: str | None) -> list[str]:
        out = []
        for f in leaves:
            path = f.path[1:] if repeat is None else f.path[len(repeat) + 2:]
            name = path.replace("/", "-") if self.group_paths else f.name
            out += [f"{name}-{p}" for p in GEO_PARTS] if f.type == "geopoint" else [name]
        return out

    def _root_of(self, sub: Submission) -> Element | None:
        if not sub.encrypted:
            return sub.current.parsed.root
        if self.decrypt and sub.current.cleartext is not None:
            return fromstring(sub.current.cleartext)
        return None

    def root_csv(self) -> str:
        leaves = self._leaves(None)
        out = io.StringIO()
        w = csv.writer(out, lineterminator="\n")
        w.writerow(["SubmissionDate", *self._columns(leaves, None), *TAIL])
        for sub in self.subs:
            root = self._root_of(sub)
            values = _values(root, leaves, "") if root is not None else [""] * len(self._columns(leaves, None))
            present, expected = sub.attachment_counts()
            status = "" if root is not None and not (sub.encrypted and not self.decrypt) else {
                "notDecrypted": "not decrypted", "missingEncryptedFormData": "missing encrypted form data"}.get(
                sub.status() or "", "")
            submitter = sub.submitter
            w.writerow([iso(sub.created_at), *values, sub.root_id, submitter.id if submitter else "",
                        submitter.display_name if submitter else "", present, expected, status,
                        sub.review_state or "", sub.versions[0].device_id or "", sub.edits,
                        sub.versions[0].form_version])
        return out.getvalue()

    def repeat_csv(self, repeat: CentralField) -> str:
        raw = repeat.path[1:]
        leaves = self._leaves(raw)
        out = io.StringIO()
        w = csv.writer(out, lineterminator="\n")
        w.writerow([*self._columns(leaves, raw), "PARENT_KEY", "KEY"])
        for sub in self.subs:
            root = self._root_of(sub)
            if root is None:
                continue
            for parent_key, key, el in _instances(root, raw, sub.root_id, self.repeat_paths):
                w.writerow([*_values(el, leaves, raw), parent_key, key])
        return out.getvalue()

    def zip(self, *, attachments: bool) -> bytes:
        buf = io.BytesIO()
        name = self.form.xml_form_id
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr(f"{name}.csv", self.root_csv())
            for repeat in self.repeats:
                z.writestr(f"{name}-{repeat.name}.csv", self.repeat_csv(repeat))
            if attachments:
                for sub in self.subs:
                    for filename, blob in sub.current.attachments.items():
                        if blob is not None:
                            z.writestr(f"media/{filename}", blob.data)
        return buf.getvalue()


def _find(el: Element, rel: str) -> Element | None:
    node: Element | None = el
    for part in rel.split("/"):
        node = next((c for c in node if local(c.tag) == part), None) if node is not None else None
    return node


def _values(el: Element, leaves: list[CentralField], repeat: str) -> list[Any]:
    out: list[Any] = []
    for f in leaves:
        rel = f.path[1:] if not repeat else f.path[len(repeat) + 2:]
        node = _find(el, rel)
        text = (node.text or "") if node is not None and not len(node) else ""
        if f.type == "geopoint":
            parts = text.split()
            out += [parts[i] if i < len(parts) else "" for i in range(4)]
        else:
            out.append(text)
    return out


def _instances(root: Element, raw: str, root_key: str, repeats: set[str]) -> list[tuple[str, str, Element]]:
    """(PARENT_KEY, KEY, element) of every instance of the repeat at `raw`, in document order; `repeats`: the
    form's repeat paths (an enclosing repeat's instances are numbered in the key, groups are not)."""
    found: list[tuple[str, str, Element]] = []
    parts = raw.split("/")

    def walk(el: Element, depth: int, key: str, parent_key: str) -> None:
        name = parts[depth]
        path = "/".join(parts[: depth + 1])
        matches = [c for c in el if local(c.tag) == name]
        for i, c in enumerate(matches if path in repeats else matches[:1], start=1):
            here = f"{key}/{name}[{i}]" if path in repeats else f"{key}/{name}"
            if depth == len(parts) - 1:
                found.append((parent_key, here, c))
            else:
                walk(c, depth + 1, here, here if path in repeats else parent_key)

    walk(root, 0, root_key, root_key)
    return found
