"""Secret fields come only from ``${VAR}`` or ``{file: PATH}``; a literal credential in the file is
refused with a hint; no error message shows a credential."""

from __future__ import annotations

from pathlib import Path

import pytest

from drift.config import parse_config
from drift.errors import ConfigError

TAIL = "models:\n  - name: m\n    features: {x: {type: numeric}}\n"
HINT = ("is a secret: give it as ${VAR} (from the environment) or {file: PATH} (a file holding only the secret), "
        "never as a literal in the config file")
LITERAL_CREDENTIAL = ("holds a credential (a URL password, a password/token/key parameter or an authorization "
                      "value) written in the config file; give the whole value as ${VAR} so it comes from the "
                      "environment")


def errors(text: str, environ: dict[str, str] | None = None, source_dir: str = ".") -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "drift.yaml", source_dir, environ=environ or {})
    return caught.value.messages


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("kafka:\n  sasl_password: hunter2-literal\n", f"drift.yaml:3:18 kafka.sasl_password: {HINT}",
                     id="sasl-password"),
        pytest.param("kafka:\n  sasl_password: 123456789\n", f"drift.yaml:3:18 kafka.sasl_password: {HINT}",
                     id="sasl-password-number"),
        pytest.param("kafka:\n  sasl_password: pre-${PW}\n", f"drift.yaml:3:18 kafka.sasl_password: {HINT}",
                     id="sasl-password-partly-literal"),
        pytest.param("kafka:\n  sasl_password: ${PW:-hunter2-literal}\n",
                     "drift.yaml:3:18 kafka.sasl_password: is a secret: a default would be a literal secret in the "
                     "config file; write ${PW} without one", id="sasl-password-default"),
        pytest.param("tickets:\n  sinks: [webhook]\n  webhook: {url: 'https://h/x', token: tok-literal-1}\n",
                     f"drift.yaml:4:40 tickets.webhook.token: {HINT}", id="webhook-token"),
        pytest.param("tickets:\n  sinks: [webhook]\n  webhook: {url: 'https://h/x?token=tok-literal-1'}\n",
                     f"drift.yaml:4:18 tickets.webhook.url: {LITERAL_CREDENTIAL}", id="webhook-url-query"),
        pytest.param("tickets:\n  sinks: [webhook]\n  webhook: {url: 'https://bot:tok-literal-1@h/x'}\n",
                     f"drift.yaml:4:18 tickets.webhook.url: {LITERAL_CREDENTIAL}", id="webhook-url-userinfo"),
        pytest.param("kafka:\n  bootstrap: 'broker:9092?password=tok-literal-1'\n",
                     f"drift.yaml:3:14 kafka.bootstrap: {LITERAL_CREDENTIAL}", id="anywhere"),
        pytest.param("tickets:\n  store: 'postgresql://drift@db/t?password=tok-literal-1'\n",
                     "drift.yaml:3:10 tickets.store: must not contain a password; got a URL with a 'password' query parameter "
                     "(give the password in the PGPASSWORD environment variable or a PGPASSFILE)", id="store-query"),
    ],
)
def test_literal_secrets_are_refused_without_echoing_them(text: str, expected: str) -> None:
    # Before: accepted (or, for the store's query string, accepted and later logged).
    messages = errors("version: 1\n" + text + TAIL, {"PW": "from-env-1"})
    assert messages == [expected]
    assert not any(word in m for m in messages for word in ("hunter2", "tok-literal", "123456789"))


def test_secrets_from_the_environment(tmp_path: Path) -> None:
    text = ("version: 1\nkafka:\n  sasl_password: ${DRIFT_TEST_PW}\ntickets:\n  sinks: [webhook]\n"
            "  webhook: {url: '${DRIFT_TEST_HOOK}', token: '${DRIFT_TEST_TOKEN}'}\n" + TAIL)
    environ = {"DRIFT_TEST_PW": "pw-from-env", "DRIFT_TEST_HOOK": "https://h/x?token=url-token",
               "DRIFT_TEST_TOKEN": "bearer-from-env"}
    config = parse_config(text, environ=environ)
    assert config.kafka.sasl_password is not None and config.kafka.sasl_password.get_secret_value() == "pw-from-env"
    assert config.tickets.webhook is not None and config.tickets.webhook.url == "https://h/x?token=url-token"
    assert config.tickets.webhook.token is not None
    assert config.tickets.webhook.token.get_secret_value() == "bearer-from-env"
    shown = repr(config) + config.model_dump_json()
    assert "pw-from-env" not in shown and "bearer-from-env" not in shown


def test_secret_from_a_file(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "kafka").write_text("pw-from-file\n", encoding="utf-8")
    text = "version: 1\nkafka:\n  sasl_password: {file: secrets/kafka}\n" + TAIL
    config = parse_config(text, "drift.yaml", str(tmp_path), environ={})
    assert config.kafka.sasl_password is not None
    assert config.kafka.sasl_password.get_secret_value() == "pw-from-file"
    # The path may come from the environment; a missing file is an error naming it.
    text = "version: 1\nkafka:\n  sasl_password: {file: '${DRIFT_TEST_DIR}/absent'}\n" + TAIL
    assert errors(text, {"DRIFT_TEST_DIR": str(tmp_path)}) == [
        f"drift.yaml:3:25 kafka.sasl_password.file: cannot read the secret file {tmp_path}/absent: "
        "No such file or directory"
    ]


def test_errors_never_show_an_environment_secret() -> None:
    # A token put where another value belongs: the message names the field, not the token.
    text = ("version: 1\nkafka:\n  sasl_mechanism: ${DRIFT_TEST_TOKEN}\n  security_protocol: ${DRIFT_TEST_PASSWORD}\n"
            "tickets:\n  sinks: [webhook]\n  webhook: {url: '${DRIFT_TEST_HOOK}', token: '${DRIFT_TEST_SECRET}'}\n"
            "  store: ${DRIFT_TEST_STORE}\n" + TAIL)
    environ = {"DRIFT_TEST_TOKEN": "tok-9f8e7d", "DRIFT_TEST_PASSWORD": "pw-1a2b3c", "DRIFT_TEST_SECRET": "sec-445566",
               "DRIFT_TEST_HOOK": "ftp://hooks/x?token=url-tok-778899",
               "DRIFT_TEST_STORE": "postgres://drift:store-pw-0011@db/t"}
    messages = errors(text, environ)
    assert sorted(messages) == [
        "drift.yaml:3:19 kafka.sasl_mechanism: must be one of 'PLAIN', 'SCRAM-SHA-256' or 'SCRAM-SHA-512'; got '***'",
        "drift.yaml:4:22 kafka.security_protocol: must be one of 'PLAINTEXT', 'SSL', 'SASL_PLAINTEXT' or 'SASL_SSL'; "
        "got '***'",
        "drift.yaml:7:18 tickets.webhook.url: String should match pattern '^https?://'; "
        "got 'ftp://hooks/x?token=***'",
        "drift.yaml:8:10 tickets.store: must be a URL 'sqlite:///PATH' or 'postgresql://...'; "
        "got 'postgres://drift:***@db/t'",
    ]
    joined = "\n".join(messages)
    for value in environ.values():
        assert value not in joined
