"""A form version's definition as the warehouse records it (`form_versions.content`), whatever its server.

KoBo's is the asset `content` JSON itself. ODK Central's is the XForm, wrapped as
`{"format": "xform", "xml": "<h:html …>"}`. `schema_of_definition` reads either into the FormSchema, so
every version of every form, from any server, goes through the same spine.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from common.errors import FormBuildError
from forms.schema import FormSchema

XFORM = "xform"


def xform_definition(xml: str) -> dict[str, str]:
    return {"format": XFORM, "xml": xml}


def is_xform(definition: Mapping[str, Any]) -> bool:
    return definition.get("format") == XFORM and isinstance(definition.get("xml"), str)


def schema_of_definition(definition: Mapping[str, Any], *, title: str | None = None,
                         sensitive: Iterable[str] = ()) -> FormSchema:
    """The FormSchema of a recorded definition (KoBo content, or an XForm wrapped by `xform_definition`)."""
    if not isinstance(definition, Mapping):
        raise FormBuildError("a form definition must be a JSON object")
    if is_xform(definition):
        schema = FormSchema.from_xform(definition["xml"], sensitive=sensitive)
        if title:
            schema = dataclasses.replace(schema, title=title)
        return schema
    return FormSchema.from_content(definition, title=title, sensitive=sensitive)
