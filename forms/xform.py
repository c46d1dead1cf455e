"""An XForm (what pyxform compiles and ODK Central stores and serves) read into the FormSchema.

ODK Central keeps a form as its XForm only: `GET …/forms/{f}.xml` and `…/versions/{v}.xml` are all a client
gets. `parse_xform` reads one into `XForm` — the primary instance as a tree of nodes with their binds and
body controls, the itext translations, the choice lists — and `schema_from_xform` turns that into the same
`FormSchema` the KoBo path builds from KoBo's `content` (`FormSchema.from_xform` is the same function):

- paths are the data paths below the root element (`group/q`), the keys KoBo's JSON has;
- XLSForm types are recovered from the bind type, the body control and the preloads (`int` → integer, an
  `upload` by its `mediatype`, a `string` under `select1`/`select` → select_one/select_multiple with its choice
  list, `jr:preload` → start/end/today/deviceid…, a `string` with a `calculate` and no control → calculate,
  a read-only `input` → note, a `trigger` → acknowledge or trigger…);
- labels, hints and constraint messages per language come from itext (`lang="Arabic (ar)"` → `ar`, as
  `forms.content.language_code` reads KoBo's translations); pyxform's `-` for a translation left empty is read
  as no label, as KoBo's content has none there;
- expressions (`relevant`, `constraint`, `calculate`, `required`, choice filters, `jr:count`) are given back
  in XLSForm's `${name}` notation where pyxform wrote a node's path (` /data/g/q ` or ` ../q `);
- the nodes pyxform adds are marked as `from_content` marks them: `<q>_other` after an `or_other` select,
  `<repeat>_count` for a repeat_count expression (whose expression becomes the repeat's count again).

The bookkeeping under `meta/` (`instanceID`, `instanceName`, `deprecatedID`) is not a question: like the KoBo
path, the schema leaves it out of `fields` (the warehouse keeps the instance id as a system column); the
`XForm` tree has it (`XForm.instance_id_path`). pyxform does not carry custom columns such as
`amina::sensitive` into the XForm; our build therefore writes the mark as a bind attribute too
(`amina:sensitive="yes"`, forms.source.with_sensitive_binds), which is read here. For other forms, personal
data is named by the caller (`sensitive`, a set of paths or names, from the config's `sensitive = [...]`),
exactly as for a KoBo form without the column.

An XForm is outside input: it is parsed with defusedxml (no DTDs, no entity expansion, nothing external), and
anything unreadable is a `FormBuildError` that says where.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from common.errors import FormBuildError
from forms.content import language_code
from forms.schema import Choice, ChoiceList, Field, FormSchema, Group, Repeat, unique_codes
from forms.types import TYPES, Kind

__all__ = ["XForm", "XNode", "parse_xform", "schema_from_xform"]

JR = "{http://openrosa.org/javarosa}"
BOOKKEEPING = frozenset({"meta/instanceID", "meta/instanceName", "meta/deprecatedID", "meta/rootUuid"})
SELECT_CONTROLS = {"select1": "select_one", "select": "select_multiple", "rank": "rank"}
PRELOADS = {("timestamp", "start"): "start", ("timestamp", "end"): "end", ("date", "today"): "today"}
CONTROL_TAGS = frozenset({"input", "select1", "select", "rank", "upload", "trigger", "range", "textarea", "secret"})


def resolve(ref: str, context: str, root: str) -> str | None:
    """An absolute (`/data/g/q`) or relative (`../q`, from `context`) ref → the path below the root element
    ('g/q'); None when an absolute ref does not start at `root`."""
    ref = ref.strip()
    if ref.startswith("/"):
        parts = [p.split(":")[-1] for p in ref.split("/") if p]
        if not parts or parts[0] != root:
            return None
        return "/".join(parts[1:])
    parts = [p for p in context.split("/") if p]
    for step in ref.split("/"):
        if step in ("", "."):
            continue
        if step == "..":
            if parts:
                parts.pop()
        else:
            parts.append(step)
    return "/".join(parts)


def _local(tag: Any) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _attr(el: Element, name: str) -> str | None:
    """An attribute by local name, in any namespace ('jr:count', 'count' and '{…javarosa}count' alike)."""
    local = name.split(":")[-1]
    for key, value in el.attrib.items():
        if _local(key) == local:
            return value
    return None


@dataclass(frozen=True, slots=True)
class XNode:
    """One element of the primary instance: a group, a repeat or a field, with its bind and body control."""

    name: str
    path: str  # below the root element: 'group/q'
    kind: str  # 'group' | 'repeat' | 'field'
    bind: Mapping[str, str] = field(default_factory=dict)  # local attribute name → value
    control: str | None = None  # local tag of the body control: 'input', 'select1', 'upload', 'group', 'repeat'…
    control_attrs: Mapping[str, str] = field(default_factory=dict)
    default: str | None = None  # the instance's default text
    children: tuple[XNode, ...] = ()

    @property
    def bind_type(self) -> str | None:
        """The bind's type as Central reports it: 'int', 'string', 'binary'… (`xsd:` prefix dropped)."""
        t = self.bind.get("type")
        return t.split(":", 1)[1] if t and t.startswith("xsd:") else t

    def walk(self) -> Iterator[XNode]:
        yield self
        for child in self.children:
            yield from child.walk()


