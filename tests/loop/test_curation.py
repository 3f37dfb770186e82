"""Domain tagging's keyword pattern and the corporate-phrase check: built for speed, they find what the plain
forms find."""

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
