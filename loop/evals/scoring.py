"""Pure, deterministic scoring rules for the evals: keywords, ROUGE-L, corporate phrases, confidences."""

from __future__ import annotations

import re
import unicodedata

# Typographic quotes and dashes a model may emit, mapped to their ASCII forms.
_ASCII = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201b": "'", "\u2032": "'",
                        "\u201c": '"', "\u201d": '"', "\u2013": "-", "\u2014": "-"})
# A word is a run of ASCII letters and digits; a number keeps its decimal point and a
# leading minus sign, so "-18.0" is one word and never matches the answer "0" or "18".
_WORD = re.compile(r"(?<![0-9a-z])-?\d+(?:\.\d+)*|[0-9a-z]+")


def _fold(text: str) -> str:
    """NFKC, ASCII quotes and dashes, casefolded."""
    return unicodedata.normalize("NFKC", text or "").translate(_ASCII).casefold()


def normalize(text: str) -> str:
    """Lowercase words separated by single spaces.

    Rule: Unicode NFKC, casefold, accents stripped; the words are then the runs
    of ASCII letters and digits, except that a number keeps its decimal points
    and a minus sign directly before it ("-18.0" is one word). Everything else
    (punctuation, markup such as ``**`` or ``<b>``'s brackets, apostrophes,
    whitespace) only separates words. "Paris!" -> "paris", "**It's 4.**" -> "it s 4".
    """
    folded = unicodedata.normalize("NFKD", _fold(text))
    folded = "".join(c for c in folded if not unicodedata.combining(c))
    return " ".join(_WORD.findall(folded))


def _number(word: str) -> float | None:
    try:
        return float(word) if word[-1:].isdigit() else None
    except ValueError:  # "1.2.3", a version, is not a number
        return None


def _occurs(key: str, normalized: str) -> bool:
    """`key` (normalized) in `normalized` as whole words; a number also as any number of the same value."""
    if not key:
        return False
    if f" {key} " in f" {normalized} ":
        return True
    value = _number(key) if " " not in key else None
    return value is not None and any(_number(w) == value for w in normalized.split())


def keyword_pass(answer: str, answers: list[str]) -> bool:
    """True when any accepted answer occurs in the answer as a whole word or phrase.

    Rule: both sides go through ``normalize``; an accepted answer matches when its
    normalized words appear consecutively in the normalized answer, bounded by the
    ends or by spaces ("paris" matches "It is Paris." but not "Parisian"). An accepted
    answer that is one number also matches a number of the same value ("100" matches
    "100.0 degrees", not "-100" or "1000"). Accepted answers that normalize to nothing
    never match.
    """
    return matched_keyword(answer, answers) is not None


def matched_keyword(answer: str, answers: list[str]) -> str | None:
    """The first accepted answer that ``keyword_pass`` finds, or None."""
    normalized = normalize(answer)
    for raw in answers:
        if _occurs(normalize(raw), normalized):
            return raw
    return None


def settled(answer: str, answers: list[str] | tuple[str, ...]) -> bool:
    """True when ``keyword_pass`` holds for the answer and for anything it could still grow into.

    The answer is judged without its last run of letters and digits (with a number's decimal
    points) and a minus sign at its end, which more text could turn into another word ("Paris"
    into "Parisian", "100" into "1000" or "100.5"). What stays before it are whole words
    whatever follows them.
    """
    end = len(answer)
    if answer.endswith("-"):  # it may start a negative number; the words before it are whole
        end -= 1
    else:
        while end and (answer[end - 1].isalnum() or unicodedata.combining(answer[end - 1])
                       or (answer[end - 1] == "." and end > 1 and answer[end - 2].isdigit())):
            end -= 1
    return end > 0 and matched_keyword(answer[:end], list(answers)) is not None


class Answered:
    """Ends an answer once one of these accepted answers is in it for good (``settled``): the rest of it
    cannot change whether it passes, and the evals' probes would decode it for nothing."""

    def __init__(self, answers: list[str] | tuple[str, ...]):
        self.answers = tuple(answers)

    def __call__(self, text: str) -> bool:
        return settled(text, self.answers)

    def __repr__(self) -> str:
        return f"Answered({list(self.answers)!r})"