@dataclass(frozen=True, slots=True)
class _Texts:
    labels: Mapping[str, str]
    hints: Mapping[str, str]


@dataclass(frozen=True)
class XForm:
    """An XForm as read: the primary instance as a tree, and what the schema needs of the rest."""

    form_id: str
    version: str | None
    title: str
    root_name: str  # the primary instance's root element ('data')
    languages: tuple[str | None, ...]  # itext languages, the default first; (None,) without itext
    nodes: tuple[XNode, ...]  # the root element's children
    public_key: str | None = None  # base64RsaPublicKey of <submission>: the form is encrypted
    texts: Mapping[str, _Texts] = field(default_factory=dict, repr=False)  # path → labels and hints
    constraint_messages: Mapping[str, Mapping[str, str]] = field(default_factory=dict, repr=False)
    choice_lists: Mapping[str, ChoiceList] = field(default_factory=dict, repr=False)
    field_lists: Mapping[str, tuple[str, str | None]] = field(default_factory=dict, repr=False)  # path → (list, filter)
    actions: Mapping[str, frozenset[str]] = field(default_factory=dict, repr=False)  # path → {'setgeopoint:<event>'…}
    externals: tuple[tuple[str, str], ...] = ()  # (instance id, src) of secondary instances no select uses
    count_refs: frozenset[str] = frozenset()  # paths a repeat's jr:count names

    def walk(self) -> Iterator[XNode]:
        for node in self.nodes:
            yield from node.walk()

    @property
    def instance_id_path(self) -> str | None:
        return next((n.path for n in self.walk() if n.path == "meta/instanceID"), None)

    def node(self, path: str) -> XNode | None:
        return next((n for n in self.walk() if n.path == path), None)


# -- reading the XML --------------------------------------------------------------------------------------------


def _parse_xml(xml: str | bytes, what: str) -> Element:
    data = xml.encode("utf-8") if isinstance(xml, str) else xml
    try:
        return fromstring(data)
    except ParseError as exc:
        line, column = getattr(exc, "position", (0, 0))
        raise FormBuildError(f"{what}: not well-formed XML at line {line}, column {column + 1}: "
                             f"{str(exc).split(':')[0]}") from None
    except DefusedXmlException as exc:
        raise FormBuildError(f"{what}: refused: the XML declares a DTD or entities ({type(exc).__name__}); an "
                             f"XForm needs neither") from None


def _child(el: Element | None, name: str) -> Element | None:
    if el is None:
        return None
    return next((c for c in el if _local(c.tag) == name), None)


