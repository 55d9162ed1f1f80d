"""Prohibited language in collection scripts and call transcripts, and mandatory call steps.

Pure functions over text: no I/O, no clock, no database. The phrase lists are data
(`PhraseList.from_json` loads a settings file); the defaults below are a starting point that
local policy may extend, never a statement of the law.

Where the rules come from (rule ids as in shared/REGULATIONS.md where one fits):
- China, CN-CONDUCT: no threats, intimidation, insults, harassment, impersonating police,
  prosecutors or courts, or forged legal documents (互联网金融逾期债务催收自律公约 (试行),
  中国互联网金融协会 2018, art. 14-16; 银保监会/金融监管总局 guidance on outsourced collection
  conduct, e.g. 《关于规范银行业金融机构外包催收的通知》; 刑法 art. 293-1 (催收非法债务罪)).
- China, CN-THIRD-PARTY: no collection from, and no disclosure of the debt to, third parties
  unconnected to the debt (same 自律公约; PIPL art. 23 for any sharing).
- United States (English phrases): REGULATIONS.md has no conduct row yet, so the ids are
  defined here (LANG-*): FDCPA §806 / Reg F 1006.14 (harassment: threats of violence, obscene or
  abusive language, repeated calls), FDCPA §807 / Reg F 1006.18 (false representations:
  posing as police, government or an attorney, threats of arrest or of action not intended or
  not lawful), FDCPA §805(b) / Reg F 1006.6(d) (communications with third parties).

Matching works on a normalised copy of the text and maps every hit back to the original:
Unicode compatibility decomposition (full-width → half-width), accents and case dropped,
traditional → simplified Chinese per character, 您/妳 → 你 and 的 ignored, a few digit/symbol
look-alikes for Latin letters (0→o, 1→i, 3→e, 4→a, 5→s, 7→t, @→a, $→s), and every whitespace,
punctuation, symbol, control and zero-width character removed. So "打 断-你的*腿", "打斷你的腿" and
"Y O U will go to J.A.I.L" all match. A phrase that begins or ends with a Latin letter or digit
must begin or end on a word boundary of the original text (so "loser" is not found in
"closer"); a trailing "*" lets it run on ("loser*" also finds "losers").
"""

from __future__ import annotations

import functools
import itertools
import re
import unicodedata
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from enum import StrEnum
from typing import Any, Literal, cast, get_args

Language = Literal["zh", "en"]
Severity = Literal["critical", "major", "minor"]
Speaker = Literal["agent", "debtor", "other"]

LANGUAGES: tuple[Language, ...] = get_args(Language)
SEVERITIES: tuple[Severity, ...] = get_args(Severity)


class Category(StrEnum):
    """What kind of prohibited language a phrase is."""

    THREAT = "threat"
    INTIMIDATION = "intimidation"
    INSULT = "insult"
    IMPERSONATION = "impersonation"
    FALSE_LEGAL_CLAIM = "false_legal_claim"
    THIRD_PARTY_DISCLOSURE = "third_party_disclosure"


# Chinese phrases are judged under the cn pack; English ones under US law, which REGULATIONS.md
# does not yet give conduct ids for, hence the LANG-* ids.
RULE_IDS: Mapping[tuple[Language, Category], str] = {
    **{("zh", c): "CN-CONDUCT" for c in Category},
    ("zh", Category.THIRD_PARTY_DISCLOSURE): "CN-THIRD-PARTY",
    ("en", Category.THREAT): "LANG-THREAT",
    ("en", Category.INTIMIDATION): "LANG-INTIMIDATION",
    ("en", Category.INSULT): "LANG-INSULT",
    ("en", Category.IMPERSONATION): "LANG-IMPERSONATION",
    ("en", Category.FALSE_LEGAL_CLAIM): "LANG-FALSE-LEGAL",
    ("en", Category.THIRD_PARTY_DISCLOSURE): "LANG-THIRD-PARTY",
}

CITATIONS: Mapping[str, str] = {
    "CN-CONDUCT": (
        "互联网金融逾期债务催收自律公约 art. 14-16; 银保监 outsourced-collection guidance; "
        "Criminal Law art. 293-1"
    ),
    "CN-THIRD-PARTY": "互联网金融逾期债务催收自律公约; PIPL art. 23",
    "LANG-THREAT": "FDCPA §806(1); Reg F 1006.14(b)(1)",
    "LANG-INTIMIDATION": "FDCPA §806, §806(5); Reg F 1006.14(a), (b)",
    "LANG-INSULT": "FDCPA §806(2); Reg F 1006.14(d)",
    "LANG-IMPERSONATION": "FDCPA §807(1), (3), (14); Reg F 1006.18(b)(1), (b)(2)(vii)",
    "LANG-FALSE-LEGAL": "FDCPA §807(4), (5), (7); Reg F 1006.18(c)",
    "LANG-THIRD-PARTY": "FDCPA §805(b), §807(7); Reg F 1006.6(d)",
    "CALL-STEPS": "Quality-assurance call checklist (DOMAIN.md: mandatory call steps)",
}

