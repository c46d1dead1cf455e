"""The report's language: its own page text (titles, notes) in English, Arabic and Sorani Kurdish, and
numbers, months and times written the way the language writes them (CLDR data through Babel).

Category labels never come from here: they are the forms' own choice and question labels (see
`source.Form.labels`). What is here is the page's chrome: section titles, column headings, notes.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import cached_property

from babel import Locale
from babel.dates import format_date, format_time
from babel.numbers import format_decimal, get_decimal_symbol, get_group_symbol, get_minus_sign_symbol

from common.errors import ConfigError
from warehouse.report.model import Cell, Shown

# Babel locale per report language: Iraq's conventions (its Arabic month names, Arabic-Indic digits).
LOCALES = {"en": "en_GB", "ar": "ar_IQ", "ckb": "ckb_IQ"}
# The digits of the CLDR numbering systems these locales use (Babel gives the symbols, not the digits).
_DIGITS = {"latn": "0123456789", "arab": "٠١٢٣٤٥٦٧٨٩", "arabext": "۰۱۲۳۴۵۶۷۸۹"}

TEXT: dict[str, dict[str, str]] = {
    "title": {"en": "Programme report", "ar": "تقرير البرنامج", "ckb": "ڕاپۆرتی بەرنامە"},
    "period": {"en": "Period", "ar": "الفترة", "ckb": "ماوە"},
    "all_dates": {"en": "all dates", "ar": "جميع التواريخ", "ckb": "هەموو بەروارەکان"},
    "from": {"en": "from {date}", "ar": "من {date}", "ckb": "لە {date}ەوە"},
    "to": {"en": "up to {date}", "ar": "حتى {date}", "ckb": "تا {date}"},
    "generated": {"en": "Made on {when} (UTC) from the analysts' views of the warehouse.",
                  "ar": "أُعدّ في {when} (بالتوقيت العالمي) من طرق العرض المخصّصة للمحللين في مستودع البيانات.",
                  "ckb": "لە {when} (کاتی جیهانی) لە دیمەنەکانی شیکەرەوان لە کۆگای داتا ئامادە کرا."},
    "contents": {"en": "Contents", "ar": "المحتويات", "ckb": "ناوەڕۆک"},
    "training": {"en": "Trainings", "ar": "التدريبات", "ckb": "ڕاهێنانەکان"},
    "awareness": {"en": "Awareness sessions", "ar": "جلسات التوعية", "ckb": "دانیشتنەکانی هۆشیارکردنەوە"},
    "screening": {"en": "Screening and assistance", "ar": "الفحص والمساعدة", "ckb": "پشکنین و هاوکاری"},
    "freshness": {"en": "Data freshness", "ar": "حداثة البيانات", "ckb": "نوێبوونی داتا"},
    "disclosure": {"en": "Disclosure control", "ar": "ضبط الإفصاح", "ckb": "کۆنترۆڵی ئاشکراکردن"},
    "missing_form": {"en": "The warehouse holds no form {form}: this part of the report is left out.",
                     "ar": "لا يحتوي المستودع على الاستمارة {form}، لذا حُذف هذا الجزء من التقرير.",
                     "ckb": "کۆگاکە فۆرمی {form}ی تێدا نییە، بۆیە ئەم بەشەی ڕاپۆرتەکە لابراوە."},
    "incomplete_form": {"en": "The form {form} in the warehouse has no question {question}: this part of the report "
                               "is left out.",
                        "ar": "الاستمارة {form} في المستودع لا تحتوي على السؤال {question}، لذا حُذف هذا الجزء من "
                              "التقرير.",
                        "ckb": "فۆرمی {form} لە کۆگاکەدا پرسیاری {question}ی تێدا نییە، بۆیە ئەم بەشەی ڕاپۆرتەکە "
                               "لابراوە."},
    "combined": {"en": "{form} is counted from {n} synced forms together (tables {tables}): the same form on "
                        "several servers or projects.",
                 "ar": "تُحتسب {form} من {n} استمارات مُزامَنة معًا (الجداول {tables}): الاستمارة نفسها على عدة "
                       "خوادم أو مشاريع.",
                 "ckb": "{form} لە {n} فۆرمی هاوکاتکراو پێکەوە دەژمێردرێت (خشتەکانی {tables}): هەمان فۆرم لەسەر "
                        "چەند ڕاژەکار یان پرۆژەیەک."},
    "no_data": {"en": "Nothing recorded in this period.", "ar": "لم يُسجَّل شيء في هذه الفترة.",
                "ckb": "لەم ماوەیەدا هیچ تۆمار نەکراوە."},
    "table": {"en": "The figures as a table", "ar": "الأرقام في جدول", "ckb": "ژمارەکان لە خشتەیەکدا"},
    "total": {"en": "Total", "ar": "المجموع", "ckb": "کۆ"},
    "no_answer": {"en": "No answer", "ar": "بلا إجابة", "ckb": "بێ وەڵام"},
    "month": {"en": "Month", "ar": "الشهر", "ckb": "مانگ"},
    "by": {"en": "{what} by {dim}", "ar": "{what} حسب {dim}", "ckb": "{what} بەپێی {dim}"},
    # training
    "sessions": {"en": "Sessions", "ar": "الجلسات", "ckb": "دانیشتنەکان"},
    "participants": {"en": "Participants", "ar": "المشاركون", "ckb": "بەشداربووان"},
    "participant_days": {"en": "Participant-days", "ar": "أيام حضور المشاركين",
                         "ckb": "ڕۆژانی ئامادەبوونی بەشداربووان"},
    "mean_of": {"en": "Mean: {what}", "ar": "المتوسط: {what}", "ckb": "تێکڕا: {what}"},
    "change": {"en": "Change", "ar": "التغيّر", "ckb": "گۆڕان"},
    "knowledge": {"en": "Knowledge before and after the training", "ar": "المعرفة قبل التدريب وبعده",
                  "ckb": "زانیاری پێش و دوای ڕاهێنان"},
    "score": {"en": "Mean score (0–10)", "ar": "متوسط الدرجة (٠–١٠)", "ckb": "تێکڕای نمرە (٠–١٠)"},
    "per_session": {"en": "Change per session", "ar": "التغيّر في كل جلسة", "ckb": "گۆڕان لە هەر دانیشتنێکدا"},
    "change_distribution": {"en": "Sessions by mean change in score", "ar": "الجلسات حسب متوسط تغيّر الدرجة",
                            "ckb": "دانیشتنەکان بەپێی تێکڕای گۆڕانی نمرە"},
    "sessions_shown": {"en": "The {shown} most recent of {total} sessions.",
                       "ar": "أحدث {shown} جلسة من أصل {total}.",
                       "ckb": "نوێترین {shown} دانیشتن لە کۆی {total}."},
    # awareness
    "attendees": {"en": "Attendees", "ar": "الحضور", "ckb": "ئامادەبووان"},
    "sex": {"en": "Sex", "ar": "الجنس", "ckb": "ڕەگەز"},
    "age_band": {"en": "Age band", "ar": "الفئة العمرية", "ckb": "گرووپی تەمەن"},
    # screening and assistance
    "screenings": {"en": "Screenings", "ar": "المقابلات", "ckb": "پشکنینەکان"},
    "presumed_victims": {"en": "Presumed victims", "ar": "الضحايا المفترضون", "ckb": "قوربانییە گریمانەکراوەکان"},
    "items": {"en": "Assistance delivered", "ar": "المساعدات المقدَّمة", "ckb": "هاوکارییە پێشکەشکراوەکان"},
    "cases": {"en": "Assistance cases", "ar": "حالات المساعدة", "ckb": "کەیسەکانی هاوکاری"},
    "referrals": {"en": "Referrals", "ar": "الإحالات", "ckb": "ڕەوانەکردنەکان"},
    "days_to_first": {"en": "Days from the opening of the case to the first assistance delivered",
                      "ar": "الأيام من فتح الحالة حتى تقديم أول مساعدة",
                      "ckb": "ڕۆژەکان لە کردنەوەی کەیسەوە تا پێشکەشکردنی یەکەم هاوکاری"},
    "days_to_first_note": {
        "en": "The screening form records no case code, so an assistance record cannot be traced back to its "
              "screening; the time is counted from the day the case was opened.",
        "ar": "لا تسجّل استمارة الفحص رمز الحالة، لذا لا يمكن ربط سجل المساعدة بمقابلة الفحص؛ "
              "تُحسب المدة من يوم فتح الحالة.",
        "ckb": "فۆرمی پشکنین کۆدی کەیس تۆمار ناکات، بۆیە تۆماری هاوکاری ناگەڕێتەوە بۆ پشکنینەکەی؛ "
               "ماوەکە لە ڕۆژی کردنەوەی کەیسەکەوە دەژمێردرێت."},
    "median_days": {"en": "Median: {days} days", "ar": "الوسيط: {days} يوماً", "ckb": "ناوەند: {days} ڕۆژ"},
    "days": {"en": "Days", "ar": "الأيام", "ckb": "ڕۆژ"},
    "same_day": {"en": "Same day", "ar": "في اليوم نفسه", "ckb": "هەمان ڕۆژ"},
    "day_range": {"en": "{a}–{b} days", "ar": "{a}–{b} يوماً", "ckb": "{a}–{b} ڕۆژ"},
    "over_days": {"en": "Over {a} days", "ar": "أكثر من {a} يوماً", "ckb": "زیاتر لە {a} ڕۆژ"},
    "none_yet": {"en": "None recorded yet", "ar": "لم تُسجَّل بعد", "ckb": "هێشتا تۆمار نەکراوە"},
    # freshness
    "form": {"en": "Form", "ar": "الاستمارة", "ckb": "فۆرم"},
    "last_success": {"en": "Last successful sync", "ar": "آخر مزامنة ناجحة", "ckb": "دوایین هاوکاتکردنی سەرکەوتوو"},
    "stored": {"en": "Submissions stored", "ar": "الاستمارات المخزّنة", "ckb": "فۆرمە هەڵگیراوەکان"},
    "awaiting": {"en": "Awaiting validation", "ar": "بانتظار التحقق", "ckb": "چاوەڕێی پشتڕاستکردنەوە"},
    "rejected": {"en": "Rejected", "ar": "مرفوضة", "ckb": "ڕەتکراوە"},
    "state": {"en": "State", "ar": "الحالة", "ckb": "دۆخ"},
    "last_error": {"en": "Last error", "ar": "آخر خطأ", "ckb": "دوایین هەڵە"},
    "ok": {"en": "up to date", "ar": "محدَّثة", "ckb": "نوێیە"},
    "failing": {"en": "failing", "ar": "متعثّرة", "ckb": "شکستی هێناوە"},
    "stale": {"en": "stale", "ar": "قديمة", "ckb": "کۆنە"},
    "never": {"en": "never", "ar": "أبداً", "ckb": "هەرگیز"},
    "freshness_note": {
        "en": "A sync is stale when it last succeeded more than {hours} hours ago. Awaiting validation: no "
              "validation status on KoBo yet, or on hold; rejected: marked not approved.",
        "ar": "تُعدّ المزامنة قديمة إذا مضى على آخر نجاح لها أكثر من {hours} ساعة. بانتظار التحقق: لا حالة تحقق "
              "لها في KoBo بعد أو معلّقة؛ مرفوضة: موسومة بأنها غير موافق عليها.",
        "ckb": "هاوکاتکردن کۆنە ئەگەر زیاتر لە {hours} کاتژمێر بەسەر دوایین سەرکەوتنیدا تێپەڕیبێت. چاوەڕێی "
               "پشتڕاستکردنەوە: هێشتا لە KoBo دۆخی پشتڕاستکردنەوەی نییە یان ڕاگیراوە؛ ڕەتکراوە: وەک "
               "پەسەندنەکراو دیاری کراوە."},
    # disclosure control
    "rule": {
        "en": "Screening and assistance records describe victims of a crime. In this report every count from them "
              "below {t} is shown as {small}. So that such a count cannot be worked out by subtracting the others "
              "from a total, more counts of the same total are hidden, shown as {mark}, until the hidden counts "
              "of every total add up to {t} or more. Counts of trainings and awareness sessions are shown in full.",
        "ar": "تصف سجلات الفحص والمساعدة ضحايا جريمة. في هذا التقرير يُعرض كل عدد مستخرج منها يقل عن {t} بالشكل "
              "{small}. ولكي لا يمكن استنتاج مثل هذا العدد بطرح الأعداد الأخرى من المجموع، تُخفى أعداد أخرى من "
              "المجموع نفسه وتُعرض بالشكل {mark}، حتى يبلغ مجموع الأعداد المخفية في كل مجموع {t} أو أكثر. أما "
              "أعداد التدريبات وجلسات التوعية فتُعرض كاملة.",
        "ckb": "تۆمارەکانی پشکنین و هاوکاری باسی قوربانییانی تاوانێک دەکەن. لەم ڕاپۆرتەدا هەر ژمارەیەک لەوانەوە "
               "کە لە {t} کەمتر بێت وەک {small} پیشان دەدرێت. بۆ ئەوەی ئەو ژمارەیە بە لێدەرکردنی ژمارەکانی تر لە "
               "کۆیەک نەدۆزرێتەوە، ژمارەی تری هەمان کۆ دەشاردرێنەوە و وەک {mark} پیشان دەدرێن، تا ژمارە "
               "شاردراوەکانی هەر کۆیەک پێکەوە دەگەنە {t} یان زیاتر. ژمارەکانی ڕاهێنان و دانیشتنەکانی "
               "هۆشیارکردنەوە بە تەواوی پیشان دەدرێن."},
    "hidden_note": {"en": "{mark}: hidden so that a small count cannot be worked out from the total.",
                    "ar": "{mark}: أُخفي كي لا يمكن استنتاج عدد صغير من المجموع.",
                    "ckb": "{mark}: شاردراوەتەوە بۆ ئەوەی ژمارەیەکی بچووک لە کۆکەوە نەدۆزرێتەوە."},
}

COMPLEMENT_MARK = "•"


@dataclass(frozen=True)
class Language:
    code: str

    @classmethod
    def of(cls, code: str) -> Language:
        if code not in LOCALES:
            raise ConfigError(f"report language '{code}' is not one of {', '.join(LOCALES)}")
        return cls(code)

    @cached_property
    def locale(self) -> Locale:
        return Locale.parse(LOCALES[self.code])

    @property
    def rtl(self) -> bool:
        return self.locale.text_direction == "rtl"

    @cached_property
    def digits(self) -> str:
        return _DIGITS.get(self.locale.default_numbering_system, _DIGITS["latn"])

    def t(self, key: str, **values: object) -> str:
        """A piece of page text in this language, with `values` put in (numbers already formatted)."""
        return TEXT[key][self.code].format(**values)

    def _native(self, text: str) -> str:
        return text.translate(str.maketrans(_DIGITS["latn"], self.digits)) if self.digits != _DIGITS["latn"] else text

    def number(self, value: float | int | None, decimals: int = 0, *, signed: bool = False) -> str:
        """1234 → '1,234' (en), '١٬٢٣٤' (ar, ckb)."""
        if value is None:
            return "–"
        pattern = "#,##0" + ("." + "0" * decimals if decimals else "")
        text = format_decimal(round(value, decimals) if decimals else round(value), format=pattern,
                              locale=self.locale, numbering_system="default")
        if signed and round(value, decimals) > 0:
            text = "+" + text
        return self._native(text)

    def month(self, ym: str) -> str:
        """'2026-06' → 'Jun 2026', 'حزيران ٢٠٢٦', 'حوزەیران ٢٠٢٦'."""
        year, month = (int(p) for p in ym.split("-"))
        return self._native(format_date(dt.date(year, month, 1), "LLL y", locale=self.locale))

    def date(self, day: dt.date) -> str:
        return self._native(format_date(day, "d MMM y", locale=self.locale))

    def datetime(self, when: dt.datetime | None) -> str:
        if when is None:
            return self.t("never")
        return self._native(f"{format_date(when, 'd MMM y', locale=self.locale)} "
                            f"{format_time(when, 'HH:mm', locale=self.locale)}")

    def d3_format_locale(self) -> dict[str, object]:
        """The d3-format locale Vega formats the charts' axis numbers with (digits included)."""
        spec: dict[str, object] = {
            "decimal": get_decimal_symbol(self.locale, numbering_system="default"),
            "thousands": get_group_symbol(self.locale, numbering_system="default"),
            "grouping": [3], "currency": ["", ""],
            "minus": get_minus_sign_symbol(self.locale, numbering_system="default"),
        }
        if self.digits != _DIGITS["latn"]:
            spec["numerals"] = list(self.digits)
        return spec


def cell_text(cell: Cell, lang: Language, threshold: int, decimals: int = 0, signed: bool = False) -> str:
    """How a cell is written: its number, '<5' when below the threshold, or the mark of a hidden complement."""
    if cell.shown is Shown.SMALL:
        return f"<{lang.number(threshold)}"
    if cell.shown is Shown.HIDDEN:
        return COMPLEMENT_MARK
    return lang.number(cell.value, decimals, signed=signed)
