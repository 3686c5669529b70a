"""Screening: rules that hold back likely-sensitive documents for a person to decide.

Screening only ever holds a document back (pending, not released by the review window); it
never releases anything. Word and phrase rules match case-insensitively on word boundaries;
regular expressions are the administrator's own. Hits keep their character offsets so the
reviewer sees them highlighted.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from flagging.errors import InvalidInput, NotFound
from flagging.models import ScreeningRule
from flagging.storage.rawsql import Raw

KINDS = ("word", "phrase", "regex", "document-type", "specialty")

# A starter set a clinical safety officer would recognise; each trust should review it.
STARTER_RULES: tuple[tuple[str, str, str, str], ...] = (
    # (category, kind, pattern, name)
    ("safeguarding", "word", "safeguarding", "Safeguarding"),
    ("safeguarding", "phrase", "domestic abuse", "Domestic abuse"),
    ("safeguarding", "phrase", "domestic violence", "Domestic violence"),
    ("safeguarding", "phrase", "coercive control", "Coercive control"),
    ("safeguarding", "phrase", "child protection", "Child protection"),
    ("safeguarding", "phrase", "non-accidental injury", "Non-accidental injury"),
    ("safeguarding", "word", "MARAC", "MARAC referral"),
    ("safeguarding", "phrase", "female genital mutilation", "FGM"),
    ("third-party", "phrase", "third party", "Third-party information"),
    ("third-party", "phrase", "told in confidence", "Information given in confidence"),
    ("third-party", "phrase", "do not disclose", "Do not disclose"),
    ("not-yet-discussed", "word", "malignancy", "Malignancy"),
    ("not-yet-discussed", "word", "metasta*", "Metastases"),
    ("not-yet-discussed", "word", "carcinoma*", "Carcinoma"),
    ("not-yet-discussed", "word", "lymphoma", "Lymphoma"),
    ("not-yet-discussed", "word", "sarcoma", "Sarcoma"),
    ("not-yet-discussed", "word", "melanoma", "Melanoma"),
    ("not-yet-discussed", "phrase", "not yet discussed", "Not yet discussed"),
    ("not-yet-discussed", "phrase", "breaking bad news", "Bad news to be given"),
    ("not-yet-discussed", "phrase", "motor neurone disease", "Motor neurone disease"),
    ("sexual-health", "word", "HIV", "HIV"),
    ("sexual-health", "phrase", "sexually transmitted", "Sexually transmitted infection"),
    ("sexual-health", "word", "chlamydia", "Chlamydia"),
    ("sexual-health", "word", "gonorrhoea", "Gonorrhoea"),
    ("sexual-health", "word", "syphilis", "Syphilis"),
    ("termination", "phrase", "termination of pregnancy", "Termination of pregnancy"),
    ("termination", "phrase", "medical abortion", "Abortion"),
    ("mental-health-act", "phrase", "mental health act", "Mental Health Act"),
    ("mental-health-act", "phrase", "detained under section", "Detained under a section"),
    ("mental-health-act", "word", "sectioned", "Sectioned"),
    ("mental-health-act", "phrase", "section 136", "Section 136"),
    ("gender-identity", "phrase", "gender identity", "Gender identity"),
    ("gender-identity", "phrase", "gender recognition certificate", "Gender recognition"),
    ("legal", "word", "adoption", "Adoption"),
    ("legal", "phrase", "court order", "Court order"),
    ("legal", "phrase", "special guardianship", "Special guardianship"),
)


@dataclass(frozen=True)
class Hit:
    rule_id: int
    start: int
    end: int


@dataclass(frozen=True)
class WordRule:
    """A word or phrase matched case-insensitively on word boundaries; a trailing * on the
    last word matches any ending (metasta* finds metastases and metastatic)."""

    rule_id: int
    words: tuple[str, ...]
    prefix: bool
    pattern: re.Pattern[str]  # the same rule as a regex, for text whose case-folding shifts

    @classmethod
    def of(cls, rule_id: int, text: str) -> WordRule:
        words = tuple(text.lower().split())
        prefix = words[-1].endswith("*")
        if prefix:
            words = (*words[:-1], words[-1].rstrip("*"))
        body = r"\s+".join(re.escape(w) for w in words)
        regex = r"\b" + body + (r"\w*" if prefix else r"\b")
        return cls(rule_id, words, prefix, re.compile(regex, re.IGNORECASE))

    def find(self, lowered: str) -> list[Hit]:
        """Hits in text already lower-cased: str.find scans in C, so each rule costs
        microseconds where a regex over the whole text costs a hundred or more."""
        hits = []
        first = self.words[0]
        position = lowered.find(first)
        while position != -1:
            end = self._match_at(lowered, position)
            if end is not None:
                hits.append(Hit(self.rule_id, position, end))
            position = lowered.find(first, position + 1)
        return hits

    def _match_at(self, text: str, start: int) -> int | None:
        if start > 0 and _is_word(text[start - 1]):
            return None
        end = start
        for index, word in enumerate(self.words):
            if index:
                gap = end
                while gap < len(text) and text[gap].isspace():
                    gap += 1
                if gap == end or not text.startswith(word, gap):
                    return None
                end = gap
            elif not text.startswith(word, end):
                return None
            end += len(word)
        if self.prefix:
            while end < len(text) and _is_word(text[end]):
                end += 1
            return end
        return None if end < len(text) and _is_word(text[end]) else end


def _is_word(char: str) -> bool:
    return char.isalnum() or char == "_"


@dataclass(frozen=True)
class RuleSet:
    word_rules: list[WordRule]
    regex_rules: list[tuple[int, re.Pattern[str]]]
    document_types: dict[str, int]
    specialties: dict[str, int]
    # Which active rules these are (see _FINGERPRINT): screening done ahead, maybe in another
    # process, counts only if the rules active in the transaction have the same fingerprint.
    fingerprint: tuple[object, ...] = ()

    def screen(self, text: str, document_type: str = "", specialty: str = "") -> list[Hit]:
        hits: list[Hit] = []
        if text and self.word_rules:
            lowered = text.lower()
            if len(lowered) == len(text):
                for rule in self.word_rules:
                    hits.extend(rule.find(lowered))
            else:  # lower-casing changed offsets (rare letters): use the regex forms
                for rule in self.word_rules:
                    hits.extend(
                        Hit(rule.rule_id, m.start(), m.end()) for m in rule.pattern.finditer(text)
                    )
        for rule_id, pattern in self.regex_rules:
            hits.extend(Hit(rule_id, m.start(), m.end()) for m in pattern.finditer(text))
        for table, value in ((self.document_types, document_type), (self.specialties, specialty)):
            matched = table.get(value.strip().upper()) if value else None
            if matched is not None:
                hits.append(Hit(matched, 0, 0))
        return sorted(hits, key=lambda h: (h.start, h.rule_id))


@dataclass(frozen=True)
class RuleSpec:
    id: int
    kind: str
    pattern: str


def compile_rules(rules: list[RuleSpec], fingerprint: tuple[object, ...] = ()) -> RuleSet:
    word_rules = []
    regex_rules = []
    document_types: dict[str, int] = {}
    specialties: dict[str, int] = {}
    for rule in rules:
        if rule.kind in ("word", "phrase"):
            word_rules.append(WordRule.of(rule.id, rule.pattern))
        elif rule.kind == "regex":
            regex_rules.append((rule.id, re.compile(rule.pattern, re.IGNORECASE)))
        elif rule.kind == "document-type":
            document_types[rule.pattern.strip().upper()] = rule.id
        elif rule.kind == "specialty":
            specialties[rule.pattern.strip().upper()] = rule.id
    return RuleSet(word_rules, regex_rules, document_types, specialties, fingerprint)


# Rules change rarely and are read for every message: the compiled set is kept per process and
# rebuilt when this fingerprint of the active rules changes (rules are added or switched on and
# off, never edited in place).
_FINGERPRINT = (
    "SELECT count(*), coalesce(max(id), 0), coalesce(sum(id * id), 0),"
    " coalesce(sum(length(pattern)), 0) FROM screening_rules WHERE active = :active"
)
_ACTIVE = "SELECT id, kind, pattern FROM screening_rules WHERE active = :active"
_cache_lock = threading.Lock()
_cache: RuleSet | None = None


def cached_rules() -> RuleSet | None:
    """The rules this process compiled last, without asking the database (None before the
    first message): for screening ahead of the writer's transaction, which `active_rules`
    then confirms."""
    with _cache_lock:
        return _cache


def active_rules(raw: Raw) -> RuleSet:
    """The compiled active rules, from the cache unless the rules changed (checked once per
    transaction)."""
    return raw.memo("active rules", lambda: _active_rules(raw))


def ask_active_rules(raw: Raw) -> None:
    """Send `active_rules`' check of the fingerprint ahead (Raw.ahead), unless done already."""
    raw.ahead(_FINGERPRINT, {"active": True}, "active rules")