# How far before a hit (in normalised characters, within one clause) an `unless` phrase may
# end and still cancel it. Chinese packs more meaning per character than English.
DEFAULT_UNLESS_WINDOW: Mapping[Language, int] = {"zh": 3, "en": 8}


# --- normalisation ---------------------------------------------------------------------------

_LEET = {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s"}
# Polite and regional forms of "you", and 的 which speech and ASR drop or keep at random.
_VARIANTS = {"您": "你", "妳": "你", "的": ""}
# Marks, separators, punctuation, symbols, controls (zero-width characters are Cf).
_DROPPED_CATEGORIES = frozenset("MZPSC")
# Chinese full stop, full-width ! ? ; : , and the enumeration comma, their ASCII forms, ellipsis,
# newline; "." only before a space or the end, so that "J.A.I.L" stays one clause.
_CLAUSE_END = re.compile("[\u3002\uff01\uff1f\uff1b\uff1a\uff0c\u3001!?;:,\n\u2026]|\\.(?=\\s|$)")
# Per-character folding, memoised (bounded: a hostile text could hold every code point).
_FOLD_CACHE_MAX = 50_000
_FOLD_CACHE: dict[str, str] = {}


@functools.cache
def _t2s_table() -> dict[str, str]:
    """Traditional → simplified, one character to one character, from OpenCC's data."""
    # Imported here: loading OpenCC's dictionaries takes ~0.1 s, paid on first use only.
    from opencc_purepy import OpenCC

    # Character conversion only (`ts`), never OpenCC's phrase conversion: it keeps the text's
    # length, which the offset mapping relies on. Compatibility ideographs are left to NFKD.
    source = "".join(map(chr, range(0x3400, 0xA000)))
    target = OpenCC("t2s").ts(source)
    if len(target) != len(source):  # pragma: no cover - guards a change in the library
        raise RuntimeError("opencc-purepy's character conversion changed the text's length")
    table = {a: b for a, b in zip(source, target, strict=True) if a != b and len(b) == 1}
    # Chains (a → b → c) would let a phrase written with b miss a text written with a.
    for key, value in table.items():
        seen = {key}
        while value in table and value not in seen:
            seen.add(value)
            value = table[value]
        table[key] = value
    return table


def _fold_char(ch: str) -> str:
    t2s = _t2s_table()
    out: list[str] = []
    for c in unicodedata.normalize("NFKD", ch):
        leet = _LEET.get(c)
        if leet is not None:
            out.append(leet)
            continue
        for d in c.casefold():
            if unicodedata.category(d)[0] in _DROPPED_CATEGORIES:
                continue
            d = t2s.get(d, d)
            out.append(_VARIANTS.get(d, d))
    folded = "".join(out)
    if len(_FOLD_CACHE) < _FOLD_CACHE_MAX:
        _FOLD_CACHE[ch] = folded
    return folded


def _fold(text: str) -> tuple[str, list[int]]:
    """The normalised text, and for each of its characters the index it came from."""
    cache = _FOLD_CACHE
    parts: list[str] = []
    origin: list[int] = []
    for i, ch in enumerate(text):
        folded = cache.get(ch)
        if folded is None:
            folded = _fold_char(ch)
        if not folded:
            continue
        parts.append(folded)
        if len(folded) == 1:
            origin.append(i)
        else:
            origin.extend(itertools.repeat(i, len(folded)))
    return "".join(parts), origin


def normalize(text: str) -> str:
    """The form that phrases and texts are compared in (see the module docstring)."""
    return _fold(text)[0]


def _is_word(c: str) -> bool:
    # Latin letters and digits only: a Chinese character next to "loser" is a boundary.
    return c.isalnum() and ord(c) < 0x2E80


@dataclass(frozen=True)
class _Pattern:
    needle: str
    bounded_start: bool
    bounded_end: bool


def _pattern(text: str) -> _Pattern:
    open_end = text.rstrip().endswith("*")
    needle = normalize(text.rstrip().removesuffix("*") if open_end else text)
    if not needle:
        raise ValueError(f"phrase {text!r} has no letters, digits or Chinese characters")
    return _Pattern(
        needle=needle,
        bounded_start=_is_word(needle[0]),
        bounded_end=_is_word(needle[-1]) and not open_end,
    )


class _Folded:
    """A text with its normalised form; maps normalised positions back to the original."""

    __slots__ = ("_clause_ends", "norm", "origin", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.norm, self.origin = _fold(text)
        self._clause_ends: list[int] | None = None

    def find_all(self, pattern: _Pattern, lo: int = 0, hi: int | None = None) -> Iterator[int]:
        """Start positions (normalised) of the pattern's matches inside norm[lo:hi]."""
        norm, needle = self.norm, pattern.needle
        end = len(norm) if hi is None else hi
        pos = norm.find(needle, lo, end)
        while pos >= 0:
            if self._bounded(pattern, pos, pos + len(needle)):
                yield pos
            pos = norm.find(needle, pos + 1, end)

    def _bounded(self, pattern: _Pattern, start: int, end: int) -> bool:
        norm, origin = self.norm, self.origin
        # A neighbour counts only if nothing was removed between it and the match.
        if (
            pattern.bounded_start
            and start > 0
            and _is_word(norm[start - 1])
            and origin[start - 1] + 1 >= origin[start]
        ):
            return False
        return not (
            pattern.bounded_end
            and end < len(norm)
            and _is_word(norm[end])
            and origin[end - 1] + 1 >= origin[end]
        )

    def span(self, start: int, end: int) -> tuple[int, int]:
        """Original [start, end) of the normalised [start, end)."""
        return self.origin[start], self.origin[end - 1] + 1

    def clause(self, pos: int) -> int:
        """Number of the clause that normalised position `pos` lies in."""
        if self._clause_ends is None:
            self._clause_ends = [m.start() for m in _CLAUSE_END.finditer(self.text)]
        return bisect_left(self._clause_ends, self.origin[pos])


# --- phrases ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Phrase:
    """One prohibited phrase.

    `unless`: phrases that cancel a hit when one of them ends at most the list's unless-window
    (3 normalised characters in Chinese, 8 in English) before the hit, or overlaps it, in the
    same clause. Meant for negations ("不会告诉你的单位", "you will not be arrested"); a negation
    after the hit, further away or across a comma does not cancel it.
    `rule_id`: overrides the id that `RULE_IDS` gives the phrase's language and category.
    """

    id: str
    category: Category
    text: str
    language: Language
    severity: Severity
    unless: tuple[str, ...] = ()
    rule_id: str | None = None

    def __post_init__(self) -> None:
        if not self.id:
            raise ValueError("a phrase needs an id")
        if not isinstance(self.category, Category):
            # Accept the plain string too ("threat"), as settings code naturally passes it.
            try:
                object.__setattr__(self, "category", Category(self.category))
            except ValueError:
                raise ValueError(f"{self.id}: unknown category {self.category!r}") from None
        if self.language not in LANGUAGES:
            raise ValueError(f"{self.id}: language must be one of {LANGUAGES}")
        if self.severity not in SEVERITIES:
            raise ValueError(f"{self.id}: severity must be one of {SEVERITIES}")
        if not isinstance(self.unless, tuple):
            raise ValueError(f"{self.id}: unless must be a tuple of strings")
        for text in (self.text, *self.unless):
            # Checked cheaply here; the full normalisation waits for the first scan.
            if not any(ch.isalnum() for ch in text):
                raise ValueError(f"{self.id}: {text!r} has no letters, digits or characters")

    @property
    def resolved_rule_id(self) -> str:
        return self.rule_id or RULE_IDS[(self.language, self.category)]

    @classmethod
    def from_json(cls, data: object) -> Phrase:
        """A phrase from its JSON object (the keys are the field names)."""
        if not isinstance(data, Mapping):
            raise ValueError(f"a phrase must be an object, not {type(data).__name__}")
        item = cast(Mapping[str, Any], data)
        unknown = set(item) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"phrase {item.get('id')!r}: unknown keys {sorted(unknown)}")
        try:
            ident, category, text = item["id"], item["category"], item["text"]
            language, severity = item["language"], item["severity"]
        except KeyError as exc:
            raise ValueError(f"phrase {item.get('id')!r}: missing {exc.args[0]!r}") from None
        unless = item.get("unless", [])
        rule_id = item.get("rule_id")
        if not all(isinstance(v, str) for v in (ident, category, text, language, severity)):
            raise ValueError(
                f"phrase {ident!r}: id, category, text, language, severity are strings"
            )
        if not isinstance(unless, list) or not all(isinstance(u, str) for u in unless):
            raise ValueError(f"phrase {ident!r}: unless must be a list of strings")
        if rule_id is not None and not isinstance(rule_id, str):
            raise ValueError(f"phrase {ident!r}: rule_id must be a string")
        return cls(
            id=ident,
            category=category,
            text=text,
            language=language,
            severity=severity,
            unless=tuple(unless),
            rule_id=rule_id,
        )

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "category": self.category.value,
            "text": self.text,
            "language": self.language,
            "severity": self.severity,
        }
        if self.unless:
            data["unless"] = list(self.unless)
        if self.rule_id is not None:
            data["rule_id"] = self.rule_id
        return data