def _children(el: Element | None, name: str) -> list[Element]:
    return [c for c in el if _local(c.tag) == name] if el is not None else []


def parse_xform(xml: str | bytes) -> XForm:
    """Read an XForm. A FormBuildError says what is missing or malformed, and where."""
    try:
        return _parse_xform(xml)
    except RecursionError:
        raise FormBuildError("XForm: groups nested too deeply to be a form (thousands of levels)") from None


def _parse_xform(xml: str | bytes) -> XForm:
    root = _parse_xml(xml, "XForm")
    if _local(root.tag) != "html":
        raise FormBuildError(f"XForm: the document element is <{_local(root.tag)}>, not <h:html>")
    head, body = _child(root, "head"), _child(root, "body")
    model = _child(head, "model")
    if model is None:
        raise FormBuildError("XForm: no <h:head>/<model>")
    instances = _children(model, "instance")
    primary = next((i for i in instances if "id" not in i.attrib), None)
    if primary is None:
        raise FormBuildError("XForm: <model> has no primary <instance> (one without an id)")
    data = [c for c in primary if isinstance(c.tag, str)]
    if len(data) != 1:
        raise FormBuildError(f"XForm: the primary <instance> must hold one root element, not {len(data)}")
    top = data[0]
    form_id = top.get("id")
    if not form_id:
        raise FormBuildError(f"XForm: the primary instance's root <{_local(top.tag)}> has no id attribute (the "
                             f"form id)")
    title_el = _child(head, "title")
    reader = _Reader(_local(top.tag), model, body)
    nodes = reader.instance(top)
    submission = _child(model, "submission")
    return XForm(form_id=form_id, version=top.get("version"), title=(title_el.text or "").strip() if title_el is not
                 None else form_id, root_name=_local(top.tag), languages=reader.languages, nodes=nodes,
                 public_key=_attr(submission, "base64RsaPublicKey") if submission is not None else None,
                 texts=reader.texts, constraint_messages=reader.constraint_messages,
                 choice_lists=reader.choice_lists, field_lists=reader.field_lists, externals=reader.externals(),
                 actions={k: frozenset(v) for k, v in reader.actions.items()},
                 count_refs=frozenset(reader.count_refs))


_PATHLIKE = re.compile(r"^\s*(?:/|\.\./|\./)?[^\W\d][\w.\-]*(?:/[^\W\d][\w.\-]*)*\s*$")
_ITEXT_REF = re.compile(r"""^\s*jr:itext\(\s*['"](.+?)['"]\s*\)\s*$""")
_INSTANCE_REF = re.compile(r"""instance\(\s*['"]([^'"]+)['"]\s*\)([^\[]*)(?:\[(.*)\])?\s*$""", re.S)