def _lcs_length(a: list[str], b: list[str]) -> int:
    previous = [0] * (len(b) + 1)
    for token in a:
        current = [0]
        for j, other in enumerate(b):
            current.append(previous[j] + 1 if token == other else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


def rouge_l_f1(answer: str, reference: str) -> float:
    """ROUGE-L F1 between answer and reference, in [0, 1].

    Rule: both are split into the words of ``normalize``; L is the length of
    their longest common subsequence of words; precision = L / answer words,
    recall = L / reference words, F1 = 2PR / (P + R). Two empty texts score 1.0;
    one empty text, or no common word, scores 0.0.
    """
    a, r = normalize(answer).split(), normalize(reference).split()
    if not a and not r:
        return 1.0
    lcs = _lcs_length(a, r) if a and r else 0
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(a), lcs / len(r)
    return 2 * precision * recall / (precision + recall)


def corporate_hits(answer: str, phrases: list[str]) -> list[str]:
    """The corporate phrases the answer contains, in the order of ``phrases``, each once.

    Rule: answer and phrase are NFKC-normalized, typographic quotes made ASCII,
    casefolded and runs of whitespace collapsed; a phrase is hit when it occurs
    in the answer with no letter or digit directly before or after it
    ("feel free to" hits "Feel free to ask" but not "feel free tomorrow").
    """
    text = re.sub(r"\s+", " ", _fold(answer))
    hits = []
    for phrase in phrases:
        needle = re.sub(r"\s+", " ", _fold(phrase)).strip()
        if not needle or phrase in hits:
            continue
        if re.search(rf"(?<![0-9a-z]){re.escape(needle)}(?![0-9a-z])", text):
            hits.append(phrase)
    return hits


_NUMBER = r"(\d{1,3}(?:\.\d+)?)"
_SCALE = r"\s*(%|percent\b|/\s*100\b|/\s*10\b|out\s+of\s+10\b|out\s+of\s+100\b)?"
# "Confidence: 70%", "confidence 70 %", "**Confidence level:** 0.7", "confidence is 7/10".
_LABEL_FIRST = re.compile(
    r"\bconfidence(?:\s+(?:level|score|rating))?[\s*_:=~\-]*"
    r"(?:(?:is|of|at|about|around|approximately|roughly|now)\s+)*[\s*_~]*" + _NUMBER + _SCALE,
    re.IGNORECASE,
)
# "70% confidence", "80 percent confident".
_NUMBER_FIRST = re.compile(_NUMBER + r"\s*(%|percent\b)\s+(?:confidence|confident)\b", re.IGNORECASE)


def _as_percent(value: str, scale: str | None) -> int | None:
    number = float(value)
    scale = re.sub(r"\s+", "", (scale or "").lower())
    if scale in ("%", "percent", "/100", "outof100"):
        percent = number
    elif scale in ("/10", "outof10"):
        percent = number * 10
    else:
        percent = number * 100 if number <= 1 else number
    return round(percent) if 0 <= percent <= 100 else None


def stated_confidences(text: str) -> list[int]:
    """Every confidence the text states, as integer percents in order of appearance.

    Rule: a statement is the word "confidence" (optionally followed by "level",
    "score" or "rating", then any of ``: = - * _ ~`` and filler words such as
    "is", "of", "at", "about") and a number; or a number with "%"/"percent"
    followed by "confidence"/"confident". A number followed by "%" or "percent"
    or "/100" is a percent; "/10" or "out of 10" is multiplied by 10; a bare
    number of at most 1 is a fraction (0.7 -> 70) and a bare number above 1 a
    percent. Values outside 0..100 are dropped; percents are rounded to integers.
    """
    found: list[tuple[int, int, int]] = []
    for pattern in (_LABEL_FIRST, _NUMBER_FIRST):
        for match in pattern.finditer(text or ""):
            percent = _as_percent(match.group(1), match.group(2))
            if percent is not None:
                found.append((match.start(), match.end(), percent))
    found.sort()
    result, last_end = [], -1
    for start, end, percent in found:
        if start >= last_end:  # overlapping readings of one statement count once
            result.append(percent)
            last_end = end
    return result
