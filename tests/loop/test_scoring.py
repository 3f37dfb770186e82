"""The scoring rules the evals rest on: normalization, keywords, ROUGE-L, corporate phrases, confidences."""

import pytest

from loop.evals.scoring import (
    Answered, corporate_hits, keyword_pass, matched_keyword, normalize, rouge_l_f1, settled, stated_confidences,
)

PHRASES = ["i'm sorry", "as an ai", "feel free to", "certainly!", "great question"]


@pytest.mark.parametrize("text, expected", [
    ("Paris!", "paris"),
    ("  The   CAPITAL\nis\tTokyo. ", "the capital is tokyo"),
    ("**It's 4.**", "it s 4"),
    ("<b>Tokyo</b>", "b tokyo b"),
    ("[bold]Rome[/bold]", "bold rome bold"),
    ("Café", "cafe"),
    ("It\u2019s", "it s"),
    ("-18.0°C", "-18.0 c"),
    ("10-3=7", "10 3 7"),
    ("", ""),
    ("?!...", ""),
])
def test_normalize(text, expected):
    assert normalize(text) == expected


@pytest.mark.parametrize("answer, answers, expected", [
    ("The capital of France is Paris.", ["paris"], True),
    ("PARIS", ["Paris"], True),
    ("**Paris**", ["paris"], True),
    ("<answer>paris</answer>", ["paris"], True),
    ("A Parisian cafe.", ["paris"], False),  # whole words only
    ("Seven days.", ["7", "seven"], True),
    ("It has 17 legs.", ["7"], False),
    ("Water freezes at -18.0°C.", ["0", "zero"], False),  # a decimal is one number
    ("Water freezes at 0°C.", ["0", "zero"], True),
    ("Water boils at 100.", ["100"], True),
    ("Approximately 100.0 degrees Celsius.", ["100"], True),  # the same number, written with a decimal
    ("About 100.5 degrees.", ["100"], False),
    ("It boils at -100.", ["100"], False),
    ("Version 100.0.1 is out.", ["100"], False),  # a version, not a number
    ("There are 1000 of them.", ["100"], False),
    ("William Shakespeare wrote it.", ["william shakespeare"], True),
    ("Shakespeare, William", ["william shakespeare"], False),  # a phrase keeps its order
    ("", ["paris"], False),
    ("Paris", [], False),
    ("Paris", ["", "!!"], False),  # an accepted answer that normalizes to nothing never matches
])
def test_keyword_pass(answer, answers, expected):
    assert keyword_pass(answer, answers) is expected
    assert (matched_keyword(answer, answers) is not None) is expected


def test_matched_keyword_reports_the_first_accepted_answer_found():
    assert matched_keyword("four, or 4", ["4", "four"]) == "4"


@pytest.mark.parametrize("answer, reference, expected", [
    ("the cat sat on the mat", "the cat sat on the mat", 1.0),
    ("The cat sat on the mat!", "the cat, sat on the mat", 1.0),
    ("", "", 1.0),
    ("", "a reference", 0.0),
    ("an answer", "", 0.0),
    ("completely different words", "nothing shared here", 0.0),
])
def test_rouge_l_f1_bounds(answer, reference, expected):
    assert rouge_l_f1(answer, reference) == pytest.approx(expected)


def test_rouge_l_f1_counts_the_longest_common_subsequence_in_order():
    # LCS of "a b c d" and "a c b d" is 3 words: P = R = 3/4.
    assert rouge_l_f1("a b c d", "a c b d") == pytest.approx(0.75)
    # answer 2 words, reference 4, LCS 2: P = 1, R = 0.5, F1 = 2/3.
    assert rouge_l_f1("cat mat", "the cat the mat") == pytest.approx(2 / 3)
    # order matters: reversed words share only one in sequence.
    assert rouge_l_f1("c b a", "a b c") == pytest.approx(1 / 3)


def test_rouge_l_f1_is_symmetric_for_f1():
    assert rouge_l_f1("one two three", "one three") == pytest.approx(rouge_l_f1("one three", "one two three"))


@pytest.mark.parametrize("answer, expected", [
    ("I'm sorry, I can't do that.", ["i'm sorry"]),
    ("I\u2019M SORRY about that", ["i'm sorry"]),  # typographic apostrophe, any case
    ("As an AI, I...\nFeel free   to ask.", ["as an ai", "feel free to"]),
    ("Feel free tomorrow.", []),  # not inside a longer word
    ("Certainly! Here it is.", ["certainly!"]),
    ("Certainly, here it is.", []),
    ("Great question! I'm sorry. I'm sorry.", ["i'm sorry", "great question"]),  # phrase order, once each
    ("[b]I'm sorry[/b]", ["i'm sorry"]),
    ("", []),
])
def test_corporate_hits(answer, expected):
    assert corporate_hits(answer, PHRASES) == expected


def test_corporate_hits_ignores_empty_and_repeated_phrases():
    assert corporate_hits("sorry", ["", "  ", "sorry", "sorry"]) == ["sorry"]


@pytest.mark.parametrize("text, expected", [
    ("Confidence: 70%", [70]),
    ("confidence 70 %", [70]),
    ("Confidence level: 0.7", [70]),
    ("**Confidence:** 85%", [85]),
    ("My confidence is about 60 percent.", [60]),
    ("Confidence: 7/10", [70]),
    ("Confidence score = 45", [45]),
    ("I am 90% confident.", [90]),
    ("Step 1. Confidence: 70%. Step 2. Confidence: 50%. Finally, confidence: 85%.", [70, 50, 85]),
    ("Confidence: 1", [100]),
    ("Confidence: 0.55", [55]),
    ("Confidence: 150%", []),  # out of range
    ("I have no confidence in this.", []),
    ("70% of people agree.", []),
    ("", []),
])
def test_stated_confidences(text, expected):
    assert stated_confidences(text) == expected


@pytest.mark.parametrize("text, answers, expected", [
    ("It is Paris", ["paris"], False),  # it may yet be "Parisian"
    ("It is Paris.", ["paris"], True),
    ("It is Paris-", ["paris"], True),
    ("It boils at 100", ["100"], False),  # "1000" or "100.5" may follow
    ("It boils at 100.", ["100"], False),
    ("It boils at 100 degrees", ["100"], True),
    ("It boils at 100.0 degrees", ["100"], True),
    ("It boils at 1000 degrees", ["100"], False),
    ("New York", ["new york"], False),
    ("**New York**", ["new york"], True),
    ("Tokyo, ", ["kyoto", "tokyo"], True),
    ("", ["tokyo"], False),
])
def test_an_answer_is_settled_once_no_following_text_can_change_its_verdict(text, answers, expected):
    assert settled(text, answers) is expected
    if expected:  # whatever follows, it still passes
        assert all(keyword_pass(text + more, answers) for more in ("ian", "0", ".5", " no", "-9"))


def test_answered_stops_an_answer_and_names_its_answers_in_its_key():
    stop = Answered(["Paris", "paris"])
    assert stop("The capital is Paris.") and not stop("The capital is Par")
    assert repr(stop) == repr(Answered(("Paris", "paris"))) != repr(Answered(["Rome"]))
