"""XLSForm sheet and column names as pyxform reads them (`pyxform/parsing/sheet_headers.py`,
`pyxform/aliases.py`, v4.5): sheet names in any case; a column's first part (before `::`) in any case, with
runs of spaces as one `_` (`List Name` → `list_name`) and pyxform's older names for columns
(`caption` → `label`, `relevance` → `relevant`, `jr:count` → `repeat_count`, …); the language part of
`label::English (en)` kept as written. Columns pyxform does not know are kept as written (an
`amina::sensitive` or a `choice_filter` expression's own column must not change).
"""

from __future__ import annotations

SHEETS = ("survey", "choices", "settings", "external_choices", "osm", "entities")

# columns pyxform knows, per sheet (the part before `::`)
_SURVEY = {"type", "name", "label", "hint", "guidance_hint", "required", "required_message", "relevant",
           "constraint", "constraint_message", "calculation", "choice_filter", "appearance", "default",
           "read_only", "repeat_count", "parameters", "trigger", "image", "audio", "video", "big-image", "media",
           "autoplay", "rows", "save_to", "body", "bind", "control", "instance", "intent", "disabled",
           "no_app_error_string", "sms_field", "sms_option", "sms_separator", "sms_allow_media",
           "sms_date_format", "sms_datetime_format", "sms_response", "compact_tag"}
_CHOICES = {"list_name", "name", "label", "image", "audio", "video", "big-image", "media"}
_SETTINGS = {"form_title", "form_id", "version", "default_language", "instance_name", "style", "public_key",
             "submission_url", "auto_send", "auto_delete", "name", "allow_choice_duplicates", "clean_text_values",
             "flat", "omit_instanceid", "namespaces", "instance_xmlns", "prefix", "delimiter", "title",
             "id_string", "sms_keyword", "sms_separator", "sms_allow_media", "sms_date_format",
             "sms_datetime_format", "sms_response", "entities_version"}
# pyxform's older or alternative column names (aliases.survey_header, list_header, settings_header)
_ALIASES: dict[str, dict[str, str]] = {
    "survey": {"caption": "label", "relevance": "relevant", "calculate": "calculation", "readonly": "read_only",
               "constraining_message": "constraint_message", "requiredmsg": "required_message",
               "noapperrorstring": "no_app_error_string", "count": "repeat_count", "jr:count": "repeat_count",
               "command": "type", "tag": "name", "value": "name"},
    "choices": {"caption": "label", "list name": "list_name", "value": "name"},
    "external_choices": {"caption": "label", "list name": "list_name", "value": "name"},
    "settings": {"set_form_title": "form_title", "set_form_id": "form_id"},
}
_KNOWN = {"survey": _SURVEY, "choices": _CHOICES, "external_choices": _CHOICES, "settings": _SETTINGS}
# KoBo's names for grouped columns (formpack `replace_aliases.formpack_preferred_survey_headers`)
_GROUPED = {"bind::calculate": "calculation", "bind::required": "required", "bind::relevant": "relevant",
            "bind::constraint": "constraint", "bind::jr:constraintMsg": "constraint_message",
            "bind::jr:requiredMsg": "required_message", "bind::readonly": "read_only",
            "control::jr:count": "repeat_count", "control::appearance": "appearance"}


def sheet_name(name: str) -> str:
    """A sheet's name as pyxform looks it up: without surrounding spaces, in lower case."""
    return name.strip().lower()


def _snake(text: str) -> str:
    return "_".join(text.split()).lower()


_TRANSLATABLE = {"label", "hint", "guidance_hint", "constraint_message", "required_message", "image", "audio",
                 "video", "big-image", "media"}


def column_name(sheet: str, header: str) -> str:
    """A column header as pyxform reads it (see the module doc)."""
    header = header.strip()
    if header in _GROUPED:
        return _GROUPED[header]
    head, sep, rest = header.partition("::")
    if not sep and ":" in header and _snake(header.split(":", 1)[0]) in _TRANSLATABLE:
        head, sep, rest = header.partition(":")  # pyxform's older single-colon `label:English`
    aliases = _ALIASES.get(sheet, {})
    snake = _snake(head)
    first = aliases.get(" ".join(head.split()).lower()) or aliases.get(snake)
    if first is None:
        first = snake if snake in _KNOWN.get(sheet, set()) else head.strip()
    return f"{first}::{rest.strip()}" if sep else first
