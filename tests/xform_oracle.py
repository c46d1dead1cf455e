"""The data keys of a form, as pyxform's XForm has them: an oracle for the schema that does not use it.

KoBo stores a submission as the XForm instance flattened: each leaf at its path below the root (groups
as `g/q`), each repeat at its path as a list. So the leaves and repeats of the XForm that pyxform
compiles from the rows KoBo deploys are exactly the keys a submission can carry.
"""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from typing import Any

from forms.deploy import deployed_sheets, to_source
from forms.source import to_xlsx

XF = "{http://www.w3.org/2002/xforms}"
JR = "{http://openrosa.org/javarosa}"
BOOKKEEPING = {"meta/instanceID", "meta/instanceName", "meta/deprecatedID", "meta/rootUuid"}


def compile_deployed(content: Mapping[str, Any]) -> str:
    """pyxform's XForm for the rows KoBo would deploy from this content."""
    from pyxform.xls2xform import convert

    xlsx = to_xlsx(to_source(deployed_sheets(content)))
    return convert(io.BytesIO(xlsx), validate=False, file_type=".xlsx", form_name="data").xform


def xform_keys(xform: str) -> tuple[set[str], set[str]]:
    """(leaf paths, repeat paths) of the XForm's primary instance, bookkeeping under meta/ left out."""
    root = ET.fromstring(xform)
    instance = next(i for i in root.iter(f"{XF}instance") if "id" not in i.attrib)
    [data] = list(instance)
    repeats = {_strip(b.get("nodeset", "")) for b in root.iter(f"{XF}repeat")} - {""}  # "" under `flat`
    leaves: set[str] = set()

    def walk(node: ET.Element, path: str) -> None:
        for child in node:
            name = child.tag.split("}")[-1]
            child_path = f"{path}/{name}" if path else name
            if len(child):
                walk(child, child_path)
            elif child_path not in BOOKKEEPING and child_path not in repeats:
                leaves.add(child_path)

    walk(data, "")
    return leaves, repeats


def _strip(nodeset: str) -> str:
    return "/".join(nodeset.strip("/").split("/")[1:])
