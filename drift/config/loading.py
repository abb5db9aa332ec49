"""Loading a config: the file read within its size limit, YAML parsed safely, ``${VAR}``
expanded, the models validated, every problem reported at once with file, line, column
and path.
"""

from __future__ import annotations

import os
import typing
from pathlib import Path

import yaml
from pydantic import ValidationError

from drift.config.env import _Expansion
from drift.config.messages import (
    _clean_loc,
    _duplicate_keys,
    _format_path,
    _key_node,
    _message,
    _node_at,
    _path_of,
    _yaml_problem,
)
from drift.config.references import _reference_problems, _schema_file_problems
from drift.config.root import Config
from drift.config.yaml_loader import MAX_FILE_BYTES, _BoundedLoader, _line_column
from drift.errors import ConfigError
from drift.redaction import redact


def parse_config(
    text: str, path: str = "<config>", source_dir: str = ".", *,
    check_references: bool = False, environ: typing.Mapping[str, str] | None = None,
) -> Config:
    """Validate a config given as YAML text; raise :class:`ConfigError` listing every problem.

    With ``check_references``, each model's reference Parquet is also checked
    against the features (``drift validate`` does; the stream job may run from
    stored baselines without the training data).
    """
    root: yaml.Node | None = None
    composed = False
    loader: _BoundedLoader | None = None
    try:
        loader = _BoundedLoader(text)  # reading starts here: a bad character fails now
        root = loader.get_single_node()
        composed = True
        data = loader.construct_document(root) if root is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        if composed:  # constructing: find the node the error is about
            loc = _path_of(root, mark.index) if mark is not None else ()
        else:
            loc = tuple(loader.path) if loader is not None else ()
        raise _yaml_problem(path, text, exc, loc) from None
    except RecursionError:
        raise ConfigError([f"{path}: nests too deeply to be read"]) from None
    finally:
        if loader is not None:
            loader.dispose()
    duplicates = _duplicate_keys(root, path)
    if duplicates:
        raise ConfigError(duplicates)
    if not isinstance(data, dict):
        raise ConfigError([f"{path}:1:1 the file must be a mapping with keys version, models, ...; got {type(data).__name__}"])

    def where(loc: tuple[int | str, ...], key: bool = False) -> str:
        node = _key_node(root, loc) if key else None
        if node is None:
            node, _ = _node_at(root, loc)
        if node is None:
            return path
        return f"{path}:{node.start_mark.line + 1}:{node.start_mark.column + 1}"

    expansion = _Expansion(source_dir, os.environ if environ is None else environ)
    data = expansion.tree(data, (), [Config])
    messages = [redact(f"{where(loc)} {_format_path(loc)}: {msg}") for loc, msg in expansion.errors]
    data["source_dir"] = source_dir
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        reported = [loc for loc, _ in expansion.errors] + expansion.covered
        for error in exc.errors(include_url=False):
            raw = tuple(error["loc"])
            # An unknown key is the last segment as the file wrote it, whatever it looks like.
            loc = _clean_loc(raw[:-1]) + raw[-1:] if error["type"] == "extra_forbidden" else _clean_loc(raw)
            if any(loc[:len(done)] == done for done in reported):
                continue  # the value an environment or secret error already named
            message = _message(error, loc)
            label = _format_path(loc) or "(top level)"
            messages.append(redact(f"{where(loc, key=error['type'] == 'extra_forbidden')} {label}: {message}"))
        raise ConfigError(messages) from None
    if messages:
        raise ConfigError(messages)
    if check_references:
        problems = _reference_problems(config) + _schema_file_problems(config)
        messages = [redact(f"{where(loc)} {_format_path(loc)}: {msg}") for loc, msg in problems]
        if messages:
            raise ConfigError(messages)
    return config


def load_config(path: str | Path, *, check_references: bool = False) -> Config:
    """Read and validate a config file; raise :class:`ConfigError` listing every problem."""
    file = Path(path)
    try:
        with open(file, "rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError([f"{file}: cannot read the config file: {exc.strerror or exc}"]) from None
    if len(raw) > MAX_FILE_BYTES:
        raise ConfigError([f"{file}: the config file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB"])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, column = _line_column(raw, exc.start)
        raise ConfigError([f"{file}:{line}:{column} is not UTF-8: byte 0x{raw[exc.start]:02x} at offset {exc.start} "
                           "cannot be decoded; save the file as UTF-8"]) from None
    return parse_config(text, str(file), str(file.resolve().parent), check_references=check_references)
