"""Realistic submissions for the fake KoBo server, deterministic for a seed.

`generate(schema, n, seed=…)` works for any form — every question kind gets a plausible answer, selects
pick codes from their own choice lists, repeats get a few instances — and knows our two forms well:
Arabic and Kurdish names (and Latin-script names of foreign nationals), Iraq's governorates,
ministries and NGOs, free text in Arabic and Kurdish, attendance sheets photographed, and the forms'
logic respected (no consent → nothing but consent; a phone only with consent to be contacted;
constraints met; calculates filled as the form would compute them).
Answers come out exactly as KoBo's API returns them: flat `group/question` keys, repeats as lists of
dicts keyed by full paths, every value a string, unanswered questions absent.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from forms.schema import Field, FormSchema, Kind

Instance = dict[str, Any]  # path → str answer, or repeat path → list[Instance]

FEMALE = ["فاطمة", "زينب", "مريم", "نور", "سارة", "هدى", "رنا", "شيماء", "آمنة", "ئاواز", "شیلان", "ڕووناک",
          "هێڤی", "ژیان", "گوڵاڵە", "Layla", "Rasha"]
MALE = ["علي", "حسين", "محمد", "أحمد", "عمر", "مصطفى", "كرار", "حيدر", "یاسین", "ئارام", "هێمن", "ڕێبوار",
        "کاروان", "سەرهەنگ", "Ahmed", "Karwan"]
FAMILY = ["الجبوري", "العبيدي", "الساعدي", "التميمي", "الدليمي", "الموسوي", "حسن", "کەریم", "عەبدوڵڵا",
          "مەحمود", "ڕەشید", "Hassan", "Aziz"]
FOREIGN = {"bangladeshi": ["Rahima Begum", "Mohammad Karim", "Shapla Akter"], "nepali": ["Sita Gurung", "Anita Rai"],
           "filipino": ["Maria Santos", "Joy Reyes"], "indian": ["Priya Kumari", "Sunil Das"],
           "sri_lankan": ["Nimali Perera"], "ethiopian": ["Tigist Alemu", "Hiwot Bekele"],
           "kenyan": ["Mercy Wanjiru"], "ugandan": ["Grace Nakato"], "pakistani": ["Amina Bibi"],
           "syrian": ["ريم الحلبي", "خالد الشامي"], "iranian": ["مریم رضایی"], "turkish": ["Ayşe Yılmaz"]}
ORGANISATIONS = ["وزارة الداخلية – مديرية مكافحة الاتجار بالبشر", "وزارة الهجرة والمهجرين",
                 "وزارة العمل والشؤون الاجتماعية", "وزارة الصحة – مكتب المفتش العام", "مجلس القضاء الأعلى",
                 "مفوضية حقوق الإنسان", "مديرية شرطة أربيل", "بەڕێوەبەرایەتی پۆلیسی سلێمانی",
                 "ڕێکخراوی هاوکاری بۆ مافی مرۆڤ", "منظمة تموز للتنمية الاجتماعية", "PAX", "Heartland Alliance",
                 "UNHCR", "IOM Iraq", "Harikar NGO", "Emma Organization for Human Development"]
POSITIONS = ["ضابط تحقيق", "باحث اجتماعي", "محامٍ", "طبيب", "مدير مأوى", "منسق برامج", "ئەفسەری پۆلیس",
             "توێژەری کۆمەڵایەتی", "Programme coordinator", "Case worker", "Psychologist"]
VENUES = ["Divan Hotel, Erbil", "فندق بابل، بغداد", "قاعة وزارة الداخلية", "Rotana Hotel, Erbil",
          "هۆڵی پارێزگای سلێمانی", "Grand Millennium, Sulaymaniyah", "مركز التدريب في البصرة", "IOM office, Duhok"]
TITLES = ["Counter-trafficking training for NGOs", "Psychosocial support and victim assistance",
          "دورة مكافحة الاتجار بالبشر للمسؤولين الحكوميين", "خولی ناسینەوەی قوربانییانی بازرگانی بە مرۆڤ",
          "Community policing as a counter-trafficking strategy", "Victim identification and referral"]
ARABIC_TEXT = ["وعدوني بعمل في مطعم براتب جيد", "أخذوا جواز سفري عند الوصول", "كنت أعمل ساعات طويلة بدون أجر",
               "لم يسمحوا لي بالخروج من المنزل", "هددوا عائلتي إذا حاولت الهروب", "سافرت عن طريق وكيل توظيف"]
KURDISH_TEXT = ["بەڵێنیان پێدام کارێکی باشم بۆ بدۆزنەوە", "پاسپۆرتەکەیان لێ سەندم", "ماوەی چەند مانگێک مووچەیان نەدام",
                "نەیاندەهێشت لە ماڵەکە بچمە دەرەوە", "هەڕەشەیان لە خێزانەکەم کرد"]
DISTRICTS = {"erbil": ["Soran", "Shaqlawa", "Koya"], "sulaymaniyah": ["Chamchamal", "Ranya", "Penjwen"],
             "duhok": ["Zakho", "Amedi", "Semel"], "baghdad": ["Karkh", "Rusafa", "Adhamiya"],
             "nineveh": ["Mosul", "Sinjar", "Tel Afar"], "basra": ["Zubair", "Abu Al-Khaseeb"]}
CENTRES = {"erbil": (36.19, 44.01), "sulaymaniyah": (35.56, 45.44), "duhok": (36.87, 42.99), "baghdad": (33.31, 44.36),
           "nineveh": (36.34, 43.13), "basra": (30.51, 47.78), "kirkuk": (35.47, 44.39), "najaf": (32.03, 44.35)}
USERS = ["enumerator_erbil", "enumerator_baghdad", "enumerator_basra", "enumerator_duhok", "supervisor1", None]
JPEG = bytes.fromhex("ffd8ffe000104a46494600010100000100010000ffd9")


@dataclass(frozen=True)
class GeneratedSubmission:
    answers: dict[str, Any]
    submission_time: dt.datetime
    submitted_by: str | None
    attachments: dict[str, bytes]


class _Maker:
    def __init__(self, schema: FormSchema, rng: random.Random, base: dt.date):
        self.schema, self.rng, self.base = schema, rng, base
        self.attachments: dict[str, bytes] = {}

    # -- generic answers, by kind ---------------------------------------------------------------

    def codes(self, f: Field) -> list[str]:
        cl = self.schema.choice_lists.get(f.choice_list or "")
        return [c.code for c in cl.choices] if cl else ["option_1", "option_2"]

    def person(self, sex: str | None = None, nationality: str | None = None) -> str:
        rng = self.rng
        if nationality in FOREIGN and rng.random() < 0.8:
            return rng.choice(FOREIGN[nationality])
        first = rng.choice(FEMALE if sex == "female" else MALE if sex == "male" else FEMALE + MALE)
        family = [f for f in FAMILY if f.isascii() == first.isascii()]
        return f"{first} {rng.choice(family)}"

    def photo(self) -> str:
        name = f"{self.rng.randrange(10**12, 10**13)}.jpg"
        self.attachments[name] = JPEG + name.encode()
        return name

    def generic(self, f: Field) -> str | None:
        rng = self.rng
        if f.kind is Kind.NONE or f.type == "calculate":
            return None
        if f.type in ("image", "file", "audio", "video", "background-audio"):
            return self.photo()
        if f.kind is Kind.SELECT_ONE:
            return rng.choice(self.codes(f))
        if f.kind is Kind.SELECT_MULTIPLE:
            codes = [c for c in self.codes(f) if c != "none"] or self.codes(f)
            return " ".join(rng.sample(codes, rng.randint(1, min(3, len(codes)))))
        if f.kind is Kind.INTEGER:
            return str(rng.randint(0, 60))
        if f.kind is Kind.DECIMAL:
            return f"{rng.uniform(0, 1000):.2f}"
        if f.kind is Kind.DATE:
            return (self.base + dt.timedelta(days=rng.randrange(365))).isoformat()
        if f.kind is Kind.DATETIME:
            return self.local_time(self.base + dt.timedelta(days=rng.randrange(365)), rng.randrange(8, 17))
        if f.kind is Kind.TIME:
            return f"{rng.randrange(8, 18):02d}:{rng.randrange(60):02d}:00.000+03:00"
        if f.kind is Kind.GEOPOINT:
            lat, lon = CENTRES[rng.choice(list(CENTRES))]
            return f"{lat + rng.uniform(-0.1, 0.1):.6f} {lon + rng.uniform(-0.1, 0.1):.6f} " \
                   f"{rng.uniform(20, 900):.1f} {rng.uniform(3, 20):.1f}"
        if "name" in f.name:
            return self.person()
        if "phone" in f.name:
            return self.phone()
        return rng.choice(ARABIC_TEXT + KURDISH_TEXT + ["n/a", "OK"])

    def phone(self) -> str:
        return "07" + "".join(str(self.rng.randrange(10)) for _ in range(9))

    @staticmethod
    def local_time(day: dt.date, hour: int, minute: int = 0, second: float = 0.0) -> str:
        return f"{day.isoformat()}T{hour:02d}:{minute:02d}:{second:06.3f}+03:00"

    def instance(self, repeat: str | None, depth: int = 0) -> Instance:
        """Plausible answers for every question at this level, and a few instances of each child repeat."""
        out: Instance = {}
        for f in self.schema.fields_in(repeat):
            if f.type in ("start", "end", "today", "deviceid", "username"):
                continue
            value = self.generic(f)
            if value is not None and (f.required or self.rng.random() < 0.85):
                out[f.path] = value
        for child in self.schema.child_repeats(repeat):
            count = self.rng.randint(0, 3 if depth == 0 else 2)
            if count:
                out[child.path] = [self.instance(child.path, depth + 1) for _ in range(count)]
        return out

    def meta(self, out: Instance, day: dt.date) -> tuple[dt.datetime, str | None]:
        """start/end/today/deviceid/username like Collect writes them; returns (submission time, user)."""
        rng = self.rng
        hour, minute = rng.randrange(8, 17), rng.randrange(60)
        duration = rng.randrange(5, 90)
        start = dt.datetime.combine(day, dt.time(hour, minute, rng.randrange(60)))
        end = start + dt.timedelta(minutes=duration, seconds=rng.randrange(60))
        user = rng.choice(USERS)
        values = {"start": self.local_time(day, start.hour, start.minute, start.second + rng.random()),
                  "end": self.local_time(end.date(), end.hour, end.minute, end.second + rng.random()),
                  "today": day.isoformat(), "deviceid": f"collect:{rng.getrandbits(64):016X}",
                  "username": user or "anonymous"}
        for f in self.schema.fields_in(None):
            if f.type in values:
                out[f.path] = values[f.type]
        # uploaded when the tablet next has a connection: minutes later, or days for offline teams
        delay = dt.timedelta(minutes=rng.randrange(1, 120)) if rng.random() < 0.85 else \
            dt.timedelta(days=rng.randrange(1, 12), minutes=rng.randrange(600))
        return end - dt.timedelta(hours=3) + delay, user


def _order(schema: FormSchema, inst: Instance, repeat: str | None) -> dict[str, Any]:
    """Keys in the form's order (KoBo's documents follow the XML), empty answers dropped."""
    out: dict[str, Any] = {}
    children = {r.path for r in schema.child_repeats(repeat)}
    for f in schema.fields:
        if f.repeat == repeat and inst.get(f.path) not in (None, ""):
            out[f.path] = str(inst[f.path])
        elif f.repeat in children and f.repeat not in out and inst.get(f.repeat):
            out[f.repeat] = [_order(schema, item, f.repeat) for item in inst[f.repeat]]
    return out


# -- our forms' logic --------------------------------------------------------------------------------

def _training(m: _Maker, inst: Instance, day: dt.date) -> None:
    rng = m.rng
    days = rng.choice([1, 2, 3, 3, 4, 4, 5])
    inst["session/title"] = rng.choice(TITLES)
    topics = [c for c in m.codes(m.schema.field("session/topics")) if c != "other"]
    chosen = rng.sample(topics, rng.randint(1, 4)) + (["other"] if rng.random() < 0.1 else [])
    inst["session/topics"] = " ".join(chosen)
    inst["session/topics_other"] = "العمل القسري للأطفال" if "other" in chosen else None
    inst["session/start_date"] = day.isoformat()
    inst["session/end_date"] = (day + dt.timedelta(days=days - 1)).isoformat()
    inst["session/training_days"] = str(days)
    inst["session/venue"] = rng.choice(VENUES) if rng.random() < 0.9 else None
    inst["session/facilitators"] = ", ".join(m.person() for _ in range(rng.randint(1, 3))) \
        if rng.random() < 0.9 else None
    items = m.codes(m.schema.field("participants/knowledge_checks/item"))
    participants = []
    for _ in range(rng.randint(5, 35)):
        sex = rng.choice(["female", "male"])
        attended = rng.randint(max(1, days - 1), days)
        p: Instance = {
            "participants/participant_name": m.person(sex), "participants/sex": sex,
            "participants/organisation": rng.choice(ORGANISATIONS),
            "participants/organisation_type": rng.choice(m.codes(m.schema.field("participants/organisation_type"))),
            "participants/position": rng.choice(POSITIONS) if rng.random() < 0.85 else None,
            "participants/work_governorate": rng.choice(m.codes(m.schema.field("participants/work_governorate"))),
            "participants/days_attended": str(attended),
            "participants/days_present": " ".join(sorted(rng.sample([f"day{i}" for i in range(1, days + 1)],
                                                                    attended), key=lambda c: int(c[3:]))),
            "participants/consent_contact": "yes" if rng.random() < 0.7 else "no",
        }
        if p["participants/consent_contact"] == "yes":
            p["participants/phone"] = m.phone()
        checks = []
        for item in rng.sample(items, rng.randint(1, 3)):
            pre = rng.randint(0, 7)
            post = rng.randint(pre, 10)
            checks.append({"participants/knowledge_checks/item": item,
                           "participants/knowledge_checks/pre_score": str(pre),
                           "participants/knowledge_checks/post_score": str(post),
                           "participants/knowledge_checks/gain": str(post - pre)})
        p["participants/knowledge_checks"] = checks
        participants.append(p)
    inst["participants"] = participants
    inst["participant_count"] = str(len(participants))
    inst["photo"] = m.photo() if rng.random() < 0.8 else None


def _pick(m: _Maker, path: str, most: int, none_share: float) -> str:
    codes = [c for c in m.codes(m.schema.field(path)) if c != "none"]
    if m.rng.random() < none_share:
        return "none"
    return " ".join(m.rng.sample(codes, m.rng.randint(1, most)))


def _screening(m: _Maker, inst: Instance, day: dt.date) -> None:
    rng = m.rng
    keep = {k: v for k, v in inst.items() if k in ("start", "end", "today", "deviceid", "username")}
    inst.clear()
    inst.update(keep)
    if rng.random() < 0.08:
        inst["consent"] = "no"
        return
    inst["consent"] = "yes"
    p = "interview/"
    governorate = rng.choice(["erbil", "erbil", "baghdad", "duhok", "sulaymaniyah", "basra", "nineveh", "kirkuk"])
    nationality = rng.choice(["iraqi"] * 4 + ["syrian", "bangladeshi", "nepali", "filipino", "ethiopian", "indian",
                                               "sri_lankan", "kenyan", "ugandan", "pakistani", "iranian", "turkish"])
    sex = "female" if rng.random() < 0.8 else "male"
    lat, lon = CENTRES.get(governorate, (33.3, 44.4))
    inst.update({
        p + "screener": rng.choice(m.codes(m.schema.field(p + "screener"))),
        p + "governorate": governorate,
        p + "district": rng.choice(DISTRICTS.get(governorate, [None])) if rng.random() < 0.7 else None,
        p + "gps": f"{lat + rng.uniform(-0.05, 0.05):.6f} {lon + rng.uniform(-0.05, 0.05):.6f} "
                   f"{rng.uniform(200, 900):.1f} {rng.uniform(3, 15):.1f}" if rng.random() < 0.85 else None,
        p + "profile/full_name": m.person(sex, nationality) if rng.random() < 0.7 else None,
        p + "profile/sex": sex,
        p + "profile/age": str(rng.randint(14, 55)),
        p + "profile/nationality": nationality,
        p + "profile/displacement_status": ("migrant" if nationality != "iraqi" else
                                            rng.choice(["idp", "returnee", "host"])),
        p + "profile/phone": m.phone() if rng.random() < 0.4 else None,
        p + "profile/document_number": f"A{rng.randrange(10**7, 10**8)}" if rng.random() < 0.3 else None,
        p + "indicators/recruitment": _pick(m, p + "indicators/recruitment", 2, 0.1),
        p + "indicators/movement": rng.choice(["internal", "into_iraq", "into_iraq", "across_borders", "none"]),
        p + "indicators/exploitation": _pick(m, p + "indicators/exploitation", 2, 0.1),
        p + "indicators/control": _pick(m, p + "indicators/control", 3, 0.15),
    })
    score = sum(len([c for c in str(inst[p + f"indicators/{q}"]).split() if c != "none"])
                for q in ("recruitment", "exploitation", "control"))
    score += 0 if inst[p + "indicators/movement"] == "none" else 1
    inst[p + "indicator_score"] = str(score)
    inst[p + "presumed_victim"] = "yes" if score >= 3 or (score >= 2 and rng.random() < 0.5) else "no"
    inst[p + "urgent_needs"] = _pick(m, p + "urgent_needs", 3, 0.05)
    inst[p + "referral"] = rng.choice(m.codes(m.schema.field(p + "referral")))
    if rng.random() < 0.6:
        text = rng.sample(KURDISH_TEXT if governorate in ("erbil", "duhok", "sulaymaniyah") else ARABIC_TEXT, 2)
        inst[p + "narrative"] = ". ".join(text) + "."
    family = []
    for _ in range(rng.choice([0, 0, 0, 1, 1, 2, 3, 4])):
        relationship = rng.choice(["spouse", "child", "child", "parent", "sibling", "other"])
        age = rng.randint(0, 17) if relationship == "child" else rng.randint(18, 70)
        family.append({p + "family_members/relationship": relationship,
                       p + "family_members/member_sex": rng.choice(["female", "male"]),
                       p + "family_members/member_age": str(age)})
    if family:
        inst[p + "family_members"] = family


FORM_LOGIC: dict[str, Callable[[_Maker, Instance, dt.date], None]] = {
    "training_attendance": _training,
    "vot_screening": _screening,
}


def generate(schema: FormSchema, n: int, *, seed: int = 0, start_date: dt.date | None = None
             ) -> Iterator[GeneratedSubmission]:
    """`n` submissions of `schema`, spread over the year after `start_date` (default 2025-11-01)."""
    rng = random.Random(seed)
    base = start_date or dt.date(2025, 11, 1)
    logic = FORM_LOGIC.get(schema.form_id)
    for _ in range(n):
        maker = _Maker(schema, rng, base)
        day = base + dt.timedelta(days=rng.randrange(365))
        inst = maker.instance(None)
        submitted_at, user = maker.meta(inst, day)
        if logic:
            logic(maker, inst, day)
        yield GeneratedSubmission(answers=_order(schema, inst, None), submission_time=submitted_at,
                                  submitted_by=user, attachments=maker.attachments)