class _Reader:
    """The model and body of one XForm, indexed: binds by path, controls by path, itext by language."""

    def __init__(self, root_name: str, model: Element, body: Element | None):
        self.root = root_name
        self.model, self.body = model, body
        self.binds: dict[str, dict[str, str]] = {}
        for bind in _children(model, "bind"):
            path = self._path(bind.get("nodeset") or _attr(bind, "ref") or "", "")
            if path is not None:
                self.binds.setdefault(path, {}).update({_local(k): v for k, v in bind.attrib.items()})
        self.actions: dict[str, set[str]] = {}  # path → {'setgeopoint:odk-instance-first-load', …}
        self._actions(model, "")
        self.codes: list[str] = []
        self.itext, self.languages = self._itext()
        self.secondary = {i.get("id", ""): i for i in _children(model, "instance") if i.get("id")}
        self.used_instances: set[str] = set()
        self.controls: dict[str, tuple[str, Element]] = {}
        self.repeat_paths: set[str] = set()
        self.count_refs: set[str] = set()  # nodes a repeat's jr:count names (pyxform's `<repeat>_count`)
        self.texts: dict[str, _Texts] = {}
        self.constraint_messages: dict[str, dict[str, str]] = {}
        self.choice_lists: dict[str, ChoiceList] = {}
        self.field_lists: dict[str, tuple[str, str | None]] = {}
        if body is not None:
            self._body(body, "")

    def _path(self, ref: str, context: str) -> str | None:
        return resolve(ref, context, self.root)

    # itext ----------------------------------------------------------------------------------------------------

    def _itext(self) -> tuple[dict[str, dict[str, str]], tuple[str | None, ...]]:
        """{text id: {language code: text}} and the languages, the default first."""
        itext = _child(self.model, "itext")
        translations = _children(itext, "translation")
        if not translations:
            self.codes = [language_code(None)]
            return {}, (None,)
        ordered = sorted(translations, key=lambda t: 0 if (t.get("default") or "").startswith("true") else 1)
        langs = tuple(t.get("lang") or "default" for t in ordered)
        self.codes = unique_codes([language_code(lang if lang != "default" else None) for lang in langs])
        out: dict[str, dict[str, str]] = {}
        for code, translation in zip(self.codes, ordered, strict=True):
            for text in _children(translation, "text"):
                value = next((v for v in _children(text, "value") if not v.get("form")), None)
                if value is None:
                    continue
                rendered = self._mixed(value)
                if len(value) and rendered.startswith(" ") and rendered.endswith(" "):
                    rendered = rendered[1:-1]  # pyxform pads a text holding an <output> with a space at each end
                if rendered and rendered != "-":  # pyxform's "-" stands for a translation left empty
                    out.setdefault(text.get("id", ""), {})[code] = rendered
        return out, tuple(None if lang == "default" else lang for lang in langs)

    def _mixed(self, el: Element) -> str:
        """Text with `<output value=" /data/q "/>` given back as `${q}`."""
        parts = [el.text or ""]
        for child in el:
            if _local(child.tag) == "output":
                parts.append(self._output(child.get("value", "")))
            else:
                parts.append(self._mixed(child))
            parts.append(child.tail or "")
        return "".join(parts)

    def _output(self, value: str) -> str:
        path = self._path(value, "")
        return f"${{{path.split('/')[-1]}}}" if path else value

    def _texts(self, el: Element | None, context: str) -> dict[str, str]:
        """A <label>/<hint>: its itext per language, or its inline text for every language."""
        if el is None:
            return {}
        ref = el.get("ref")
        found = _ITEXT_REF.match(ref) if ref else None
        if found:
            return dict(self.itext.get(found.group(1), {}))
        text = self._mixed(el).strip() if ref is None else ""
        return {code: text for code in self.codes} if text else {}

    # the body -------------------------------------------------------------------------------------------------

    def _body(self, el: Element, context: str) -> None:
        for child in el:
            tag = _local(child.tag)
            if tag in ("group", "repeat"):
                ref = child.get("nodeset") if tag == "repeat" else child.get("ref")
                path = self._path(ref, context) if ref else context
                if path and tag == "repeat":
                    self.repeat_paths.add(path)
                if path and (tag == "repeat" or path not in self.controls):
                    self.controls[path] = (tag, child)
                label = self._texts(_child(child, "label"), path) if path else {}
                if label and path not in self.texts:
                    self.texts[path] = _Texts(label, {})
                count = _attr(child, "jr:count") if tag == "repeat" else None
                counted = self._path(count, path or context) if count and _PATHLIKE.match(count) else None
                if counted is not None:
                    self.count_refs.add(counted)
                self._body(child, path or context)
            elif tag in CONTROL_TAGS and child.get("ref"):
                path = self._path(child.get("ref", ""), context)
                if path is None:
                    continue
                self.controls[path] = (tag, child)
                self.texts[path] = _Texts(self._texts(_child(child, "label"), path),
                                          self._texts(_child(child, "hint"), path))
                if tag in SELECT_CONTROLS:
                    self._choices(path, child)
                elif tag == "input" and child.get("query"):
                    found = _INSTANCE_REF.search(child.get("query", ""))
                    if found:
                        self.field_lists[path] = (found.group(1), found.group(3))
                        self.used_instances.add(found.group(1))
                self._actions(child, path)

    def _actions(self, el: Element, context: str) -> None:
        """setgeopoint / recordaudio / setvalue elements under `el`: {target path: {'<action>:<event>'}}."""
        for action in el.iter():
            if _local(action.tag) in ("setgeopoint", "recordaudio", "setvalue") and action.get("ref"):
                target = self._path(action.get("ref", ""), context)
                if target is not None:
                    self.actions.setdefault(target, set()).add(f"{_local(action.tag)}:{action.get('event', '')}")

    def _choices(self, path: str, control: Element) -> None:
        itemset = _child(control, "itemset")
        if itemset is not None:
            found = _INSTANCE_REF.search(itemset.get("nodeset", ""))
            if not found:
                return
            name, predicate = found.group(1), found.group(3)
            self.used_instances.add(name)
            instance = self.secondary.get(name)
            src = instance.get("src") if instance is not None else None
            if src:  # a select from a file: the list is the file, its choices are not in the form
                self.field_lists[path] = (src.rsplit("/", 1)[-1], predicate)
                return
            self.field_lists[path] = (name, predicate)
            if name not in self.choice_lists and instance is not None:
                value_el, label_el = _child(itemset, "value"), _child(itemset, "label")
                value_ref = value_el.get("ref", "name") if value_el is not None else "name"
                label_ref = label_el.get("ref", "label") if label_el is not None else "label"
                self.choice_lists[name] = ChoiceList(name, self._instance_items(instance, value_ref, label_ref))
            return
        items = _children(control, "item")
        if items:  # inline items: the list has no name in the XForm; it is named after the question
            name = path.split("/")[-1]
            choices = tuple(Choice(code=(_child(i, "value").text or "").strip() if _child(i, "value") is not None
                                   else "", labels=self._texts(_child(i, "label"), path)) for i in items)
            self.choice_lists[name] = ChoiceList(name, tuple(c for c in choices if c.code))
            self.field_lists[path] = (name, None)

    def _instance_items(self, instance: Element, value_ref: str, label_ref: str) -> tuple[Choice, ...]:
        root = next((c for c in instance if isinstance(c.tag, str)), None)
        choices: list[Choice] = []
        seen: set[str] = set()
        itext_ref = _ITEXT_REF.match(label_ref) or re.match(r"^\s*jr:itext\(\s*([\w.\-]+)\s*\)\s*$", label_ref)
        for item in root if root is not None else []:
            value = _child(item, value_ref)
            code = (value.text or "").strip() if value is not None else ""
            if not code or code in seen:
                continue
            seen.add(code)
            if itext_ref:
                key = _child(item, itext_ref.group(1))
                labels = dict(self.itext.get((key.text or "").strip(), {})) if key is not None else {}
            else:
                label = _child(item, label_ref)
                text = (label.text or "").strip() if label is not None else ""
                labels = {c: text for c in self.codes} if text else {}
            choices.append(Choice(code=code, labels=labels))
        return tuple(choices)

    # the primary instance ------------------------------------------------------------------------------------

    def instance(self, top: Element) -> tuple[XNode, ...]:
        return self._nodes(top, "")

    def _nodes(self, el: Element, prefix: str) -> tuple[XNode, ...]:
        out: list[XNode] = []
        seen: set[str] = set()
        for child in el:
            if not isinstance(child.tag, str):
                continue
            name = _local(child.tag)
            path = f"{prefix}/{name}" if prefix else name
            if path in seen:  # a repeat's template and its first instance (pyxform writes both): one node
                continue
            seen.add(path)
            is_repeat = path in self.repeat_paths or _attr(child, "jr:template") is not None
            elements = [c for c in child if isinstance(c.tag, str)]
            kind = "repeat" if is_repeat else "group" if elements or self.controls.get(path, ("",))[0] == "group" \
                else "field"
            control = self.controls.get(path)
            default = (child.text or "").strip() or None if kind == "field" else None
            out.append(XNode(name=name, path=path, kind=kind, bind=self.binds.get(path, {}),
                             control=control[0] if control else None,
                             control_attrs={_local(k): v for k, v in control[1].attrib.items()} if control else {},
                             default=default,
                             children=self._nodes(child, path) if kind != "field" else ()))
            if kind == "field":
                self.constraint_messages[path] = self._constraint_message(path)
        return tuple(out)

    def _constraint_message(self, path: str) -> dict[str, str]:
        message = self.binds.get(path, {}).get("constraintMsg")
        if not message:
            return {}
        found = _ITEXT_REF.match(message)
        if found:
            return dict(self.itext.get(found.group(1), {}))
        return {code: message for code in self.codes}

    def externals(self) -> tuple[tuple[str, str], ...]:
        """Secondary instances with a `src` that no select reads: XLSForm's xml-external / csv-external rows."""
        return tuple((iid, el.get("src", "")) for iid, el in self.secondary.items()
                     if el.get("src") and iid not in self.used_instances and not iid.startswith("__"))


