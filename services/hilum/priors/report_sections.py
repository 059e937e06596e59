"""A free-text radiology report cut into its sections (FINDINGS, IMPRESSION, ...) and its sections into sentences.

A section starts at a heading at the start of a line ("FINDINGS:", "Impression -", "CLINICAL HISTORY:"); text
before the first heading is the BODY. Sentences end at ". ", "? ", "! ", "; " and at blank lines or numbered list
items, never inside a number ("4.5 cm") or after an abbreviation ("vs.").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum


class SectionKind(StrEnum):
    """What a report section holds; only FINDINGS, IMPRESSION and BODY describe the images."""

    FINDINGS = "findings"
    IMPRESSION = "impression"
    BODY = "body"  # text before any heading, or a report without headings
    HISTORY = "history"  # indication, clinical history, reason for the examination
    COMPARISON = "comparison"
    TECHNIQUE = "technique"  # technique, examination, procedure, views
    OTHER = "other"  # recommendations, notification, signature, addenda


# A heading's words (lower case, single spaces) and the kind of section it opens.
HEADINGS: dict[str, SectionKind] = {
    "findings": SectionKind.FINDINGS,
    "finding": SectionKind.FINDINGS,
    "report": SectionKind.FINDINGS,
    "impression": SectionKind.IMPRESSION,
    "impressions": SectionKind.IMPRESSION,
    "conclusion": SectionKind.IMPRESSION,
    "conclusions": SectionKind.IMPRESSION,
    "summary": SectionKind.IMPRESSION,
    "opinion": SectionKind.IMPRESSION,
    "indication": SectionKind.HISTORY,
    "indications": SectionKind.HISTORY,
    "history": SectionKind.HISTORY,
    "clinical history": SectionKind.HISTORY,
    "clinical indication": SectionKind.HISTORY,
    "clinical information": SectionKind.HISTORY,
    "reason for exam": SectionKind.HISTORY,
    "reason for examination": SectionKind.HISTORY,
    "reason for study": SectionKind.HISTORY,
    "comparison": SectionKind.COMPARISON,
    "comparisons": SectionKind.COMPARISON,
    "technique": SectionKind.TECHNIQUE,
    "examination": SectionKind.TECHNIQUE,
    "exam": SectionKind.TECHNIQUE,
    "procedure": SectionKind.TECHNIQUE,
    "views": SectionKind.TECHNIQUE,
    "recommendation": SectionKind.OTHER,
    "recommendations": SectionKind.OTHER,
    "notification": SectionKind.OTHER,
    "addendum": SectionKind.OTHER,
}

# Sections whose sentences describe the images: the labeler reads these and nothing else.
DESCRIBING = frozenset({SectionKind.FINDINGS, SectionKind.IMPRESSION, SectionKind.BODY})

_HEADING = re.compile(
    r"^[ \t]*(?P<name>" + "|".join(sorted((re.escape(h).replace(r"\ ", r"\s+") for h in HEADINGS), key=len,
                                          reverse=True))
    + r")[ \t]*(?::|-(?=\s)|\n)[ \t]*",
    re.IGNORECASE | re.MULTILINE,
)
# Full stops that do not end a sentence.
_ABBREVIATIONS = re.compile(r"\b(vs|e\.g|i\.e|approx|dr|cf)\.", re.IGNORECASE)
_SENTENCE_END = re.compile(r"(?<=[.?!;])\s+|\n\s*\n|\n(?=\s*(?:\d{1,2}[.)]|[-*•])\s)")
_LIST_NUMBER = re.compile(r"^\s*(?:\d{1,2}[.)]|[-*•])\s+")


@dataclass(frozen=True)
class Section:
    """One section of a report: its kind, the heading as written ("" for BODY) and its text."""

    kind: SectionKind
    heading: str
    text: str


def split_sections(report: str) -> tuple[Section, ...]:
    """The report's sections in order; empty sections are left out. A report without headings is one BODY."""
    sections: list[Section] = []
    kind, heading, start = SectionKind.BODY, "", 0
    for match in _HEADING.finditer(report):
        sections.append(Section(kind, heading, report[start:match.start()].strip()))
        name = " ".join(match.group("name").lower().split())
        kind, heading, start = HEADINGS[name], match.group("name"), match.end()
    sections.append(Section(kind, heading, report[start:].strip()))
    return tuple(section for section in sections if section.text)


def sentences(text: str) -> tuple[str, ...]:
    """The text's sentences (and ";"-separated clauses), stripped, without list numbers ("1."), in order."""
    protected = _ABBREVIATIONS.sub(lambda match: match.group(0)[:-1], text)
    parts = (_LIST_NUMBER.sub("", part).strip() for part in _SENTENCE_END.split(protected))
    return tuple(part for part in parts if any(char.isalpha() for char in part))


def describing_sentences(report: str) -> tuple[tuple[SectionKind, str], ...]:
    """The sentences of the sections that describe the images (findings, impression, or an unheaded body)."""
    return tuple(
        (section.kind, sentence)
        for section in split_sections(report)
        if section.kind in DESCRIBING
        for sentence in sentences(section.text)
    )