@dataclass(frozen=True)
class _CompiledPhrase:
    phrase: Phrase
    pattern: _Pattern
    unless: tuple[_Pattern, ...]
    window: int


class PhraseList:
    """A versioned, validated set of phrases; compiled on first use (`from_json`: at once)."""

    def __init__(
        self,
        phrases: Iterable[Phrase],
        *,
        version: str,
        unless_window: Mapping[Language, int] | None = None,
    ) -> None:
        if not version:
            raise ValueError("a phrase list needs a version")
        self.version = version
        self.phrases: tuple[Phrase, ...] = tuple(phrases)
        self.unless_window: Mapping[Language, int] = dict(
            DEFAULT_UNLESS_WINDOW if unless_window is None else unless_window
        )
        for language in LANGUAGES:
            if self.unless_window.get(language, 0) < 0:
                raise ValueError("unless_window must not be negative")
        seen: set[str] = set()
        for phrase in self.phrases:
            if phrase.id in seen:
                raise ValueError(f"duplicate phrase id {phrase.id!r}")
            seen.add(phrase.id)
        self._compiled: tuple[_CompiledPhrase, ...] | None = None
        self._by_language: dict[Language, PhraseList] = {}

    def __len__(self) -> int:
        return len(self.phrases)

    def __iter__(self) -> Iterator[Phrase]:
        return iter(self.phrases)

    def __repr__(self) -> str:
        return f"PhraseList(version={self.version!r}, phrases={len(self.phrases)})"

    @classmethod
    def from_json(cls, data: object, *, version: str | None = None) -> PhraseList:
        """From {"version": ..., "phrases": [...], "unless_window": {...}} or a bare list.

        A `version` argument wins over the document's; a bare list needs one. The list is
        compiled at once, so a bad settings file fails when it is loaded, not at the first scan.
        """
        window: Mapping[Language, int] | None = None
        if isinstance(data, Mapping):
            doc = cast(Mapping[str, Any], data)
            items = doc.get("phrases")
            doc_version = doc.get("version")
            if version is None and isinstance(doc_version, str):
                version = doc_version
            raw_window = doc.get("unless_window")
            if raw_window is not None:
                if not isinstance(raw_window, Mapping) or not all(
                    k in LANGUAGES and isinstance(v, int) for k, v in raw_window.items()
                ):
                    raise ValueError('unless_window must look like {"zh": 3, "en": 8}')
                window = {**DEFAULT_UNLESS_WINDOW, **cast(Mapping[Language, int], raw_window)}
        else:
            items = data
        if not isinstance(items, list):
            raise ValueError("a phrase list is a list of phrases (or an object with 'phrases')")
        if not version:
            raise ValueError("a phrase list needs a version")
        plist = cls(
            [Phrase.from_json(item) for item in items], version=version, unless_window=window
        )
        plist._compile()
        return plist

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "unless_window": dict(self.unless_window),
            "phrases": [p.to_json() for p in self.phrases],
        }

    def for_language(self, language: Language) -> PhraseList:
        """The phrases in one language (same version), cached."""
        cached = self._by_language.get(language)
        if cached is None:
            cached = PhraseList(
                (p for p in self.phrases if p.language == language),
                version=self.version,
                unless_window=self.unless_window,
            )
            self._by_language[language] = cached
        return cached

    def _compile(self) -> tuple[_CompiledPhrase, ...]:
        if self._compiled is None:
            self._compiled = tuple(
                _CompiledPhrase(
                    phrase=p,
                    pattern=_pattern(p.text),
                    unless=tuple(_pattern(u) for u in p.unless),
                    window=self.unless_window.get(p.language, 0),
                )
                for p in self.phrases
            )
        return self._compiled