# -- expressions -----------------------------------------------------------------------------------------------

_QUOTED = re.compile(r"""('[^']*'|"[^"]*")""")
_REF = re.compile(r"(?<![\w.\-/$}])( ?)((?:/[^\W\d][\w.\-]*)+|(?:\.\./)+[^\W\d][\w.\-]*(?:/[^\W\d][\w.\-]*)*)( ?)")


def xlsform_expression(text: str | None, context: str, root: str, names: Mapping[str, str]) -> str | None:
    """An XPath as XLSForm writes it: a node's path (` /data/g/q `, ` ../q `, as pyxform writes `${q}`) back to
    `${q}` when `names` (name → path of the names used once in the form) has it; everything else, string literals
    included, as written. `context`: the path of the node the expression belongs to (for `../`)."""
    if text is None or not text.strip():
        return None

    def swap(found: re.Match[str]) -> str:
        before, ref, after = found.groups()
        path = resolve(ref, context if ref.startswith("..") else "", root)
        name = path.rsplit("/", 1)[-1] if path else None
        if not path or names.get(name or "") != path:
            return found.group(0)
        spaced = bool(before) and bool(after)  # pyxform puts one space on each side of a reference it writes
        return f"{'' if spaced else before}${{{name}}}{'' if spaced else after}"

    pieces = _QUOTED.split(text)
    return "".join(p if i % 2 else _REF.sub(swap, p) for i, p in enumerate(pieces)).strip() or None


