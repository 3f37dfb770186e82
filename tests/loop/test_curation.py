"""Ingest's fast paths (domain tagging's keyword pattern, the corporate-phrase check, the repetition check) find
what the plain forms find."""

import random
import re

from loop.inbox import curation, quality

WORDS = ["server", "servers", "serve", "stack trace", "unit test", "sql", "sqlite", "git", "github", "c++", "node.js",
         "prod", "production", "dns"]


def plain(words):
    """The plain alternation the trie stands for: every word, longest first."""
    return re.compile(curation._W.format("|".join(re.escape(w).replace(r"\ ", r"\s+")
                                                   for w in sorted(words, key=len, reverse=True))), re.I)


def test_the_trie_finds_what_the_plain_alternation_finds():
    trie = re.compile(curation._W.format(curation.trie_pattern(WORDS)), re.I)
    glue = [" ", "", "-", ".", "\n", "_", "  ", "\t"]
    pieces = WORDS + ["SERVERS", "Stack\n  Trace", "unit", "tests", "-git", "git-", "é", "x", "serverss", "C++", "node"]
    rng = random.Random(7)
    for _ in range(5000):
        text = "".join(rng.choice(pieces) + rng.choice(glue) for _ in range(rng.randint(0, 12)))
        assert trie.findall(text) == plain(WORDS).findall(text), text


def test_the_longest_word_at_a_word_boundary_wins():
    trie = re.compile(curation._W.format(curation.trie_pattern(WORDS)), re.I)
    assert trie.findall("servers, a server; production-ready prod. the stack   trace") == \
        ["servers", "server", "prod", "stack   trace"]  # "production-ready" runs on past a boundary


def test_corporate_phrases_are_found_as_any_of_them_anywhere():
    phrases = ["I'd be happy to help", "synergy", "Hope this helps"]
    for text, found in [("Sure! I'D BE HAPPY TO HELP with that.", True), ("pure synergyx", True),
                        ("hope this help", False), ("plain answer", False)]:
        msgs = [{"role": "user", "content": "q"}, {"role": "assistant", "content": text}]
        assert ("corporate filler" in quality.score(msgs, phrases)[1]) is found, text
        assert ("corporate filler" in quality.score(msgs, [])[1]) is False


def test_the_repetition_check_skips_only_texts_too_short_to_repeat():
    sentences = re.compile(r"(?<=[.!?])\s+|\n+")

    def full(text):
        pieces = [s.strip().lower() for s in sentences.split(text) if len(s.strip()) > 3]
        return len(pieces) >= 6 and len(set(pieces)) / len(pieces) < 0.3

    rng = random.Random(3)
    alphabet = ["abcd", "abcd.", "abcd!", " ", "\n", "?", "xyzw ", "abcd. ", "\n\n"]
    seen = 0
    for _ in range(20000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 20)))
        assert quality.repetitive(text) == full(text), repr(text)
        seen += full(text)
    assert seen and quality.repetitive("Ok then. " * 6) and not quality.repetitive("Ok then. " * 5)


def test_domain_tags_in_any_case_are_those_of_a_case_insensitive_match():
    words = {w: ("ops" if i % 2 else "dev",) for i, w in enumerate(WORDS)}
    rules = curation.Rules(("dev", "ops"), re.compile(curation._W.format(curation.trie_pattern(words))), words, ())
    glue = [" ", "", "-", ".", "\n", "  "]
    pieces = WORDS + ["SERVERS", "Stack\n  Trace", "GitHub", "SQLite", "C++", "Node.JS", "PROD", "x", "É"]
    rng = random.Random(11)
    for _ in range(3000):
        text = "".join(rng.choice(pieces) + rng.choice(glue) for _ in range(rng.randint(0, 12)))
        hits: dict[str, int] = {}
        for word in plain(WORDS).findall(text):
            for name in words[" ".join(word.lower().split())]:
                hits[name] = hits.get(name, 0) + 1
        expected = sorted(hits, key=lambda n: (-hits[n], ("dev", "ops").index(n)))
        assert curation.domain_tags([{"role": "user", "content": text}], rules) == expected, text


def test_the_persona_guard_finds_what_every_signal_tried_everywhere_finds():
    unguarded = re.compile("|".join(f"(?P<s{i}>{p})" for i, (_, _, p) in enumerate(curation.SIGNALS)))
    pieces = ["yo", "hey", "lol", "HELP", "DOWN", "help", "prod is down", "asap", "!!", "!!!", "😀", "🌀", "--force", "-v",
              "/etc/", "/var/log", "kubectl", "grep", "explain", "what does it mean", "how does", "status", "Status?",
              "tl;dr", "eta", "bottom line", "x", "now", "NOW", "word", "-", "_", "a-b"]
    glue = [" ", "", "-", ".", "\n", "!", "?", "x"]
    rng = random.Random(5)
    for _ in range(5000):
        text = "".join(rng.choice(pieces) + rng.choice(glue) for _ in range(rng.randint(0, 12)))
        assert [(m.span(), m.lastgroup) for m in curation._SIGNAL.finditer(text)] == \
            [(m.span(), m.lastgroup) for m in unguarded.finditer(text)], text
