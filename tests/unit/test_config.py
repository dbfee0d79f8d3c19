"""Config loading: every error with its location, env interpolation, versions, key files."""

from __future__ import annotations

from pathlib import Path

import pytest

from ostiary.cli import main
from ostiary.config.load import ConfigError, load_default, load_file, parse

GOOD = b"""
routes:
  - name: gpt-4o
    strategy: priority
    fallbacks: [local]
    deployments:
      - provider: openai
        model: gpt-4o
        api_key: ${TEST_OPENAI_KEY}
      - provider: azure
        model: gpt4o-eu
        api_base: https://example.openai.azure.com
        api_version: "2024-10-21"
        api_key_file: azure.key
  - name: local
    deployments:
      - provider: openai
        model: llama3
        api_base: http://127.0.0.1:11434/v1
"""


def test_default_config_serves_the_mock_model() -> None:
    loaded = load_default()
    assert [r.name for r in loaded.config.routes] == ["mock-1"]
    assert loaded.config.routes[0].deployments[0].provider == "mock"


def test_env_interpolation_and_key_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_OPENAI_KEY", "sk-test-123")
    (tmp_path / "azure.key").write_text("azure-secret\n")
    (tmp_path / "c.yaml").write_bytes(GOOD)
    loaded = load_file(tmp_path / "c.yaml")
    deps = loaded.config.routes[0].deployments
    assert deps[0].api_key is not None and deps[0].api_key.get_secret_value() == "sk-test-123"
    assert deps[1].api_key is not None and deps[1].api_key.get_secret_value() == "azure-secret"
    # Secrets never show in a repr (and so never in a log line).
    assert "sk-test-123" not in repr(loaded.config) and "azure-secret" not in repr(loaded.config)


def test_version_is_a_content_hash() -> None:
    a = parse(b"routes: []\n", source="a")
    b = parse(b"routes: []\n", source="b")
    c = parse(b"routes: []  # changed\n", source="c")
    assert a.version == b.version != c.version
    assert len(a.version) == 12


def test_every_error_has_its_location(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    raw = b"""
server: {port: 70000}
routes:
  - name: a
    strategy: fastest
    deployments:
      - provider: openai
        model: x
        api_base: ftp://nowhere
        api_key: ${NOT_SET_ANYWHERE}
        colour: blue
      - provider: azure
        model: y
"""
    with pytest.raises(ConfigError) as e:
        parse(raw, source="bad.yaml")
    problems = "\n".join(e.value.problems)
    assert "server.port:" in problems
    assert "routes[0].strategy:" in problems
    assert "routes[0].deployments[0].api_base: must be an http:// or https:// URL" in problems
    assert "routes[0].deployments[0].colour: unknown setting" in problems
    assert "routes[0].deployments[1]: azure needs api_base" in problems
    assert len(e.value.problems) >= 5


def test_cross_reference_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    raw = b"""
routes:
  - name: a
    fallbacks: [b, a]
    deployments: [{provider: openai, model: x, api_key: "${NOT_SET_ANYWHERE}"}]
  - name: a
    deployments: [{provider: mock, model: m}, {provider: mock, model: m}]
"""
    with pytest.raises(ConfigError) as e:
        parse(raw, source="bad.yaml")
    assert e.value.problems == [
        "routes[0].deployments[0].api_key: environment variable NOT_SET_ANYWHERE is not set",
        "routes[0].fallbacks[0]: unknown route 'b'",
        "routes[0].fallbacks[1]: a route cannot fall back to itself",
        "routes[1].name: route 'a' is already defined at routes[0]",
        "routes[1].deployments[1].id: deployment 'mock:m@default' appears twice",
    ]


@pytest.mark.parametrize("raw, expected", [
    (b"routes: [\n", "invalid YAML"),
    (b"- a\n- b\n", "the top level must be a mapping"),
    (b"\xff\xfe", "not UTF-8"),
])
def test_unreadable_files(raw: bytes, expected: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse(raw, source="x")
    assert expected in e.value.problems[0]


def test_missing_key_file_refuses_the_config(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text(
        "routes:\n  - name: a\n    deployments:\n      - {provider: openai, model: x, api_key_file: nope.key}\n")
    with pytest.raises(ConfigError) as e:
        load_file(tmp_path / "c.yaml")
    assert e.value.problems[0].startswith("routes[0].deployments[0].api_key_file: cannot read")


def test_config_check_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("routes:\n  - name: m\n    deployments: [{provider: mock, model: m}]\n")
    assert main(["config", "check", str(good)]) == 0
    assert "valid" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text("routes:\n  - name: m\n    deployments: [{provider: nope, model: m}]\n")
    assert main(["config", "check", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "routes[0].deployments[0].provider:" in err


def test_two_different_deployments_cannot_share_a_name() -> None:
    from pydantic import ValidationError

    from ostiary.config.schema import Config

    same = {"provider": "mock", "model": "mock-1"}
    # One deployment shared by two routes, each with its own weight: fine.
    Config(routes=[{"name": "a", "deployments": [same]}, {"name": "b", "deployments": [{**same, "weight": 2}]}])
    with pytest.raises(ValidationError, match="give them distinct ids"):
        Config(routes=[{"name": "a", "deployments": [same]},
                       {"name": "b", "deployments": [{**same, "mock": {"error_rate": 1}}]}])