# -- XForm → FormSchema ---------------------------------------------------------------------------------------


def schema_from_xform(xml: str | bytes | XForm, *, sensitive: Iterable[str] = ()) -> FormSchema:
    """The FormSchema of an XForm (see the module doc). `sensitive`: question, group or repeat paths (or names)
    holding personal data; everything inside a sensitive group is sensitive."""
    xform = xml if isinstance(xml, XForm) else parse_xform(xml)
    try:
        return _SchemaWalk(xform, set(sensitive)).build()
    except RecursionError:
        raise FormBuildError("XForm: groups nested too deeply to be a form (thousands of levels)") from None


_SELECTS = frozenset({"select_one", "select_multiple", "rank", "select_one_from_file", "select_multiple_from_file",
                      "select_one_external"})


class _SchemaWalk:
    def __init__(self, xform: XForm, sensitive: set[str]):
        self.x = xform
        self.sensitive = sensitive
        self.codes = unique_codes([language_code(lang) for lang in xform.languages])
        self.fields: list[Field] = []
        self.repeats: list[Repeat] = []
        self.groups: list[Group] = []
        self.position = 0
        self.by_path = {n.path: n for n in xform.walk()}
        counts: dict[str, list[str]] = {}
        for node in xform.walk():
            counts.setdefault(node.name, []).append(node.path)
        self.names = {name: paths[0] for name, paths in counts.items() if len(paths) == 1}

    def build(self) -> FormSchema:
        for node in self.x.nodes:
            self._node(node, repeat=None, sensitive=False, top=True)
        for iid, src in self.x.externals:
            self.position += 1
            kind = "csv-external" if "file-csv/" in src or src.endswith(".csv") else "xml-external"
            self.fields.append(Field(path=iid, name=iid, type=kind, kind=Kind.NONE, repeat=None,
                                     sensitive=iid in self.sensitive, row=self.position))
        return FormSchema(form_id=self.x.form_id, title=self.x.title or self.x.form_id, version=self.x.version,
                          languages=tuple(self.codes),
                          language_names=dict(zip(self.codes, self.x.languages, strict=True)),
                          fields=tuple(self.fields), repeats=tuple(self.repeats),
                          choice_lists=dict(self.x.choice_lists), groups=tuple(self.groups))

    def _expr(self, text: str | None, context: str) -> str | None:
        return xlsform_expression(text, context, self.x.root_name, self.names)

    def _node(self, node: XNode, *, repeat: str | None, sensitive: bool, top: bool = False) -> None:
        self.position += 1
        flag = (sensitive or node.path in self.sensitive or node.name in self.sensitive
                or (node.bind.get("sensitive") or "").strip().lower() in ("yes", "true", "true()", "1"))
        if node.kind == "field":
            if node.path not in BOOKKEEPING:
                self._field(node, repeat, flag)
            return
        if top and node.name == "meta" and node.kind == "group":  # the form's bookkeeping, not a group of questions
            for child in node.children:
                self._node(child, repeat=repeat, sensitive=flag)
            return
        self.groups.append(Group(path=node.path, name=node.name, relevant=self._expr(node.bind.get("relevant"),
                                                                                       node.path),
                                 is_repeat=node.kind == "repeat"))
        inner = repeat
        if node.kind == "repeat":
            texts = self.x.texts.get(node.path)
            self.repeats.append(Repeat(path=node.path, name=node.name, parent=repeat,
                                       labels=dict(texts.labels) if texts else {}, sensitive=flag,
                                       row=self.position, count=self._repeat_count(node)))
            inner = node.path
        for child in node.children:
            self._node(child, repeat=inner, sensitive=flag)

    def _repeat_count(self, node: XNode) -> str | None:
        count = self._expr(node.control_attrs.get("count"), node.path)
        generated = self._generated_count(node)
        if generated is not None and count == f"${{{generated.name}}}":
            return self._expr(generated.bind.get("calculate"), generated.path)
        return count

    def _generated_count(self, repeat: XNode) -> XNode | None:
        """pyxform's `<repeat>_count` calculate, written before a repeat whose repeat_count is an expression."""
        node = self.by_path.get(f"{repeat.path}_count")
        found = node is not None and node.kind == "field" and node.bind.get("calculate") and node.path in \
            self.x.count_refs
        return node if found else None

    def _field(self, node: XNode, repeat: str | None, sensitive: bool) -> None:
        xtype = xlsform_type(node, self.x)
        texts = self.x.texts.get(node.path)
        listed = self.x.field_lists.get(node.path)
        bind = node.bind
        info = TYPES.get(xtype)
        self.fields.append(Field(
            path=node.path, name=node.name, type=xtype, kind=info.kind if info is not None else Kind.TEXT,
            repeat=repeat, choice_list=listed[0] if listed and xtype in _SELECTS else None,
            labels=dict(texts.labels) if texts else {}, hints=dict(texts.hints) if texts else {},
            required=_required(self._expr(bind.get("required"), node.path)),
            relevant=self._expr(bind.get("relevant"), node.path),
            constraint=self._expr(bind.get("constraint"), node.path),
            constraint_message=dict(self.x.constraint_messages.get(node.path, {})),
            calculation=self._expr(bind.get("calculate"), node.path),
            choice_filter=self._expr(listed[1], node.path) if listed else None,
            appearance=node.control_attrs.get("appearance"), default=node.default, sensitive=sensitive,
            row=self.position, generated=self._generated(node, xtype)))

    def _generated(self, node: XNode, xtype: str) -> str | None:
        """The mark `from_content` gives the nodes pyxform adds: `<repeat>_count`, `<select>_other`."""
        if xtype == "calculate" and node.name.endswith("_count") and node.path in self.x.count_refs:
            return f"repeat_count of {node.name[: -len('_count')]}"
        if xtype == "text" and node.name.endswith("_other"):
            select = self.by_path.get(node.path[: -len("_other")])
            relevant = (self._expr(node.bind.get("relevant"), node.path) or "").replace(" ", "")
            texts = self.x.texts.get(node.path)
            pyxform_label = texts is not None and set(texts.labels.values()) == {"Specify other."}
            if select is not None and select.control in SELECT_CONTROLS and pyxform_label and \
                    relevant == f"selected(${{{select.name}}},'other')":
                return f"or_other of {select.name}"
        return None


