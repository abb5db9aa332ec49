"""Credentials never leave the process in text: every message, log line and JSON document
goes through :func:`redact` before it is printed.

Three things are masked, each with ``***``:

- the password of a URL's ``user:password@`` (the user name stays, it helps);
- the value of a sensitive parameter, in a query string (``?token=...``,
  ``&sig=...``) or in a ``key=value`` connection string (``password=...``):
  a parameter is sensitive when its name contains password, passwd, secret, apikey
  or credential, or has a part (between ``_``, ``-``, ``.``) pass, pwd, token, key,
  signature, sig, auth, authorization or session;
- a ``Bearer``/``Basic`` authorization value, and every value registered with
  :func:`register_secret` (the configuration registers the values of its secret
  fields when it loads), wherever it appears.

>>> redact("postgresql://drift:hunter2@db:5432/tickets?sslmode=require&password=x")
'postgresql://drift:***@db:5432/tickets?sslmode=require&password=***'
>>> redact("POST https://hooks.example.com/t?token=abc&channel=ops failed")
'POST https://hooks.example.com/t?token=***&channel=ops failed'
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import traceback
from collections.abc import Callable
from types import TracebackType

MASK = "***"

_SENSITIVE = re.compile(
    r"password|passwd|secret|apikey|credential"
    r"|(?:^|[_.\-])(?:pass|pwd|token|key|signature|sig|auth|authorization|session)(?:$|[_.\-])",
    re.IGNORECASE,
)
"""A parameter name whose value is a credential: ``sslpassword``, ``access_token``, ``X-Amz-Signature``,
``api_key`` (not ``n_tokens``)."""

# scheme://user:password@host -- greedy up to the last '@' of the authority, so a
# password with an unescaped '@' is masked whole.
_USERINFO = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/?#@'\"]*):(?P<secret>[^\s/?#'\"]*)@")
# ?name=value, &name=value, ;name=value and name=value (connection strings).
_PARAMETER = re.compile(r"(?P<head>(?:(?<=[?&;\s,(\[{'\"])|^)(?P<name>[A-Za-z_][\w.\-]*)=)(?P<value>[^\s&#;,'\"<>)\]}]*)")
_AUTHORIZATION = re.compile(r"\b(?P<head>(?:Bearer|Basic)\s+)(?P<value>[A-Za-z0-9._~+/=\-]+)")

MIN_SECRET_LENGTH = 4
"""Registered values shorter than this are not masked by value (they would mask ordinary words)."""

_secrets: set[str] = set()
_secrets_lock = threading.Lock()


def register_secret(value: str) -> None:
    """Mask ``value`` wherever it appears in text redacted from now on (in this process)."""
    if len(value) >= MIN_SECRET_LENGTH:
        with _secrets_lock:
            _secrets.add(value)


def is_sensitive_name(name: str) -> bool:
    """Whether a parameter or environment variable of this name holds a credential.

    >>> is_sensitive_name("KAFKA_SASL_PASSWORD"), is_sensitive_name("WEBHOOK_TOKEN"), is_sensitive_name("PORT")
    (True, True, False)
    """
    return _SENSITIVE.search(name) is not None


def _parameter(match: re.Match[str]) -> str:
    if is_sensitive_name(match.group("name")) and match.group("value"):
        return match.group("head") + MASK
    return match.group(0)


def _mask_patterns(text: str) -> str:
    text = _USERINFO.sub(lambda m: f"{m.group('head')}:{MASK}@" if m.group("secret") else m.group(0), text)
    text = _PARAMETER.sub(_parameter, text)
    return _AUTHORIZATION.sub(lambda m: m.group("head") + MASK, text)


def has_credentials(text: str) -> bool:
    """Whether ``text`` holds a URL password, a sensitive parameter's value or an authorization value.

    >>> has_credentials("https://hooks.example.com/x?channel=ops"), has_credentials("https://h/x?token=abc")
    (False, True)
    """
    return _mask_patterns(text) != text


def redact(text: str) -> str:
    """``text`` with the credentials in it masked (see the module docstring)."""
    with _secrets_lock:
        known = sorted(_secrets, key=len, reverse=True)
    for value in known:
        if value in text:
            text = text.replace(value, MASK)
        escaped = json.dumps(value)[1:-1]  # as it appears inside a JSON document
        if escaped != value and escaped in text:
            text = text.replace(escaped, MASK)
    return _mask_patterns(text)


class RedactingFilter(logging.Filter):
    """Redacts a record's message, arguments and exception text in place; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_drift_redacted", False):
            return True
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: keep what is there, masked
            message = f"{record.msg} {record.args}"
        record.msg, record.args = redact(message), None
        if record.exc_info:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        record._drift_redacted = True
        return True


_installed = False


def install() -> None:
    """Redact every log record (of any logger) and every uncaught traceback of this process.

    The filter runs when a record is made (a record factory), so records of
    libraries' loggers are covered whatever handlers they propagate to.
    """
    global _installed
    if _installed:
        return
    _installed = True
    previous = logging.getLogRecordFactory()
    log_filter = RedactingFilter()

    def factory(*args: object, **kwargs: object) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        log_filter.filter(record)
        return record

    logging.setLogRecordFactory(factory)
    sys.excepthook = _excepthook(sys.excepthook)


def _excepthook(
    previous: Callable[[type[BaseException], BaseException, TracebackType | None], object],
) -> Callable[[type[BaseException], BaseException, TracebackType | None], None]:
    def hook(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
        try:
            sys.stderr.write(redact("".join(traceback.format_exception(kind, value, tb))))
            sys.stderr.flush()
        except Exception:  # never lose the traceback; the default hook is still there
            previous(kind, value, tb)

    return hook
