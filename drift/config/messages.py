"""Error messages of a config: YAML paths as the file writes them (``models[0].detectors[1].psi.bins``),
the line and column of a path's node, pydantic errors reworded, duplicate keys.
"""

from __future__ import annotations

import difflib
import re
from typing import Any

import yaml
from pydantic import BaseModel

from drift.config.models import DETECTOR_NAMES
from drift.config.root import Config
from drift.config.yaml_loader import _LimitError, _line_column, yaml_scalar
from drift.errors import ConfigError


def _format_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int) and not isinstance(part, bool):
            out += f"[{part}]"
        elif isinstance(part, str):
            out += ("." if out else "") + part
        else:  # a key YAML read as a number, a boolean or null
            out += f"[{part!r}]"
    return out


MAX_SHOWN = 120
"""Characters of a received value a message shows."""


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= MAX_SHOWN else f"{text[:MAX_SHOWN]}... ({len(text):,} characters)"


_TYPE_TAG = re.compile(r"[a-z][a-z0-9_-]*\[.*\]", re.S)
"""A segment pydantic adds for a union member or parametrised type (``tuple[float, float]``,
``function-after[...]``); a key of the file (``v[ersion``) is kept."""


def _clean_loc(loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
    """Drop the union tags pydantic puts into error locations.

    A detector entry ``{psi: {...}}`` is reported by pydantic as
    ``detectors.0.psi.psi.bins`` (tag, then field); the file says ``psi`` once.
    Parametrised types also add segments like ``tuple[float, float]``.
    """
    out: list[int | str] = []
    for part in loc:
        if isinstance(part, str) and (_TYPE_TAG.fullmatch(part) or part in ("function-after", "lax-or-strict")):
            continue
        if out and isinstance(part, str) and part == out[-1] and part in DETECTOR_NAMES:
            continue
        out.append(part)
    return tuple(out)


def _node_at(root: yaml.Node | None, loc: tuple[int | str, ...]) -> tuple[yaml.Node | None, bool]:
    """The deepest YAML node on ``loc``; the flag says whether all of it was found."""
    node = root
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            child = None
            for key, value in node.value:
                if key.value == part or (not isinstance(part, str) and isinstance(key, yaml.ScalarNode)
                                         and yaml_scalar(key.value) == part):
                    child = value
                    break
            if child is None:
                return node, False
            node = child
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                return node, False
            node = node.value[part]
        else:
            return node, False
    return node, True


def _key_node(root: yaml.Node | None, loc: tuple[int | str, ...]) -> yaml.Node | None:
    """The key node of the last element of ``loc`` (for unknown-key errors)."""
    parent, found = _node_at(root, loc[:-1])
    if found and isinstance(parent, yaml.MappingNode):
        for key, _ in parent.value:
            if key.value == loc[-1]:
                node: yaml.Node = key
                return node
    return None


def _model_at(loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The config model class that a (clean) location points into.

    A union (the ``detectors:`` entries) offers several models; the location's
    next key picks the one that has it.
    """
    models: list[type[BaseModel]] = [Config]
    for part in loc:
        if isinstance(part, int):
            continue
        found: list[type[BaseModel]] = []
        for model in models:
            field = model.model_fields.get(part)
            if field is not None:
                found.extend(_models_in(field.annotation))
        if not found:
            return None
        models = found
    return models[0]


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """Every BaseModel inside an annotation such as ``list[X] | None`` or a union of entries."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    args = getattr(annotation, "__args__", None) or getattr(annotation, "__metadata__", None)
    origin = getattr(annotation, "__origin__", None)
    candidates = list(args or ())
    if origin is not None:
        candidates.insert(0, origin)
    out: list[type[BaseModel]] = []
    for arg in candidates:
        for model in _models_in(arg):
            if model not in out:
                out.append(model)
    return out


def _message(error: Any, loc: tuple[int | str, ...]) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    got = error.get("input")
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        model = _model_at(loc[:-1])
        allowed = sorted(model.model_fields) if model is not None else []
        allowed = [a for a in allowed if a != "source_dir"]
        hint = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        text = f"unknown key {loc[-1]!r}"
        if hint:
            text += f" (did you mean {hint[0]!r}?)"
        if allowed:
            text += f"; valid keys: {', '.join(allowed)}"
        return text
    simple = {
        "int_type": "must be an integer",
        "float_type": "must be a number",
        "bool_type": "must be true or false",
        "string_type": "must be a string",
        "list_type": "must be a list",
        "tuple_type": "must be a list of two numbers",
        "dict_type": "must be a mapping",
        "model_type": "must be a mapping",
        "model_attributes_type": "must be a mapping",
    }
    if kind in simple:
        text = simple[kind]
    elif kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        op = {"greater_than_equal": ">=", "greater_than": ">",
              "less_than_equal": "<=", "less_than": "<"}[kind]
        bound = next(iter(ctx.values()))
        text = f"must be {op} {bound}"
    elif kind == "literal_error":
        text = f"must be one of {ctx.get('expected')}"
    elif kind in ("too_short", "too_long"):
        text = error["msg"].replace("List should", "must").replace("Dictionary should", "must")
        text = text.replace("Tuple should", "must")
    elif kind == "value_error":
        text = str(ctx.get("error", error["msg"]))
        # A whole mapping or list as "got" would bury the message; the path names it.
        if "; got" in text or isinstance(got, (dict, list)):
            return text
        return f"{text}; got {_shown(got)}"
    else:
        text = error["msg"]
    return f"{text}; got {_shown(got)}"


def _duplicate_keys(root: yaml.Node | None, path: str) -> list[str]:
    """A key given twice in one mapping: YAML keeps the last silently, so it is an error here."""
    problems: list[str] = []
    seen_nodes: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen_nodes:
            continue
        seen_nodes.add(id(node))
        if isinstance(node, yaml.MappingNode):
            keys: set[object] = set()
            for key, value in node.value:
                if not isinstance(key, yaml.ScalarNode):
                    stack.append(value)
                    continue
                if key.value in keys:
                    mark = key.start_mark
                    problems.append(f"{path}:{mark.line + 1}:{mark.column + 1} duplicate key {key.value!r}")
                keys.add(key.value)
                stack.append(value)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
    return sorted(problems)


def _path_of(root: yaml.Node | None, index: int) -> tuple[int | str, ...]:
    """The YAML path of the node that starts at character ``index`` (empty when none does)."""
    stack: list[tuple[yaml.Node, tuple[int | str, ...]]] = [(root, ())] if root is not None else []
    seen: set[int] = set()
    while stack:
        node, loc = stack.pop()
        if node.start_mark.index == index and loc:
            return loc
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            stack.extend((value, (*loc, str(key.value) if isinstance(key, yaml.ScalarNode) else "?"))
                         for key, value in node.value)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((value, (*loc, i)) for i, value in enumerate(node.value))
    return ()


def _yaml_problem(path: str, text: str, exc: yaml.YAMLError, loc: tuple[int | str, ...]) -> ConfigError:
    if isinstance(exc, yaml.reader.ReaderError):
        line, column = _line_column(text, exc.position)
        code = exc.character if isinstance(exc.character, int) else ord(exc.character)
        return ConfigError([f"{path}:{line}:{column} is not valid YAML: the control character #x{code:04x} is not "
                            "allowed in a YAML file"])
    mark = getattr(exc, "problem_mark", None)
    where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else path
    problem = getattr(exc, "problem", None) or str(exc)
    label = _format_path(loc)
    if isinstance(exc, _LimitError):
        return ConfigError([f"{where} {label or '(top level)'}: {problem}"])
    return ConfigError([f"{where} {label + ': ' if label else ''}is not valid YAML: {problem}"])
