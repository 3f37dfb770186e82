"""Facts a user teaches in conversation ("the auth service moved to port 7301"): found, drilled, asked back.

A fact is a subject, an attribute and a value the base model cannot guess: a value with a digit
in it, or a host name, path or address (a dot, slash, colon or dash inside). Trained only as the
user said it, a small model learns the shape of the answer and not the value: asked again it says
"the United States Postal Service". So each fact found in a generation's new records is trained
again as a few short questions in other phrasings (drills), and asked back in phrasings that
were never trained (the ask set), scored by its exact value. Both are templates, written here;
the two sets share no phrasing.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

_WORD = r"[A-Za-z][\w-]*"
_SUBJECT = rf"(?P<s>{_WORD}(?: {_WORD}){{0,3}}?)"
_VALUE = r"(?P<v>[A-Za-z0-9/][\w.:/-]*[A-Za-z0-9/]|\d)"
_NOW = r"(?:now |still |currently )?"
_PORT = re.compile(rf"\b{_SUBJECT} (?:is |has )?{_NOW}(?:moved to|runs on|listens on|uses|is on|is at) port "
                   r"(?P<v>\d{2,5})\b", re.I)
_PORT_OF = re.compile(rf"\b(?:the )?port (?:of|for) (?:the )?{_SUBJECT} is {_NOW}(?P<v>\d{{2,5}})\b", re.I)
_HOST = re.compile(rf"\b{_SUBJECT} (?:has |is )?{_NOW}(?:moved to|runs on|is hosted on|lives on|is on) "
                   rf"(?:the )?(?:host |server |box |machine )?{_VALUE}", re.I)
_ATTR_OF = re.compile(rf"\b(?:the )?(?P<a>{_WORD}(?: {_WORD})?) (?:of|for) (?:the )?{_SUBJECT} is {_NOW}{_VALUE}",
                      re.I)
_OWN = re.compile(rf"\b{_SUBJECT}'s (?P<a>{_WORD}(?: {_WORD})?) is {_NOW}{_VALUE}", re.I)
_FILLER = {"the", "a", "an", "our", "my", "your", "it", "this", "that", "which", "what", "where", "and", "so",
           "now", "btw", "fyi", "ok", "okay", "also", "note", "heads", "up"}
_SKIP_SUBJECTS = {"it", "this", "that", "there", "he", "she", "they", "we", "i", "you", "which", "what"}

ASK = {  # asked back, never trained
    "port": ["Which port does {s} listen on these days?", "If I want to reach {s}, what port do I use?"],
    "host": ["Which machine is {s} running on now?", "Where would I find {s} these days?"],
    "attr": ["What's the {a} for {s} again?", "Quick one: {s}, which {a}?"],
}
DRILL = {  # trained, beside the record the fact came from
    "port": [("What port is {s} on?", "{S} is on port {v}."), ("Remind me of the port for {s}.", "Port {v}."),
             ("{S} port?", "{v}")],
    "host": [("Where does {s} run?", "{S} runs on {v}."), ("What host is {s} on?", "{v}"),
             ("Remind me where {s} lives.", "{S} is on {v}.")],
    "attr": [("What is the {a} of {s}?", "The {a} of {s} is {v}."), ("Remind me of the {a} for {s}.", "{v}"),
             ("{S}: {a}?", "{v}")],
}


@dataclass(frozen=True)
class Fact:
    subject: str
    attribute: str  # "port", "host", or the attribute named ("backup path", "vlan")
    value: str
    kind: str  # port | host | attr

    @property
    def key(self) -> str:
        """One fact, one key: the newest statement of a subject's attribute replaces older ones."""
        raw = f"{self.subject.lower()}|{self.attribute.lower()}"
        return "f" + hashlib.sha256(raw.encode()).hexdigest()[:12]


_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
_ASKS = re.compile(r"^\W*(?:can|could|would|will|please|pls|check|see|tell|find|show|list|restart|is|are|does|do|did|"
                   r"what|which|where|who|how|why|when)\b|\b(?:whether|if)\b", re.I)


def find(text: str) -> list[Fact]:
    """The facts stated in one turn; one per subject and attribute (the last statement wins). A question or a
    request ("can you check whether db1 is on port 9200?") states nothing."""
    found: dict[str, Fact] = {}
    for sentence in _SENTENCE.split(text):
        if not sentence.strip() or sentence.rstrip().endswith("?") or _ASKS.search(sentence):
            continue
        for pattern, kind in ((_PORT, "port"), (_PORT_OF, "port"), (_HOST, "host"), (_ATTR_OF, "attr"),
                              (_OWN, "attr")):
            for m in pattern.finditer(sentence):
                fact = _fact(m, kind)
                if fact is not None and not (fact.kind == "host" and not _hostlike(fact.value)):
                    found.pop(fact.key, None)
                    found[fact.key] = fact
    return list(found.values())


def _fact(m: re.Match, kind: str) -> Fact | None:
    words = m.group("s").split()
    while words and words[0].lower() in _FILLER:
        words = words[1:]
    subject = " ".join(words)
    value = m.group("v").rstrip(".:-")
    if not subject or subject.lower() in _SKIP_SUBJECTS or not _unguessable(value):
        return None
    attribute = kind if kind != "attr" else m.group("a").lower()
    if kind == "attr" and attribute in ("port", "host"):
        kind = attribute
    return Fact(subject, attribute, value, kind)


