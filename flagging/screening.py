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

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from flagging.errors import InvalidInput, NotFound
from flagging.models import ScreeningRule

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
    (
        "not-yet-discussed",
        "regex",
        r"\b(?:metasta\w*|carcinoma\w*|lymphoma|sarcoma|melanoma)\b",
        "Cancer diagnosis terms",
    ),
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
    (
        "mental-health-act",
        "regex",
        r"\bsection\s+(?:2|3|4|5\(2\)|136)\b",
        "Detained under a section",
    ),
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
class RuleSet:
    text_rules: list[tuple[int, re.Pattern[str]]]
    combined: re.Pattern[str] | None  # words and phrases in one pass; group r<id> per rule
    document_types: dict[str, int]
    specialties: dict[str, int]

    def screen(self, text: str, document_type: str = "", specialty: str = "") -> list[Hit]:
        hits: list[Hit] = []
        if self.combined is not None and text:
            for match in self.combined.finditer(text):
                assert match.lastgroup is not None
                hits.append(Hit(int(match.lastgroup[1:]), match.start(), match.end()))
        for rule_id, pattern in self.text_rules:
            hits.extend(Hit(rule_id, m.start(), m.end()) for m in pattern.finditer(text))
        for table, value in ((self.document_types, document_type), (self.specialties, specialty)):
            matched = table.get(value.strip().upper()) if value else None
            if matched is not None:
                hits.append(Hit(matched, 0, 0))
        return sorted(hits, key=lambda h: (h.start, h.rule_id))


def _word_pattern(pattern: str) -> str:
    words = [re.escape(w) for w in pattern.split()]
    return r"\b" + r"\s+".join(words) + r"\b"


def compile_rules(rules: list[ScreeningRule]) -> RuleSet:
    alternatives = []
    text_rules = []
    document_types: dict[str, int] = {}
    specialties: dict[str, int] = {}
    for rule in rules:
        if rule.kind in ("word", "phrase"):
            alternatives.append(f"(?P<r{rule.id}>{_word_pattern(rule.pattern)})")
        elif rule.kind == "regex":
            text_rules.append((rule.id, re.compile(rule.pattern, re.IGNORECASE)))
        elif rule.kind == "document-type":
            document_types[rule.pattern.strip().upper()] = rule.id
        elif rule.kind == "specialty":
            specialties[rule.pattern.strip().upper()] = rule.id
    combined = re.compile("|".join(alternatives), re.IGNORECASE) if alternatives else None
    return RuleSet(text_rules, combined, document_types, specialties)


_cache_lock = threading.Lock()
_cache: tuple[tuple[object, ...], RuleSet] | None = None


def active_rules(session: Session) -> RuleSet:
    """The compiled active rules; recompiled only when a rule was added, changed or removed."""
    global _cache
    key = tuple(
        session.execute(
            select(
                func.count(ScreeningRule.id),
                func.max(ScreeningRule.id),
                func.max(ScreeningRule.created_at),
                func.sum(ScreeningRule.id * ScreeningRule.id),
                func.sum(func.length(ScreeningRule.pattern)),
            ).where(ScreeningRule.active.is_(True))
        ).one()
    )
    with _cache_lock:
        if _cache is not None and _cache[0] == key:
            return _cache[1]
    rules = list(session.scalars(select(ScreeningRule).where(ScreeningRule.active.is_(True))))
    compiled = compile_rules(rules)
    with _cache_lock:
        _cache = (key, compiled)
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
