"""The readers every list and batch file share: page sizes, position tokens and JSONL lines."""

from __future__ import annotations

import pytest

from pixelgate.api.paging import PageSize, offset_token
from pixelgate.api.parsing import NotAnObject, NotJSON, jsonl_objects, shown
from pixelgate.core.errors import InvalidRequest

LIMIT = PageSize("limit", default=20, most=100)


@pytest.mark.parametrize(("sent", "read"), [(None, 20), ("", 20), ("1", 1), ("100", 100), ("007", 7)])
def test_a_page_size_in_range_is_read(sent: str | None, read: int) -> None:
    assert LIMIT.read(sent) == read


@pytest.mark.parametrize("sent", ["0", "101", "-3", "abc", "²", "1.5", " 5", "9" * 80])
def test_a_page_size_out_of_range_names_the_param_the_value_and_the_range(sent: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        LIMIT.read(sent)
    error = caught.value
    assert (error.param, error.code) == ("limit", "invalid_page")
    assert error.message == f"limit {shown(sent)} is not valid: use a page size from 1 to 100"


def test_an_offset_token_is_a_position_up_to_the_end() -> None:
    assert offset_token(None, "pageToken", 7) == 0
    assert offset_token("7", "pageToken", 7) == 7
    for sent in ("8", "-1", "zz"):
        with pytest.raises(InvalidRequest, match="use the nextPageToken of the page before") as caught:
            offset_token(sent, "pageToken", 7)
        assert caught.value.param == "pageToken"


def test_jsonl_lines_are_numbered_and_each_bad_line_says_why() -> None:
    text = '{"a": 1}\n\n   \n[1, 2]\n{"a": \n{"s": "\\ud800"}\n{"b": 2}'
    read = list(jsonl_objects(text))
    assert [number for number, _ in read] == [1, 4, 5, 6, 7]
    assert read[0][1] == {"a": 1} and read[4][1] == {"b": 2}
    not_object, not_json, unstorable = read[1][1], read[2][1], read[3][1]
    assert isinstance(not_object, NotAnObject) and str(not_object) == "list"
    assert isinstance(not_json, NotJSON) and not isinstance(not_json, NotAnObject)
    assert isinstance(unstorable, InvalidRequest) and "s" in (unstorable.param or "")