@dataclass(frozen=True)
class LanguageHit:
    """A prohibited phrase found; `matched` is text[start:end] of the original text."""

    phrase_id: str
    phrase: str
    category: Category
    rule_id: str
    severity: Severity
    start: int
    end: int
    matched: str
    turn: int | None = None


def _cancelled(doc: _Folded, c: _CompiledPhrase, start: int, end: int) -> bool:
    clause = doc.clause(start)
    for u in c.unless:
        # Matches that end no earlier than `window` before the hit and begin before its end.
        lo = max(0, start - c.window - len(u.needle))
        for pos in doc.find_all(u, lo, end - 1 + len(u.needle)):
            if doc.clause(pos) == clause:
                return True
    return False


def _scan(doc: _Folded, phrases: PhraseList) -> list[LanguageHit]:
    hits: list[LanguageHit] = []
    for c in phrases._compile():
        size = len(c.pattern.needle)
        for pos in doc.find_all(c.pattern):
            if c.unless and _cancelled(doc, c, pos, pos + size):
                continue
            start, end = doc.span(pos, pos + size)
            hits.append(
                LanguageHit(
                    phrase_id=c.phrase.id,
                    phrase=c.phrase.text,
                    category=c.phrase.category,
                    rule_id=c.phrase.resolved_rule_id,
                    severity=c.phrase.severity,
                    start=start,
                    end=end,
                    matched=doc.text[start:end],
                )
            )
    hits.sort(key=lambda h: (h.start, h.end, h.phrase_id))
    return hits


# --- call steps ------------------------------------------------------------------------------


@dataclass(frozen=True)
class CallStep:
    """A step an agent must cover in a call, recognised by any of its phrases.

    `after`: ids of steps that must have been found in an *earlier* agent turn than this step's
    first occurrence (the debtor can only answer an identity question in a later turn);
    otherwise an ordering problem is reported under `order_rule_id`.
    """

    id: str
    name: str
    zh: tuple[str, ...] = ()
    en: tuple[str, ...] = ()
    after: tuple[str, ...] = ()
    order_rule_id: str = "CALL-STEPS"

    def __post_init__(self) -> None:
        if not self.id or not (self.zh or self.en):
            raise ValueError(f"call step {self.id!r} needs an id and at least one phrase")
        for text in (*self.zh, *self.en):
            if not any(ch.isalnum() for ch in text):
                raise ValueError(f"call step {self.id!r}: {text!r} has nothing to match")

    def phrases(self, language: Language | None = None) -> tuple[str, ...]:
        if language == "zh":
            return self.zh
        if language == "en":
            return self.en
        return self.zh + self.en


