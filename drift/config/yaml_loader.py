"""Reading YAML that may be hostile: ``yaml.SafeLoader`` bounded in size, nesting, node count
(aliases expanded) and integer length, and the YAML typing of a scalar.
"""

from __future__ import annotations

from typing import Any

import yaml


MAX_FILE_BYTES = 4 * 1024 * 1024
"""A config file is at most 4 MiB (the demo's is 2 KiB)."""
MAX_DEPTH = 32
"""Nesting levels of the YAML; the deepest key of a real config is about 7 levels down."""
MAX_NODES = 100_000
"""YAML nodes with every alias counted as a copy of what it names."""
MAX_INT_DIGITS = 100
"""Digits of an integer literal; ``int()`` of a long one is quadratic (and Python refuses 4,300+)."""


class _LimitError(yaml.MarkedYAMLError):
    """Well-formed YAML that goes past a bound no config comes near."""


class _BoundedLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that bounds nesting, node count (aliases expanded) and integer length.

    PyYAML shares one node between an anchor and its aliases, but everything after
    the loader (environment expansion, validation, messages) walks the data as a
    tree: nine levels of nine aliases are 387 million nodes there (a "billion
    laughs"). Counting each alias as the size of the node it names stops such a file
    while it is composed, after a few hundred nodes of work. Depth is bounded before
    the recursive composer reaches Python's recursion limit. ``path`` is the YAML
    path being composed, for messages.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.path: list[int | str] = []
        self._sizes: dict[int, int] = {}
        self._counts: list[int] = [0]

    def _add(self, size: int, mark: Any) -> None:
        self._counts[-1] += size
        if self._counts[-1] > MAX_NODES:
            raise _LimitError(None, None, f"the aliases expand to more than {MAX_NODES:,} nodes; a config needs "
                              "far fewer (an alias counts as a copy of what it names)", mark)

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
            node = super().compose_node(parent, index)
            size = self._sizes.get(id(node))
            if size is None:
                raise _LimitError(None, None, "an alias refers to a node that contains it; YAML anchors must "
                                  "not be recursive", mark)
            self._add(size, mark)
            return node
        part: int | str | None = None
        if isinstance(parent, yaml.SequenceNode) and isinstance(index, int):
            part = index
        elif isinstance(parent, yaml.MappingNode) and isinstance(index, yaml.Node):
            part = str(index.value) if isinstance(index, yaml.ScalarNode) else "?"
        if part is not None:
            self.path.append(part)
        if len(self._counts) > MAX_DEPTH:
            raise _LimitError(None, None, f"nests deeper than {MAX_DEPTH} levels; a config needs far fewer",
                              self.peek_event().start_mark)  # type: ignore[no-untyped-call]
        self._counts.append(0)
        node = super().compose_node(parent, index)
        size = 1 + self._counts.pop()
        self._sizes[id(node)] = size
        self._add(size, node.start_mark if node is not None else None)
        if part is not None:
            self.path.pop()
        return node

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, OverflowError, TypeError) as exc:  # a timestamp 2026-02-31, ...
            raise yaml.constructor.ConstructorError(None, None, str(exc), node.start_mark) from None

    def construct_bounded_int(self, node: yaml.ScalarNode) -> int:
        text = str(self.construct_scalar(node))
        digits = len(text.lstrip("+-").replace("_", ""))
        if digits > MAX_INT_DIGITS:
            raise _LimitError(None, None, f"an integer of {digits:,} digits is too long (at most {MAX_INT_DIGITS})",
                              node.start_mark)
        value: int = self.construct_yaml_int(node)
        return value


_BoundedLoader.add_constructor("tag:yaml.org,2002:int", _BoundedLoader.construct_bounded_int)

_SCALAR_TAGS = frozenset(f"tag:yaml.org,2002:{kind}" for kind in ("int", "float", "bool", "null"))


def yaml_scalar(text: str) -> object:
    """``text`` typed as YAML types a plain scalar: an int, float, bool or None, else the text itself.

    Environment values go through this, so ``${PORT}`` gives an integer port. Only a
    scalar is ever made: ``[1, 2]`` or ``{a: b}`` stays text, never YAML structure.

    >>> yaml_scalar("9464"), yaml_scalar("0.5"), yaml_scalar("true"), yaml_scalar(""), yaml_scalar("[1, 2]")
    (9464, 0.5, True, None, '[1, 2]')
    """
    loader = _BoundedLoader("")
    try:
        tag = loader.resolve(yaml.ScalarNode, text, (True, False))  # type: ignore[no-untyped-call]
        if tag not in _SCALAR_TAGS:
            return text
        return loader.construct_object(yaml.ScalarNode(tag, text))
    except yaml.YAMLError:
        return text
    finally:
        loader.dispose()


def _line_column(data: str | bytes, offset: int) -> tuple[int, int]:
    newline = "\n" if isinstance(data, str) else b"\n"
    line = data.count(newline, 0, offset) + 1  # type: ignore[arg-type]
    column = offset - (data.rfind(newline, 0, offset) + 1) + 1  # type: ignore[arg-type]
    return line, column
