"""Named records: tuples whose items have names, for the settings table and the launcher's values.

What they need of :func:`collections.namedtuple` (positional and keyword arguments, defaults,
a readable ``repr``, ``_fields``, ``_replace``, ``_asdict``, pickling), without its cost at every
launch: importing ``collections`` (with ``keyword``, ``operator``, ``reprlib``) costs ~7M
instructions, and ``namedtuple`` compiles a constructor for each record (~0.6M each). Neither a
dataclass nor ``typing.NamedTuple`` would do: importing them costs more still.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_MISSING = object()


def record(typename: str, field_names: list[str], defaults: tuple = ()) -> Any:
    """A tuple subclass named ``typename`` whose items are ``field_names``; the last
    ``len(defaults)`` fields take these defaults. Subclass it to add methods (with
    ``__slots__ = ()``, so that instances stay plain tuples), through a name annotated ``Any``
    (mypy takes no call for a base class; the subclass's annotations type the fields)."""
    fields = tuple(field_names)
    positions = {name: index for index, name in enumerate(fields)}
    first_default = len(fields) - len(defaults)

    def __new__(cls: type, *args: Any, **kwargs: Any) -> Any:
        if len(args) == len(fields) and not kwargs:
            return tuple.__new__(cls, args)
        if len(args) > len(fields):
            raise TypeError(f"{typename}() takes {len(fields)} arguments but {len(args)} were given")
        values = [*args, *[_MISSING] * (len(fields) - len(args))]
        for name, value in kwargs.items():
            index = positions.get(name)
            if index is None:
                raise TypeError(f"{typename}() got an unexpected keyword argument {name!r}")
            if index < len(args):
                raise TypeError(f"{typename}() got multiple values for argument {name!r}")
            values[index] = value
        for index in range(len(args), len(fields)):
            if values[index] is _MISSING:
                if index < first_default:
                    raise TypeError(f"{typename}() missing required argument {fields[index]!r}")
                values[index] = defaults[index - first_default]
        return tuple.__new__(cls, values)

    def __repr__(self: tuple) -> str:
        shown = ", ".join(f"{name}={value!r}" for name, value in zip(fields, self, strict=True))
        return f"{type(self).__name__}({shown})"

    def __getnewargs__(self: tuple) -> tuple:  # pickle and copy rebuild it from its items
        return tuple(self)

    def _replace(self: tuple, **changes: Any) -> Any:
        return type(self)(**{**dict(zip(fields, self, strict=True)), **changes})

    def _asdict(self: tuple) -> dict[str, Any]:
        return dict(zip(fields, self, strict=True))

    namespace: dict[str, Any] = {
        "__slots__": (),
        "__new__": __new__,
        "__repr__": __repr__,
        "__getnewargs__": __getnewargs__,
        "__match_args__": fields,
        "_fields": fields,
        "_field_defaults": dict(zip(fields[first_default:], defaults, strict=True)),
        "_replace": _replace,
        "_asdict": _asdict,
    }
    for index, name in enumerate(fields):
        namespace[name] = _item(index)
    return type(typename, (tuple,), namespace)


def _item(index: int) -> property:
    def get(self: tuple) -> Any:
        return self[index]

    return property(get, doc=f"Item {index} of the record.")