def load_steps(data: object) -> tuple[CallStep, ...]:
    """Steps from a JSON list of {"id", "name", "zh": [...], "en": [...], "after": [...],
    "order_rule_id"}; a step with no phrase in the checked language is always missing."""
    if not isinstance(data, list):
        raise ValueError("call steps are a list")
    steps: list[CallStep] = []
    for item in data:
        if not isinstance(item, Mapping):
            raise ValueError("a call step is an object")
        raw = cast(Mapping[str, Any], item)
        lists: dict[str, tuple[str, ...]] = {}
        for key in ("zh", "en", "after"):
            value = raw.get(key, [])
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ValueError(f"call step {raw.get('id')!r}: {key} must be a list of strings")
            lists[key] = tuple(value)
        ident, name = raw.get("id"), raw.get("name", raw.get("id"))
        if not isinstance(ident, str) or not isinstance(name, str):
            raise ValueError("a call step needs a string id (and name)")
        order_rule_id = raw.get("order_rule_id", "CALL-STEPS")
        if not isinstance(order_rule_id, str):
            raise ValueError(f"call step {ident!r}: order_rule_id must be a string")
        steps.append(
            CallStep(
                id=ident,
                name=name,
                zh=lists["zh"],
                en=lists["en"],
                after=lists["after"],
                order_rule_id=order_rule_id,
            )
        )
    _check_steps(steps)
    return tuple(steps)


def _check_steps(steps: Sequence[CallStep]) -> None:
    ids = [s.id for s in steps]
    if len(set(ids)) != len(ids):
        raise ValueError("call step ids must be unique")
    for step in steps:
        for required in step.after:
            if required not in ids:
                raise ValueError(f"call step {step.id!r} comes after unknown step {required!r}")


@functools.lru_cache(maxsize=32)
def _compile_steps(
    steps: tuple[CallStep, ...], language: Language | None
) -> tuple[tuple[CallStep, tuple[_Pattern, ...]], ...]:
    _check_steps(steps)
    return tuple((s, tuple(_pattern(t) for t in s.phrases(language))) for s in steps)


# --- defaults --------------------------------------------------------------------------------

_ZH_NOT = ("不会", "绝不", "并不会", "不至于", "没有人会")
_EN_NOT = (
    "will not",
    "won't",
    "would not",
    "wouldn't",
    "will never",
    "would never",
    "not going to",
    "cannot",
    "can't",
    "no one will",
    "nobody will",
)
_C: Severity = "critical"
_M: Severity = "major"
_N: Severity = "minor"
_SLUGS = {
    Category.THREAT: "threat",
    Category.INTIMIDATION: "intimidation",
    Category.INSULT: "insult",
    Category.IMPERSONATION: "impersonation",
    Category.FALSE_LEGAL_CLAIM: "legal",
    Category.THIRD_PARTY_DISCLOSURE: "disclosure",
}

