"""The launcher's records behave as collections.namedtuple's do, for what the package uses of them."""

from __future__ import annotations

import copy
import pickle
from collections import namedtuple

import pytest

from otel_launch._core.records import record

Made = record("Point", ["x", "y", "label", "tags"], ("", ()))
Reference = namedtuple("Point", ["x", "y", "label", "tags"], defaults=("", ()))


class Pickled(record("Pickled", ["a", "b"], (2,))):
    __slots__ = ()

    @property
    def total(self) -> int:
        return self.a + self.b


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        ((1, 2), {}),
        ((1, 2, "p"), {}),
        ((1, 2, "p", ("t",)), {}),
        ((1,), {"y": 2}),
        ((), {"tags": ("t",), "y": 2, "x": 1}),
        ((1, 2), {"label": "p"}),
    ],
)
def test_built_as_a_named_tuple_is(args, kwargs):
    made, reference = Made(*args, **kwargs), Reference(*args, **kwargs)
    assert made == reference and tuple(made) == tuple(reference) and hash(made) == hash(reference)
    assert repr(made) == repr(reference)
    assert (made.x, made.y, made.label, made.tags) == (reference.x, reference.y, reference.label, reference.tags)
    assert made._asdict() == reference._asdict()
    assert made._replace(label="q") == reference._replace(label="q")
    assert Made._fields == Reference._fields and Made._field_defaults == Reference._field_defaults


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [((), {}), ((1,), {}), ((1, 2, 3, 4, 5), {}), ((1, 2), {"z": 3}), ((1, 2), {"x": 3}), ((1,), {"label": "p"})],
)
def test_refused_where_a_named_tuple_is(args, kwargs):
    with pytest.raises(TypeError):
        Reference(*args, **kwargs)
    with pytest.raises(TypeError):
        Made(*args, **kwargs)


def test_fields_are_read_only_and_instances_have_no_dict():
    made = Made(1, 2)
    with pytest.raises(AttributeError):
        made.x = 3  # type: ignore[misc]
    assert not hasattr(made, "__dict__") and not hasattr(Pickled(1), "__dict__")


def test_a_subclass_pickles_copies_and_matches():
    value = Pickled(1)
    for again in (pickle.loads(pickle.dumps(value)), copy.copy(value), copy.deepcopy(value)):
        assert type(again) is Pickled and again == value and again.total == 3
    match value:
        case Pickled(a, b):
            assert (a, b) == (1, 2)
        case _:
            pytest.fail("no match")
