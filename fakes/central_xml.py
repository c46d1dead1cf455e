"""Submission XML for the fake ODK Central: what ODK Collect sends, read the way Central reads it.

- `instance_xml`: KoBo-shaped answers (`fakes.generator`'s: flat `group/q` keys, repeats as lists of dicts keyed by
  full paths) → the instance document Collect would upload: the root element named as the form's, with its `id`
  and `version`, every element of the form present (empty when unanswered, as Collect writes them), groups and
  repeats nested, `meta/instanceID` (and `meta/deprecatedID` for an edit).
- `encrypted_envelope`: the envelope an encrypting device sends instead (`base64EncryptedKey`,
  `encryptedXmlFile`, the `.enc` media list) — its payload is opaque here: the fake never encrypts or decrypts.
- `read_submission`: a submission from outside, parsed with defusedxml (no DTD, no entities); what Central needs of
  it: the form id and version of the root, the instanceID, deprecatedID and instanceName, and whether it is an
  encrypted envelope.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from xml.etree.ElementTree import Element, ParseError, SubElement, tostring

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from forms.xform import XForm, XNode

ENCRYPTED_NS = "http://www.opendatakit.org/xforms/encrypted"
ORX_NS = "http://openrosa.org/xforms"


class BadSubmission(ValueError):
    """A submission that cannot be read (not XML, no form id, no instanceID)."""


def local(tag: Any) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def child(el: Element | None, name: str) -> Element | None:
    if el is None:
        return None
    return next((c for c in el if local(c.tag) == name), None)


@dataclass(frozen=True, slots=True)
class ParsedSubmission:
    root: Element
    form_id: str
    version: str  # "" when the root has no version attribute (Central's reading)
    instance_id: str
    deprecated_id: str | None
    instance_name: str | None
    encrypted: bool
    media: tuple[str, ...] = ()  # an envelope's <media><file> names
    encrypted_xml_file: str | None = None


def read_submission(data: bytes) -> ParsedSubmission:
    try:
        root = fromstring(data)
    except (ParseError, DefusedXmlException) as exc:
        raise BadSubmission(f"the submission is not well-formed XML ({type(exc).__name__})") from None
    form_id = root.get("id")
    if not form_id:
        raise BadSubmission("the submission's root element has no id attribute naming the form")
    meta = child(root, "meta")
    instance_id = _text(child(meta, "instanceID"))
    if not instance_id:
        raise BadSubmission("the submission has no meta/instanceID")
    encrypted = (root.get("encrypted") or "").lower() == "yes"
    media = tuple(t for m in root if local(m.tag) == "media" for f in m if (t := _text(f)))
    return ParsedSubmission(root=root, form_id=form_id, version=root.get("version") or "", instance_id=instance_id,
                            deprecated_id=_text(child(meta, "deprecatedID")),
                            instance_name=_text(child(meta, "instanceName")), encrypted=encrypted, media=media,
                            encrypted_xml_file=_text(child(root, "encryptedXmlFile")) if encrypted else None)


def _text(el: Element | None) -> str | None:
    if el is None:
        return None
    text = (el.text or "").strip()
    return text or None


def binary_values(root: Element, xform: XForm) -> list[str]:
    """The file names the submission's binary fields hold, in document order (its expected attachments)."""
    binary = {n.path for n in xform.walk() if n.kind == "field" and n.bind_type == "binary"}
    out: list[str] = []

    def walk(el: Element, prefix: str) -> None:
        for c in el:
            path = f"{prefix}/{local(c.tag)}" if prefix else local(c.tag)
            if len(c):
                walk(c, path)
            elif path in binary and (name := (c.text or "").strip()) and name not in out:
                out.append(name)

    walk(root, "")
    return out


# -- writing ----------------------------------------------------------------------------------------------------


def instance_xml(xform: XForm, answers: Mapping[str, Any], instance_id: str, *, deprecated_id: str | None = None,
                 version: str | None = None) -> bytes:
    """The instance Collect uploads for these KoBo-shaped answers (see the module doc)."""
    root = Element(xform.root_name, {"id": xform.form_id})
    if (version if version is not None else xform.version) is not None:
        root.set("version", version if version is not None else xform.version or "")
    root.set("xmlns:orx", ORX_NS)
    _fill(root, xform.nodes, answers)
    meta = child(root, "meta")
    if meta is None:
        meta = SubElement(root, "meta")
    iid = child(meta, "instanceID")
    if iid is None:
        iid = SubElement(meta, "instanceID")
    iid.text = instance_id
    if deprecated_id is not None:
        dep = SubElement(meta, "deprecatedID")
        dep.text = deprecated_id
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + tostring(root, encoding="utf-8", xml_declaration=False)


def _fill(parent: Element, nodes: Sequence[XNode], answers: Mapping[str, Any]) -> None:
    for node in nodes:
        if node.kind == "repeat":
            for instance in answers.get(node.path) or ():
                if isinstance(instance, Mapping):
                    _fill(SubElement(parent, node.name), node.children, instance)
        elif node.kind == "group":
            _fill(SubElement(parent, node.name), node.children, answers)
        else:
            el = SubElement(parent, node.name)
            value = answers.get(node.path)
            if value is not None and value != "":
                el.text = str(value)


def encrypted_envelope(xform: XForm, instance_id: str, *, media: Sequence[str] = (),
                       payload_name: str = "submission.xml.enc") -> bytes:
    """The envelope an encrypting device sends for one submission: an RSA-wrapped key, the encrypted instance's
    file name, the encrypted media's names, a signature. Key and signature are random bytes here."""
    root = Element("data", {"id": xform.form_id, "encrypted": "yes", "xmlns": ENCRYPTED_NS})
    if xform.version is not None:
        root.set("version", xform.version)
    SubElement(root, "base64EncryptedKey").text = base64.b64encode(secrets.token_bytes(256)).decode()
    meta = SubElement(root, "orx:meta", {"xmlns:orx": ORX_NS})
    SubElement(meta, "orx:instanceID").text = instance_id
    for name in media:
        SubElement(SubElement(root, "media"), "file").text = f"{name}.enc"
    SubElement(root, "encryptedXmlFile").text = payload_name
    SubElement(root, "base64EncryptedElementSignature").text = base64.b64encode(secrets.token_bytes(256)).decode()
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + tostring(root, encoding="utf-8", xml_declaration=False)


def answers_of(root: Element, xform: XForm) -> dict[str, Any]:
    """A submission's answers back in KoBo's shape (the inverse of `instance_xml`), for the form's nodes only."""
    out: dict[str, Any] = {}
    _read(root, xform.nodes, out)
    return out


def _read(el: Element, nodes: Sequence[XNode], out: dict[str, Any]) -> None:
    by_name: dict[str, list[Element]] = {}
    for c in el:
        by_name.setdefault(local(c.tag), []).append(c)
    for node in nodes:
        found = by_name.get(node.name, [])
        if node.kind == "repeat":
            instances = []
            for c in found:
                instance: dict[str, Any] = {}
                _read(c, node.children, instance)
                instances.append(instance)
            if instances:
                out[node.path] = instances
        elif node.kind == "group":
            if found:
                _read(found[0], node.children, out)
        elif found and (text := (found[0].text or "")) and not len(found[0]) and node.path not in _BOOKKEEPING:
            out[node.path] = text


_BOOKKEEPING = frozenset({"meta/instanceID", "meta/deprecatedID"})