# (language, category) → rows of (number, text, severity, unless). Ids are
# "<language>-<slug>-<number>": append new rows with new numbers, never renumber, so reviews
# recorded against an id keep meaning the same phrase.
_Row = tuple[int, str, Severity, tuple[str, ...]]
_DEFAULT_ROWS: dict[tuple[Language, Category], list[_Row]] = {
    ("zh", Category.THREAT): [
        (1, "打断你的腿", _C, ()),
        (2, "弄死你", _C, ()),
        (3, "打死你", _C, ()),
        (4, "砍死你", _C, ()),
        (5, "废了你", _C, ()),
        (6, "找人收拾你", _C, ()),
        (7, "让你好看", _M, ()),
        (8, "小心你的家人", _C, ()),
        (9, "走夜路小心", _C, ()),
        (10, "泼油漆", _C, ()),
        (11, "烧了你家", _C, ()),
        (12, "让你见血", _C, ()),
    ],
    ("zh", Category.INTIMIDATION): [
        (1, "上门找你", _M, _ZH_NOT),
        (2, "知道你住在哪", _M, ()),
        (3, "知道你家在哪", _M, ()),
        (4, "你跑不掉", _M, ()),
        (5, "你跑不了", _M, ()),
        (6, "后果自负", _M, ()),
        (7, "让你身败名裂", _M, ()),
        (8, "你等着瞧", _M, ()),
        (9, "打爆你的电话", _M, ()),
        (10, "让你全家不得安宁", _C, ()),
        (11, "别想好过", _M, ()),
        (12, "去你单位闹", _M, _ZH_NOT),
        (13, "天天打电话给你", _M, _ZH_NOT),
        (14, "知道你家住哪", _M, ()),
    ],
    ("zh", Category.INSULT): [
        (1, "骗子", _M, ("谨防", "防范", "小心", "不是", "警惕")),
        (2, "废物", _M, ()),
        (3, "老赖", _M, ()),
        (4, "不要脸", _M, ()),
        (5, "人渣", _M, ()),
        (6, "你是垃圾", _M, ()),
        (7, "你这个垃圾", _M, ()),
        (8, "白痴", _M, ()),
        (9, "脑子有病", _M, ()),
        (10, "穷鬼", _M, ()),
        (11, "畜生", _M, ()),
        (12, "狗东西", _M, ()),
        (13, "去死吧", _C, ()),
    ],
    ("zh", Category.IMPERSONATION): [
        (1, "我们是公安局", _C, ()),
        (2, "我是警察", _C, ()),
        (3, "我们是警察", _C, ()),
        (4, "这里是派出所", _C, ()),
        (5, "我是派出所", _C, ()),
        (6, "我是民警", _C, ()),
        (7, "我们是法院", _C, ()),
        (8, "这里是法院", _C, ()),
        (9, "我是法官", _C, ()),
        (10, "我是法院执行局", _C, ()),
        (11, "我们是检察院", _C, ()),
        (12, "我是检察官", _C, ()),
        (13, "我们是经侦", _C, ()),
        (14, "我们是律师事务所", _M, ()),
        (15, "我是律师", _M, ()),
        (16, "公安机关通知你", _C, ()),
    ],
    ("zh", Category.FALSE_LEGAL_CLAIM): [
        (1, "坐牢", _C, _ZH_NOT),
        (2, "蹲监狱", _C, _ZH_NOT),
        (3, "抓你进去", _C, _ZH_NOT),
        (4, "拘留你", _C, _ZH_NOT),
        (5, "逮捕你", _C, _ZH_NOT),
        (6, "你已经被起诉了", _M, ()),
        (7, "已经立案", _M, _ZH_NOT),
        (8, "法院传票", _M, ()),
        (9, "追究你的刑事责任", _C, _ZH_NOT),
        (10, "涉嫌诈骗", _M, _ZH_NOT),
        (11, "冻结你的银行卡", _M, _ZH_NOT),
        (12, "查封你的房子", _M, _ZH_NOT),
        (13, "列入失信被执行人", _M, _ZH_NOT),
        (14, "通缉你", _C, _ZH_NOT),
    ],
    ("zh", Category.THIRD_PARTY_DISCLOSURE): [
        (1, "告诉你的单位", _C, _ZH_NOT),
        (2, "告诉你的同事", _C, _ZH_NOT),
        (3, "告诉你的邻居", _C, _ZH_NOT),
        (4, "告诉你的家人", _C, _ZH_NOT),
        (5, "告诉你的领导", _C, _ZH_NOT),
        (6, "让你家人知道", _C, _ZH_NOT),
        (7, "让你同事都知道", _C, _ZH_NOT),
        (8, "爆你的通讯录", _C, _ZH_NOT),
        (9, "打给你通讯录", _C, _ZH_NOT),
        (10, "联系你的通讯录", _C, _ZH_NOT),
        (11, "群发给你的联系人", _C, _ZH_NOT),
        (12, "发到你朋友圈", _C, _ZH_NOT),
        (13, "让所有人都知道你欠钱", _C, _ZH_NOT),
        (14, "曝光你", _C, _ZH_NOT),
        (15, "打电话给你的领导", _C, _ZH_NOT),
        (16, "打电话给你的单位", _C, _ZH_NOT),
        (17, "打到你单位", _C, _ZH_NOT),
    ],
    ("en", Category.THREAT): [
        (1, "break your legs", _C, ()),
        (2, "kill you", _C, _EN_NOT),
        (3, "hurt you", _C, _EN_NOT),
        (4, "hurt your family", _C, ()),
        (5, "beat you up", _C, ()),
        (6, "burn your house", _C, ()),
        (7, "burn down your house", _C, ()),
        (8, "you'll regret it", _M, ()),
        (9, "you will regret it", _M, ()),
        (10, "something bad will happen", _C, ()),
        (11, "watch your back", _C, ()),
    ],
    ("en", Category.INTIMIDATION): [
        (1, "we know where you live", _C, ()),
        (2, "we know where you work", _M, ()),
        (3, "we know where your kids", _C, ()),
        (4, "we are watching you", _M, ()),
        (5, "we're watching you", _M, ()),
        (6, "you can't hide", _M, ()),
        (7, "you cannot hide", _M, ()),
        (8, "we will find you", _M, ()),
        (9, "we'll find you", _M, ()),
        (10, "make your life miserable", _M, ()),
        (11, "make your life hell", _M, ()),
        (12, "pay or else", _M, ()),
        (13, "you have been warned", _M, ()),
        (14, "you've been warned", _M, ()),
        (15, "keep calling until you pay", _M, ()),
        (16, "show up at your door", _M, _EN_NOT),
        (17, "come to your house", _M, _EN_NOT),
    ],
    ("en", Category.INSULT): [
        (1, "deadbeat*", _M, ()),
        (2, "loser*", _M, ()),
        (3, "idiot*", _M, ()),
        (4, "stupid", _M, ()),
        (5, "moron*", _M, ()),
        (6, "scumbag*", _M, ()),
        (7, "worthless", _M, ()),
        (8, "pathetic", _M, ()),
        (9, "liar*", _M, ()),
        (10, "thief", _M, ()),
        (11, "lowlife", _M, ()),
        (12, "piece of shit", _M, ()),
        (13, "fuck*", _M, ()),
        (14, "bitch*", _M, ()),
        (15, "asshole*", _M, ()),
        (16, "shame on you", _N, ()),
    ],
    ("en", Category.IMPERSONATION): [
        (1, "this is the police", _C, ()),
        (2, "police officer", _C, ()),
        (3, "this is the sheriff", _C, ()),
        (4, "from the sheriff's office", _C, ()),
        (5, "calling from the court", _C, ()),
        (6, "this is the court", _C, ()),
        (7, "court officer", _C, ()),
        (8, "federal agent", _C, ()),
        (9, "from the fbi", _C, ()),
        (10, "from the irs", _C, ()),
        (11, "district attorney", _C, ()),
        (12, "i am an attorney", _M, ()),
        (13, "i'm an attorney", _M, ()),
        (14, "this is your lawyer", _M, ()),
        (15, "i am a process server", _M, ()),
        (16, "from the police department", _C, ()),
        (17, "calling from the police", _C, ()),
    ],
    ("en", Category.FALSE_LEGAL_CLAIM): [
        (1, "go to jail", _C, _EN_NOT),
        (2, "go to prison", _C, _EN_NOT),
        (3, "be arrested", _C, _EN_NOT),
        (4, "have you arrested", _C, _EN_NOT),
        (5, "arrest warrant", _C, _EN_NOT),
        (6, "warrant for your arrest", _C, _EN_NOT),
        (7, "criminal charges", _C, _EN_NOT),
        (8, "press charges", _C, _EN_NOT),
        (9, "you have been sued", _M, ()),
        (10, "lawsuit has been filed", _M, ()),
        (11, "garnish your wages", _M, _EN_NOT),
        (12, "seize your property", _M, _EN_NOT),
        (13, "take your house", _M, _EN_NOT),
        (14, "committing fraud", _M, _EN_NOT),
    ],
    ("en", Category.THIRD_PARTY_DISCLOSURE): [
        (1, "tell your employer", _C, _EN_NOT),
        (2, "call your employer", _C, _EN_NOT),
        (3, "let your employer know", _C, _EN_NOT),
        (4, "tell your boss", _C, _EN_NOT),
        (5, "call your boss", _C, _EN_NOT),
        (6, "tell your family", _C, _EN_NOT),
        (7, "tell your neighbors", _C, _EN_NOT),
        (8, "tell your neighbours", _C, _EN_NOT),
        (9, "tell your coworkers", _C, _EN_NOT),
        (10, "tell your friends", _C, _EN_NOT),
        (11, "post it on social media", _C, _EN_NOT),
        (12, "everyone will know you owe", _C, ()),
        (13, "your family will find out", _C, _EN_NOT),
    ],
}

