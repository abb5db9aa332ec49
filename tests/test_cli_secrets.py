"""Known secret values, given the ways a config takes them, never appear in anything a command
prints: errors, logs, human output and ``--json`` documents (stdout and stderr both grepped)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from connectors.files import write_jsonl
from drift import demo

SECRETS = {
    "DRIFT_TEST_KAFKA_PASSWORD": "kafka-pw-5e1f0c2a",
    "DRIFT_TEST_WEBHOOK_TOKEN": "hook-token-7d3b9e41",
    # A webhook URL that carries its own credential, from the environment as it must.
    "DRIFT_TEST_WEBHOOK_URL": "http://bot:url-pw-c0ffee11@127.0.0.1:9/hook?token=url-token-8a2f6d",
    "PGPASSWORD": "pg-pw-41b7aa90",
}
KNOWN = ["kafka-pw-5e1f0c2a", "hook-token-7d3b9e41", "url-pw-c0ffee11", "url-token-8a2f6d", "pg-pw-41b7aa90"]


def drift(*args: str, cwd: Path, extra: dict[str, str] | None = None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP"}
    env.update(SECRETS)
    env.update(extra or {})
    result = subprocess.run([sys.executable, "-m", "drift.cli", *args], cwd=cwd, env=env, capture_output=True,
                            text=True, timeout=300, check=False)
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    return f"exit {result.returncode}\n{output}"


def assert_no_secret(output: str) -> None:
    leaked = [value for value in KNOWN if value in output]
    assert not leaked, f"{leaked} in:\n{output}"


def workspace(tmp_path: Path) -> Path:
    text = demo.config_text()
    assert "  store: sqlite:///./drift-tickets.db\n" in text and text.count("\nkafka:\n") == 1
    text = text.replace("  store: sqlite:///./drift-tickets.db\n", "\n".join([
        "  store: sqlite:///./drift-tickets.db",
        "  sinks: [webhook]",
        "  webhook: {url: '${DRIFT_TEST_WEBHOOK_URL}', token: '${DRIFT_TEST_WEBHOOK_TOKEN}', spool_dir: spool,",
        "            max_attempts: 1, timeout: 1s}",
        "",
    ]))
    text = text.replace("\nkafka:\n", "\n".join([
        "",
        "kafka:",
        "  security_protocol: SASL_SSL",
        "  sasl_mechanism: PLAIN",
        "  sasl_username: drift",
        "  sasl_password: ${DRIFT_TEST_KAFKA_PASSWORD}",
        "",
    ]))
    (tmp_path / "drift.yaml").write_text(text, encoding="utf-8")
    demo.write_references(tmp_path)
    write_jsonl(tmp_path / "events.jsonl", demo.events().lines)
    return tmp_path / "drift.yaml"


def test_validate_errors_do_not_show_secrets(tmp_path: Path) -> None:
    (tmp_path / "drift.yaml").write_text("""\
version: 1
kafka:
  sasl_mechanism: ${DRIFT_TEST_KAFKA_PASSWORD}
  sasl_password: kafka-pw-5e1f0c2a
tickets:
  store: postgresql://drift:pg-pw-41b7aa90@db/t?password=pg-pw-41b7aa90
  sinks: [webhook]
  webhook: {url: 'ftp://x/?token=url-token-8a2f6d', token: '${DRIFT_TEST_WEBHOOK_TOKEN}', timeout: '${DRIFT_TEST_WEBHOOK_TOKEN}'}
models:
  - name: m
    reference: {parquet: 'ref.parquet?key=url-pw-c0ffee11'}
    features: {x: {type: numeric}}
""", encoding="utf-8")
    output = drift("validate", "drift.yaml", cwd=tmp_path)
    assert output.startswith("exit 2\n")
    assert "kafka.sasl_password: is a secret" in output and "tickets.store: must not contain a password" in output
    assert_no_secret(output)


def test_valid_config_with_secrets(tmp_path: Path) -> None:
    config = workspace(tmp_path)
    output = drift("validate", str(config), cwd=tmp_path)
    assert output.startswith("exit 0\n"), output
    assert_no_secret(output)


@pytest.mark.parametrize("as_json", [True, False], ids=["json", "table"])
def test_replay_output_does_not_show_secrets(tmp_path: Path, as_json: bool) -> None:
    config = workspace(tmp_path)
    output = drift("replay", "--config", str(config), "--events", "events.jsonl", *(["--json"] if as_json else []),
                   cwd=tmp_path)
    assert output.startswith("exit 0\n"), output
    assert "ticket" in output
    assert_no_secret(output)
    for spooled in (tmp_path / "spool").rglob("*"):
        if spooled.is_file():
            assert_no_secret(spooled.read_text(encoding="utf-8", errors="replace"))


def test_demo_and_failing_commands_do_not_show_secrets(tmp_path: Path) -> None:
    output = drift("demo", "--json", "--dir", str(tmp_path / "demo"), cwd=tmp_path)
    assert output.startswith("exit 0\n"), output[:2000]
    assert_no_secret(output)
    # A store that cannot be opened, named with a password from the environment.
    config = workspace(tmp_path)
    text = config.read_text(encoding="utf-8").replace("store: sqlite:///./drift-tickets.db",
                                                      "store: ${DRIFT_TEST_STORE}")
    config.write_text(text, encoding="utf-8")
    output = drift("tickets", "list", "--config", str(config), cwd=tmp_path,
                   extra={"DRIFT_TEST_STORE": "postgresql://drift@127.0.0.1:9/t?sslmode=disable"})
    assert output.startswith("exit 1\n"), output
    assert_no_secret(output)