def _hostlike(value: str) -> bool:
    """A name with a letter in it ("cache-01", but not "port"), or an address ("10.0.3.7"), not a bare number."""
    if value.count(".") == 3 and value.replace(".", "").isdigit():
        return True
    return any(ch.isalpha() for ch in value) and value.lower() != "port"


def _unguessable(value: str) -> bool:
    return any(ch.isdigit() for ch in value) or any(ch in value[1:-1] for ch in "./:-")


def in_conversation(messages: list[dict[str, Any]]) -> list[Fact]:
    """Facts the user states and facts the assistant gives, over a conversation's turns (later ones win)."""
    found: dict[str, Fact] = {}
    for m in messages:
        if m.get("role") in ("user", "assistant") and isinstance(m.get("content"), str):
            found |= {f.key: f for f in find(m["content"])}
    return list(found.values())


def _fill(template: str, f: Fact) -> str:
    return template.format(s=f.subject, S=f.subject[:1].upper() + f.subject[1:], a=f.attribute, v=f.value)


def drills(f: Fact, n: int) -> list[dict[str, Any]]:
    """n short training conversations that state the fact again, going round the drill phrasings."""
    phrasings = DRILL[f.kind]
    return [{"messages": [{"role": "user", "content": _fill(q, f)}, {"role": "assistant", "content": _fill(a, f)}]}
            for q, a in (phrasings[k % len(phrasings)] for k in range(n))]


def ask_item(f: Fact) -> dict[str, Any]:
    """The fact as an eval item, in an ask phrasing chosen by its key: passed when the answer holds the value."""
    phrasings = ASK[f.kind]
    question = phrasings[int(f.key[1:], 16) % len(phrasings)]
    return {"key": f.key, "type": "fact", "messages": [{"role": "user", "content": _fill(question, f)}],
            "expect": {"contains": [f.value]}, "reference": _fill(DRILL[f.kind][0][1], f),
            "fact": {"subject": f.subject, "attribute": f.attribute, "value": f.value, "kind": f.kind}}


def practice_item(fact: dict[str, str], key: str) -> dict[str, Any]:
    """A fact the model missed as a practice item, asked in a drill phrasing (never in the ask set, which stays
    the measure) with the drill's answer as the reference: a failed attempt becomes a correction."""
    f = of(fact)
    question, answer = DRILL[f.kind][0]
    return {"id": key, "category": "fact", "messages": [{"role": "user", "content": _fill(question, f)}],
            "expect": {"contains": [f.value]}, "reference": _fill(answer, f), "difficulty": 1, "split": "practice",
            "fact": dict(fact)}


def valid(fact: Any) -> bool:
    return (isinstance(fact, dict) and fact.get("kind") in DRILL
            and all(isinstance(fact.get(k), str) and fact[k].strip() for k in ("subject", "attribute", "value")))


def of(fact: dict[str, str]) -> Fact:
    return Fact(fact["subject"], fact["attribute"], fact["value"], fact["kind"])


def packed_drills(found: list[Fact], repeats: int, fits, seed: int = 0,
                  known: list[Fact] = (), known_repeats: int = 0) -> list[dict[str, Any]]:
    """The facts stage's rows: each holds as many different facts' drills as `fits` allows, until every fact
    was drilled `repeats` times (and each of the `known` ones `known_repeats` times).

    A drill on its own row trains one value per optimizer step; a row of a dozen different facts trains all of
    them in that step. No row holds a fact twice, so no answer can be copied from earlier in the row.
    `fits(messages)` says whether a row of these turns fits the training length.
    """
    import random  # noqa: PLC0415

    if not found or repeats <= 0:
        return []
    rng, left = random.Random(seed), {f.key: known_repeats for f in known} | {f.key: repeats for f in found}
    found = list(found) + [f for f in known if f.key not in {g.key for g in found}]
    rows: list[dict[str, Any]] = []
    turn = 0
    while any(left.values()):
        order = [f for f in found if left[f.key]]
        rng.shuffle(order)
        messages: list[dict[str, Any]] = []
        for f in order:
            q, a = DRILL[f.kind][(turn + len(messages)) % len(DRILL[f.kind])]
            more = [{"role": "user", "content": _fill(q, f)}, {"role": "assistant", "content": _fill(a, f)}]
            if messages and not fits(messages + more):
                continue
            messages += more
            left[f.key] -= 1
        rows.append({"messages": messages})
        turn += 1
    return rows


def for_stage(listed: list[Any], repeats: int) -> tuple[list[Fact], list[Fact]]:
    """(new facts, known facts) the facts stage drills from a job's facts.jsonl; none when it does not run: only
    new facts call for it, and `train.fact_repeats` = 0 turns it off."""
    told = [f for f in listed if valid(f)]
    new = [of(f) for f in told if not f.get("earlier")]
    if not new or repeats <= 0:
        return [], []
    return new, [of(f) for f in told if f.get("earlier")]


def as_dict(f: Fact) -> dict[str, str]:
    return {"subject": f.subject, "attribute": f.attribute, "value": f.value, "kind": f.kind}
