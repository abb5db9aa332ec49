"""``${VAR}`` references and secrets: values from the environment expanded where the file
has them, each secret field checked to come from ``${VAR}`` or ``{file: PATH}`` and
registered for redaction, every problem collected with its YAML path.
"""

from __future__ import annotations

import os
import re
import typing
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, SecretStr

from drift.config.yaml_loader import yaml_scalar
from drift.redaction import has_credentials, is_sensitive_name, register_secret


_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand_env(text: str, environ: dict[str, str] | os._Environ[str] | None = None) -> str:
    """Replace ``${VAR}`` and ``${VAR:-default}`` with values from the environment.

    >>> expand_env("${HOST:-127.0.0.1}:9092", {})
    '127.0.0.1:9092'
    >>> expand_env("${HOST:-x}", {"HOST": "kafka"})
    'kafka'
    """
    env = os.environ if environ is None else environ

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        value = env.get(name)
        if value is None or (value == "" and default is not None):
            if default is None:
                raise KeyError(name)
            return default
        return value

    return _ENV_REF.sub(substitute, text)
MAX_SECRET_FILE_BYTES = 64 * 1024


def _flat_types(kinds: list[Any]) -> list[Any]:
    """The alternatives of annotations: ``Annotated`` unwrapped, unions split."""
    out: list[Any] = []
    stack = list(reversed(kinds))
    while stack:
        kind = stack.pop()
        origin = typing.get_origin(kind)
        if origin is Annotated:
            stack.append(typing.get_args(kind)[0])
        elif origin is Union or origin is _UnionType:
            stack.extend(reversed(typing.get_args(kind)))
        else:
            out.append(kind)
    return out


_UnionType = type(int | None)


def _child_types(kinds: list[Any] | None, part: int | str) -> list[Any] | None:
    """What the config accepts one step below a location that accepts ``kinds`` (None: unknown)."""
    if kinds is None:
        return None
    out: list[Any] = []
    for kind in kinds:
        origin, args = typing.get_origin(kind), typing.get_args(kind)
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            field = kind.model_fields.get(part) if isinstance(part, str) and part != "source_dir" else None
            if field is not None:
                out.append(field.annotation)
        elif origin is list and isinstance(part, int) and args:
            out.append(args[0])
        elif origin is tuple and isinstance(part, int) and args:
            if len(args) == 2 and args[1] is Ellipsis:
                out.append(args[0])
            elif part < len(args):
                out.append(args[part])
        elif origin is dict and isinstance(part, str) and len(args) == 2:
            out.append(args[1])
    return _flat_types(out) if out else None


def _takes_text(kinds: list[Any]) -> bool:
    for kind in kinds:
        if kind in (str, SecretStr, timedelta, Any):
            return True
        if typing.get_origin(kind) is Literal and any(isinstance(a, str) for a in typing.get_args(kind)):
            return True
    return False


_WHOLE_REF = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")
_SECRET_HINT = ("give it as ${VAR} (from the environment) or {file: PATH} (a file holding only the secret), "
                "never as a literal in the config file")


class _Expansion:
    """``${VAR}`` references expanded, secret fields checked, errors collected with their location."""

    def __init__(self, source_dir: str, environ: typing.Mapping[str, str]) -> None:
        self.source_dir = source_dir
        self.env = environ
        self.errors: list[tuple[tuple[int | str, ...], str]] = []
        self.covered: list[tuple[int | str, ...]] = []
        """Locations whose validation errors ``errors`` already explain."""

    def tree(self, value: Any, loc: tuple[int | str, ...], kinds: list[Any] | None) -> Any:
        if kinds is not None and SecretStr in kinds:
            return self.secret(value, loc)
        if isinstance(value, str):
            return self.text(value, loc, kinds)
        if isinstance(value, dict):
            out = {}
            for key, item in value.items():
                if not isinstance(key, str):
                    # Reported here; validated under its text so nothing else trips over it.
                    self.errors.append(((*loc, key), f"a key must be text; YAML read this one as "
                                                     f"{type(key).__name__} {key!r} (quote it)"))
                    key = str(key)
                    self.covered.append((*loc, key))
                out[key] = self.tree(item, (*loc, key), _child_types(kinds, key))
            return out
        if isinstance(value, list):
            return [self.tree(v, (*loc, i), _child_types(kinds, i)) for i, v in enumerate(value)]
        return value

    def _lookup(self, match: re.Match[str], loc: tuple[int | str, ...]) -> str | None:
        name, default = match.group("name"), match.group("default")
        value = self.env.get(name)
        if value is None or (value == "" and default is not None):
            if default is None:
                self.errors.append((loc, f"environment variable {name} is not set and has no default"))
                return None
            value = default
        if is_sensitive_name(name):
            register_secret(value)
        return value

    def text(self, value: str, loc: tuple[int | str, ...], kinds: list[Any] | None) -> Any:
        if loc != ("tickets", "store") and has_credentials(_WHOLE_REF.sub("", value)):
            # tickets.store has its own rule: no password at all (PGPASSWORD).
            self.errors.append((loc, "holds a credential (a URL password, a password/token/key parameter or an "
                                     "authorization value) written in the config file; give the whole value as "
                                     "${VAR} so it comes from the environment"))
            return value
        whole = _WHOLE_REF.fullmatch(value)
        if whole is not None:
            found = self._lookup(whole, loc)
            if found is None:
                return value
            # A whole-value reference is typed as the same text written in the file would be,
            # unless the key takes text (a name "42" stays "42").
            return found if kinds is not None and _takes_text(kinds) else yaml_scalar(found)
        def substitute(match: re.Match[str]) -> str:
            found = self._lookup(match, loc)
            return match.group(0) if found is None else found

        return _WHOLE_REF.sub(substitute, value)

    def secret(self, value: Any, loc: tuple[int | str, ...]) -> Any:
        if value is None:
            return None
        if isinstance(value, str) and (whole := _WHOLE_REF.fullmatch(value)) is not None:
            if whole.group("default"):
                self.errors.append((loc, "is a secret: a default would be a literal secret in the config file; "
                                         f"write ${{{whole.group('name')}}} without one"))
                return None
            found = self._lookup(whole, loc)
            if found is not None:
                register_secret(found)
            return found
        if isinstance(value, dict) and list(value) == ["file"] and isinstance(value["file"], str):
            return self.secret_file(value["file"], (*loc, "file"))
        self.errors.append((loc, f"is a secret: {_SECRET_HINT}"))
        return None

    def secret_file(self, reference: str, loc: tuple[int | str, ...]) -> str | None:
        n_errors = len(self.errors)
        name = self.text(reference, loc, [str])
        if len(self.errors) > n_errors:
            return None
        file = Path(name).expanduser()
        file = file if file.is_absolute() else Path(self.source_dir) / file
        try:
            with open(file, "rb") as handle:
                data = handle.read(MAX_SECRET_FILE_BYTES + 1)
        except OSError as exc:
            self.errors.append((loc, f"cannot read the secret file {file}: {exc.strerror or exc}"))
            return None
        if len(data) > MAX_SECRET_FILE_BYTES:
            self.errors.append((loc, f"the secret file {file} is larger than {MAX_SECRET_FILE_BYTES:,} bytes"))
            return None
        try:
            secret = data.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError:
            self.errors.append((loc, f"the secret file {file} is not UTF-8 text"))
            return None
        register_secret(secret)
        return secret
