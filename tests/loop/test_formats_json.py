"""One JSON document read one item at a time: memory bounded by an item, errors placed by line and column."""

import json
import tracemalloc
from pathlib import Path

import pytest

from loop.inbox.formats import BadFile, BadRecord, Options, Record, detect
from loop.inbox.formats.jsondoc import values

CHAT = {"messages": [{"role": "user", "content": "How full is /var on web-02?"},
                     {"role": "assistant", "content": "78%: 9 GB free of 40 GB."}]}


def parse(path: Path, **opts) -> list[Record | BadRecord]:
    return list(detect(path).parse(path, Options(**opts)))


def _peak(read) -> int:
    tracemalloc.start()
    try:
        read()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _export(path: Path, items: int) -> Path:
    with path.open("w", encoding="utf-8") as f:  # on one line, as exports are written
        f.write("[" + ",".join(json.dumps({**CHAT, "id": i, "note": "x" * 60}) for i in range(items)) + "]")
    return path


def test_a_large_list_streams_in_memory_that_does_not_grow_with_the_file(tmp_path):
    small, large = _export(tmp_path / "small.json", 5_000), _export(tmp_path / "large.json", 25_000)
    streamed_small = _peak(lambda: sum(1 for _ in values(small, 1 << 20)))
    streamed_large = _peak(lambda: sum(1 for _ in values(large, 1 << 20)))
    whole = _peak(lambda: json.loads(large.read_text(encoding="utf-8")))
    print(f"\npeak: streamed {streamed_small / 1e6:.1f} MB for 5k items, {streamed_large / 1e6:.1f} MB for 25k; "
          f"json.load of the 25k file {whole / 1e6:.1f} MB")
    assert streamed_large < streamed_small * 1.5  # five times the file, about the same memory
    assert streamed_large < whole / 4


def test_invalid_json_before_any_item_quarantines_the_file_with_line_and_column(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('[\n  {"messages": [\n    {"role": "user", "content": "hi"},\n    {"role": "assistant" "content": "x"}\n', encoding="utf-8")
    with pytest.raises(BadFile) as e:
        parse(path)
    assert str(e.value) == "invalid JSON at line 4, column 26 (Expecting ',' delimiter)"


def test_invalid_json_after_good_items_keeps_them_and_says_where_reading_stopped(tmp_path):
    path = tmp_path / "truncated.json"
    path.write_text("[\n" + json.dumps(CHAT) + ",\n" + json.dumps(CHAT).replace("78%", "80%") + ",\n{\"messages\": [",
                    encoding="utf-8")
    items = parse(path)
    assert [type(i).__name__ for i in items] == ["Record", "Record", "BadRecord"]
    assert items[2].reason == ("item 3 onwards: invalid JSON at line 4, column 15 (Expecting value); "
                               "the items before it were read")


def test_empty_list_extra_data_and_objects_one_after_another(tmp_path):
    empty = tmp_path / "empty.json"
    empty.write_text("[ ]\n", encoding="utf-8")
    with pytest.raises(BadFile, match="an empty JSON list: nothing to ingest"):
        parse(empty)
    extra = tmp_path / "extra.json"
    extra.write_text(f"[{json.dumps(CHAT)}] trailing", encoding="utf-8")
    assert parse(extra)[-1].reason.startswith("item 2 onwards: invalid JSON at line 1")
    pretty = tmp_path / "pretty.json"  # pretty-printed objects, one after another
    pretty.write_text(json.dumps(CHAT, indent=2) + "\n" + json.dumps(CHAT, indent=2).replace("78%", "79%"), encoding="utf-8")
    assert [i.pos for i in parse(pretty)] == [1, 2]


def test_one_item_larger_than_the_record_limit_is_refused_with_the_key_to_raise(tmp_path):
    path = tmp_path / "huge-item.json"
    path.write_text('[{"text": "' + "a" * (3 << 20) + '"}]', encoding="utf-8")
    with pytest.raises(BadFile, match=r"one JSON value at line 1 is larger than 1 MB \(inbox.max_record_mb\)"):
        parse(path, max_record_bytes=1 << 20)


def test_a_json_file_that_is_not_json_gets_the_parser_reason(tmp_path):
    path = tmp_path / "notes.json"
    path.write_text("these are notes, not JSON\n", encoding="utf-8")
    with pytest.raises(BadFile, match=r"invalid JSON at line 1, column 1 \(Expecting value\)"):
        parse(path)


def test_utf16_is_named(tmp_path):
    path = tmp_path / "export.json"
    path.write_bytes(json.dumps([CHAT]).encode("utf-16"))
    with pytest.raises(BadFile, match="wrong encoding: UTF-16 text; re-save the file as UTF-8"):
        detect(path)
