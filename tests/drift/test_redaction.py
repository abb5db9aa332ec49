"""``redact`` masks credentials in URLs, query strings, connection strings and authorization values;
the log filter and the traceback hook apply it to everything the process prints."""

from __future__ import annotations

import io
import logging
import subprocess
import sys

import pytest

from drift.redaction import RedactingFilter, has_credentials, redact, register_secret


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgresql://drift:hunter2@db:5432/tickets", "postgresql://drift:***@db:5432/tickets"),
        ("postgresql://drift:p@ss:w0rd@db/t", "postgresql://drift:***@db/t"),
        ("got 'postgresql://drift@db/t?sslmode=require&password=hunter2'",
         "got 'postgresql://drift@db/t?sslmode=require&password=***'"),
        ("POST https://hooks.example.com/x?token=abc123&channel=ops failed",
         "POST https://hooks.example.com/x?token=***&channel=ops failed"),
        ("https://s3/b/k?X-Amz-Credential=AK/2026&X-Amz-Signature=f00d&X-Amz-Date=1",
         "https://s3/b/k?X-Amz-Credential=***&X-Amz-Signature=***&X-Amz-Date=1"),
        ("https://api/?api_key=k1;access_token=t1;sig=s1", "https://api/?api_key=***;access_token=***;sig=***"),
        ("host=db user=drift password=hunter2 dbname=t", "host=db user=drift password=*** dbname=t"),
        ("Authorization: Bearer eyJhbGciOi.x-y_z", "Authorization: Bearer ***"),
        ('{"url": "https://u:pw@h/x?secret=s"}', '{"url": "https://u:***@h/x?secret=***"}'),
        # Left alone: no credential.
        ("https://hooks.example.com/x?channel=ops", "https://hooks.example.com/x?channel=ops"),
        ("postgresql://drift@db:5432/t", "postgresql://drift@db:5432/t"),
        ("kafka.sasl_password: is a secret", "kafka.sasl_password: is a secret"),
        ("n_tokens=5 keyword=x min=1.0", "n_tokens=5 keyword=x min=1.0"),
        ("127.0.0.1:9092", "127.0.0.1:9092"),
    ],
)
def test_redact(text: str, expected: str) -> None:
    assert redact(text) == expected
    assert has_credentials(text) is (text != expected)


def test_registered_values_are_masked_anywhere_also_json_escaped() -> None:
    register_secret('s3cr"et-value\\x')
    assert redact('got s3cr"et-value\\x here') == "got *** here"
    assert redact('{"a": "s3cr\\"et-value\\\\x"}') == '{"a": "***"}'
    register_secret("abc")  # too short to mask by value: it would mask ordinary words
    assert redact("abc") == "abc"


def test_log_records_are_redacted() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("drift.test.redaction")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("POST %s failed", "https://h/x?token=abc123")
        try:
            raise ValueError("cannot connect to postgresql://u:hunter2@db/t")
        except ValueError:
            logger.exception("store")
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert "abc123" not in text and "hunter2" not in text
    assert "POST https://h/x?token=*** failed" in text and "postgresql://u:***@db/t" in text


def test_install_redacts_every_logger_and_uncaught_tracebacks() -> None:
    script = (
        "import logging, sys\n"
        "from drift.redaction import install\n"
        "install()\n"
        "logging.basicConfig(stream=sys.stdout)\n"
        "logging.getLogger('some.library').error('dsn host=db password=hunter2')\n"
        "raise RuntimeError('https://u:hunter2@h/x?token=tok123')\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1
    output = result.stdout + result.stderr
    assert "hunter2" not in output and "tok123" not in output
    assert "password=***" in result.stdout
    assert "RuntimeError: https://u:***@h/x?token=***" in result.stderr