DEFAULT_PHRASES = PhraseList(
    (
        Phrase(
            id=f"{language}-{_SLUGS[category]}-{number:03d}",
            category=category,
            text=text,
            language=language,
            severity=severity,
            unless=unless,
        )
        for (language, category), rows in _DEFAULT_ROWS.items()
        for number, text, severity, unless in rows
    ),
    version="builtin-2025.1",
)

DEFAULT_STEPS: tuple[CallStep, ...] = (
    CallStep(
        id="identity_confirmed",
        name="Identity confirmed",
        zh=(
            "本人吗",
            "是本人",
            "请问你是",
            "确认一下你的身份",
            "核实一下你的身份",
            "确认你的身份",
            "核实你的身份",
            "身份证后四位",
            "身份证号后四位",
            "出生日期",
        ),
        en=(
            "am i speaking with",
            "am i speaking to",
            "may i speak with",
            "may i speak to",
            "can i speak with",
            "confirm your identity",
            "verify your identity",
            "date of birth",
            "last four digits",
            "last 4 digits",
        ),
    ),
    CallStep(
        id="debt_stated",
        name="Debt stated",
        zh=(
            "欠款",
            "逾期金额",
            "应还金额",
            "待还金额",
            "未还金额",
            "逾期未还",
            "已逾期",
            "欠费",
            "本息合计",
        ),
        en=(
            "you owe",
            "balance of",
            "amount due",
            "amount owed",
            "outstanding balance",
            "balance due",
            "your balance",
            "past due",
            "overdue",
        ),
        # Stating the debt to someone whose identity is not confirmed discloses it.
        after=("identity_confirmed",),
        order_rule_id="CN-THIRD-PARTY",
    ),
    CallStep(
        id="plan_offered",
        name="Repayment plan offered",
        zh=(
            "还款计划",
            "分期",
            "还款方案",
            "减免",
            "协商还款",
            "延期还款",
            "最低还款",
            "部分还款",
        ),
        en=(
            "payment plan",
            "payment arrangement*",
            "instalment*",
            "installment*",
            "settle*",
            "monthly payment*",
            "hardship",
            "pay over time",
        ),
    ),
)

DEFAULT_IDENTIFICATION: tuple[str, ...] = (
    "debt collector",
    "attempt to collect a debt",
    "委托",
    "催收专员",
    "工号",
    "我是",
    "这里是",
)

# --- transcripts and templates ---------------------------------------------------------------