def _required(value: str | None) -> str | None:
    if value is None or value in ("false()", "false"):
        return None
    return "yes" if value in ("true()", "true") else value


_BIND_TYPES = {"int": "integer", "integer": "integer", "decimal": "decimal", "date": "date", "time": "time",
               "dateTime": "datetime", "datetime": "datetime", "geotrace": "geotrace", "geoshape": "geoshape",
               "barcode": "barcode"}
_MEDIA = {"image": "image", "audio": "audio", "video": "video", "osm": "osm"}


def xlsform_type(node: XNode, xform: XForm) -> str:
    """The XLSForm type a field was written with, as far as its bind, body control and actions tell."""
    bind, control = node.bind, node.control
    bind_type = node.bind_type or ""
    preload, params = bind.get("preload"), bind.get("preloadParams")
    actions = xform.actions.get(node.path, frozenset())
    if preload and params:
        if (preload, params) in PRELOADS:
            return PRELOADS[(preload, params)]
        if preload == "property":
            return params
    if node.path == "meta/audit" and bind_type == "binary":
        return "audit"
    if bind_type in ("int", "integer", "decimal") and control == "range":
        return "range"
    if bind_type in _BIND_TYPES:
        return _BIND_TYPES[bind_type]
    if bind_type == "geopoint":
        if "setgeopoint:odk-instance-first-load" in actions:
            return "start-geopoint"
        return "background-geopoint" if control is None and any(a.startswith("setgeopoint:") for a in actions) \
            else "geopoint"
    if bind_type == "binary":
        if control is None and any(a.startswith("recordaudio:") for a in actions):
            return "background-audio"
        return _MEDIA.get((node.control_attrs.get("mediatype") or "").split("/")[0], "file")
    if bind_type == "rank" or control == "rank":
        return "rank"
    if control in ("select1", "select"):
        listed = xform.field_lists.get(node.path)
        from_file = listed is not None and listed[0] not in xform.choice_lists and "." in listed[0]
        return f"{SELECT_CONTROLS[control]}_from_file" if from_file else SELECT_CONTROLS[control]
    if control == "input" and node.control_attrs.get("query"):
        return "select_one_external"
    if control == "trigger":
        return "acknowledge" if bind else "trigger"
    if bind_type not in ("", "string"):
        return bind_type.lower()  # a type XLSForm does not write (boolean…): kept, stored as text
    if control is None:
        return "calculate" if bind.get("calculate") else "hidden"
    if control == "input" and bind.get("readonly", "").startswith("true") and not bind.get("calculate"):
        return "note"
    return "text"