def _active_rules(raw: Raw) -> RuleSet:
    global _cache
    key = raw.one(_FINGERPRINT, {"active": True}) or ()
    with _cache_lock:
        if _cache is not None and _cache.fingerprint == key:
            return _cache
    rows = raw.execute(_ACTIVE, {"active": True}).fetchall()
    compiled = compile_rules([RuleSpec(*row) for row in rows], key)
    with _cache_lock:
        _cache = compiled
    return compiled


def add_rule(
    session: Session, *, name: str, kind: str, pattern: str, category: str = ""
) -> ScreeningRule:
    """Add a rule; the pattern is checked now, so a bad one never reaches ingest."""
    if kind not in KINDS:
        raise InvalidInput(f"rule kind must be one of {', '.join(KINDS)}, not {kind!r}")
    pattern = pattern.strip()
    if not pattern:
        raise InvalidInput("a rule needs a pattern")
    if kind == "regex":
        try:
            re.compile(pattern)
        except re.error as exc:
            raise InvalidInput(f"the regular expression does not compile: {exc}") from None
    rule = ScreeningRule(
        name=name.strip() or pattern,
        kind=kind,
        pattern=pattern,
        category=category.strip(),
        active=True,
        created_at=datetime.now(UTC),
    )
    session.add(rule)
    session.flush()
    return rule


def set_rule_active(session: Session, rule_id: int, active: bool) -> ScreeningRule:
    rule = session.get(ScreeningRule, rule_id)
    if rule is None:
        raise NotFound(f"no screening rule {rule_id}")
    rule.active = active
    session.flush()
    return rule


def list_rules(session: Session) -> list[ScreeningRule]:
    return list(
        session.scalars(select(ScreeningRule).order_by(ScreeningRule.category, ScreeningRule.id))
    )


def add_starter_rules(session: Session) -> int:
    """Add the starter set (skipping patterns already present); return how many were added."""
    existing = {(r.kind, r.pattern) for r in list_rules(session)}
    added = 0
    for category, kind, pattern, name in STARTER_RULES:
        if (kind, pattern) not in existing:
            add_rule(session, name=name, kind=kind, pattern=pattern, category=category)
            added += 1
    return added