@dataclass(frozen=True)
class Turn:
    """One speaker's turn in a transcript, as the dialer or transcription system gives it."""

    speaker: Speaker
    text: str


@dataclass(frozen=True)
class StepFinding:
    """Where a step was first covered: the turn and the span inside that turn's text."""

    step_id: str
    turn: int
    start: int
    end: int
    matched: str


@dataclass(frozen=True)
class OrderingProblem:
    """`step_id` first came in `turn`, before `requires` (found in `required_turn`, or never)."""

    step_id: str
    requires: str
    turn: int
    required_turn: int | None
    rule_id: str


@dataclass(frozen=True)
class TranscriptReview:
    """Hits in agent turns (with turn index), steps found/missing in step order, order problems."""

    phrase_list_version: str
    hits: tuple[LanguageHit, ...]
    steps_found: tuple[StepFinding, ...]
    steps_missing: tuple[str, ...]
    ordering_problems: tuple[OrderingProblem, ...]

    @property
    def ok(self) -> bool:
        return not (self.hits or self.steps_missing or self.ordering_problems)


@dataclass(frozen=True)
class TemplateReview:
    """Hits in a script or template, and whether it identifies who is collecting."""

    phrase_list_version: str
    hits: tuple[LanguageHit, ...]
    identified: bool

    @property
    def ok(self) -> bool:
        return not self.hits and self.identified


def scan(text: str, phrases: PhraseList = DEFAULT_PHRASES) -> list[LanguageHit]:
    """Every prohibited phrase in `text`, ordered by start offset (then end, then phrase id)."""
    return _scan(_Folded(text), phrases)


def check_transcript(
    turns: Sequence[Turn],
    *,
    phrases: PhraseList = DEFAULT_PHRASES,
    steps: Sequence[CallStep] = DEFAULT_STEPS,
    language: Language | None = None,
) -> TranscriptReview:
    """Prohibited language in the agent's turns, and the mandatory steps and their order.

    Only agent turns count: a debtor swearing is not a violation, and a step is covered only
    when the agent covers it. `language` restricts phrases and steps to one language.
    """
    plist = phrases if language is None else phrases.for_language(language)
    compiled_steps = _compile_steps(tuple(steps), language)

    hits: list[LanguageHit] = []
    first: dict[str, StepFinding] = {}
    for index, turn in enumerate(turns):
        if turn.speaker != "agent":
            continue
        doc = _Folded(turn.text)
        hits.extend(replace(h, turn=index) for h in _scan(doc, plist))
        for step, patterns in compiled_steps:
            if step.id in first:
                continue
            found = [(pos, len(p.needle)) for p in patterns for pos in doc.find_all(p)]
            if found:
                pos, size = min(found)
                start, end = doc.span(pos, pos + size)
                first[step.id] = StepFinding(step.id, index, start, end, turn.text[start:end])

    problems: list[OrderingProblem] = []
    for step, _ in compiled_steps:
        finding = first.get(step.id)
        if finding is None:
            continue
        for required in step.after:
            before = first.get(required)
            if before is None or before.turn >= finding.turn:
                problems.append(
                    OrderingProblem(
                        step_id=step.id,
                        requires=required,
                        turn=finding.turn,
                        required_turn=None if before is None else before.turn,
                        rule_id=step.order_rule_id,
                    )
                )
    order = [s.id for s, _ in compiled_steps]
    return TranscriptReview(
        phrase_list_version=plist.version,
        hits=tuple(hits),
        steps_found=tuple(first[i] for i in order if i in first),
        steps_missing=tuple(i for i in order if i not in first),
        ordering_problems=tuple(problems),
    )


def check_template(
    text: str,
    *,
    phrases: PhraseList = DEFAULT_PHRASES,
    identification: Sequence[str] = DEFAULT_IDENTIFICATION,
) -> TemplateReview:
    """Prohibited language in a script or template, and whether it says who is collecting.

    `identified` is true when any `identification` phrase occurs (by default the Reg F
    1006.18(e) debt-collector disclosure, or the 自律公约's 表明身份/委托机构); pass () to skip.
    """
    doc = _Folded(text)
    identified = not identification or any(
        next(doc.find_all(_pattern(p)), None) is not None for p in identification
    )
    return TemplateReview(phrases.version, tuple(_scan(doc, phrases)), identified)


def warm_up() -> None:
    """Load the conversion table and compile the defaults, so the first real check is fast."""
    scan("预热 warm-up")
    _compile_steps(DEFAULT_STEPS, None)


__all__ = [
    "CITATIONS",
    "DEFAULT_IDENTIFICATION",
    "DEFAULT_PHRASES",
    "DEFAULT_STEPS",
    "DEFAULT_UNLESS_WINDOW",
    "RULE_IDS",
    "CallStep",
    "Category",
    "Language",
    "LanguageHit",
    "OrderingProblem",
    "Phrase",
    "PhraseList",
    "Severity",
    "Speaker",
    "StepFinding",
    "TemplateReview",
    "TranscriptReview",
    "Turn",
    "check_template",
    "check_transcript",
    "load_steps",
    "normalize",
    "scan",
    "warm_up",
]
