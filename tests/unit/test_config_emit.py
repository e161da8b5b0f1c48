"""The importers' TOML writer: whatever it writes, tomllib reads back identically."""
from __future__ import annotations

import tomllib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vmacd.config.emit import dumps, value

scalars = st.one_of(st.booleans(), st.integers(-2**63, 2**63 - 1), st.text(max_size=20))
keys = st.text(min_size=1, max_size=10)
flat = st.dictionaries(keys, st.one_of(scalars, st.lists(scalars, max_size=4),
                                       st.lists(st.dictionaries(keys, scalars, max_size=3), max_size=2)),
                       max_size=5)


@given(st.dictionaries(keys, st.one_of(scalars, flat, st.dictionaries(keys, flat.filter(bool), min_size=1,
                                                                      max_size=3)), max_size=5))
def test_round_trip(doc):
    # an empty table or an empty list of tables has nothing to write; the rest must survive
    text = dumps(doc)
    back = tomllib.loads(text)
    expected = {k: v for k, v in doc.items() if v != {}}
    assert back == expected


def test_sections_layout():
    text = dumps({"global": {"node": "r1"}, "auth": {"a": {"type": "none"}},
                  "instance": [{"name": "x", "track": [{"name": "e", "weight": -1}]}]}, header=["hi"])
    assert text == ('# hi\n\n[global]\nnode = "r1"\n\n[auth.a]\ntype = "none"\n\n[[instance]]\n'
                    'name = "x"\ntrack = [{ name = "e", weight = -1 }]\n')


def test_unsupported_type_refused():
    with pytest.raises(TypeError):
        value(object())
