"""Load a config file: YAML, `${ENV}` interpolation, schema validation, cross-references, a version.

Every problem is reported with its location (`routes[2].deployments[0].api_base: ...`) and all of
them at once, so one `ostiary config check` run shows everything to fix.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import SecretStr, ValidationError

from ostiary.config.schema import Authorization, Config

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

DEFAULT_YAML = """\
# The embedded default: one built-in mock model, so a first call gets an answer at once.
routes:
  - name: mock-1
    description: built-in deterministic mock model (chat, streaming, tools, embeddings)
    deployments:
      - provider: mock
        model: mock-1
"""


class ConfigError(Exception):
    """A config that must not be served; `problems` lists `location: message` lines."""

    def __init__(self, source: str, problems: list[str]) -> None:
        super().__init__(f"{source}: {len(problems)} problem(s)\n" + "\n".join(problems))
        self.source = source
        self.problems = problems


@dataclass(frozen=True, slots=True)
class LoadedConfig:
    config: Config
    version: str
    source: str


def version_of(raw: bytes) -> str:
    """The config version is the content hash of the file as written (before interpolation)."""
    return hashlib.sha256(raw).hexdigest()[:12]


def load_default() -> LoadedConfig:
    return parse(DEFAULT_YAML.encode(), source="<embedded default>")


def load_file(path: str | Path) -> LoadedConfig:
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise ConfigError(str(p), [f"cannot read the file: {e.strerror}"]) from None
    return parse(raw, source=str(p), base_dir=p.parent)


def parse(raw: bytes, *, source: str, base_dir: Path | None = None) -> LoadedConfig:
    try:
        tree = yaml.safe_load(raw.decode("utf-8")) or {}
    except UnicodeDecodeError:
        raise ConfigError(source, ["the file is not UTF-8"]) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ConfigError(source, [f"{where}invalid YAML: {getattr(e, 'problem', e)}"]) from None
    if not isinstance(tree, dict):
        raise ConfigError(source, ["the top level must be a mapping (routes:, server:, ...)"])

    problems: list[str] = []
    tree = _interpolate(tree, "", problems)
    try:
        config = Config.model_validate(tree)
    except ValidationError as e:
        problems.extend(f"{_loc(err['loc']) or '(top level)'}: {_msg(err)}" for err in e.errors())
        raise ConfigError(source, problems) from None
    problems.extend(_check_references(config))
    config = _read_key_files(config, base_dir or Path.cwd(), problems)
    config = _read_policies_file(config, base_dir or Path.cwd(), problems)
    if problems:
        raise ConfigError(source, problems)
    return LoadedConfig(config=config, version=version_of(raw), source=source)


def _interpolate(node: Any, where: str, problems: list[str]) -> Any:
    if isinstance(node, dict):
        return {k: _interpolate(v, f"{where}.{k}" if where else str(k), problems) for k, v in node.items()}
    if isinstance(node, list):
        return [_interpolate(v, f"{where}[{i}]", problems) for i, v in enumerate(node)]
    if isinstance(node, str) and "${" in node:

        def sub(m: re.Match[str]) -> str:
            value = os.environ.get(m.group(1))
            if value is None:
                if m.group(2) is not None:
                    return m.group(2)
                problems.append(f"{where}: environment variable {m.group(1)} is not set")
                return ""
            return value

        return _ENV.sub(sub, node)
    return node


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _msg(err: Any) -> str:
    msg = str(err["msg"])
    if err["type"] == "extra_forbidden":
        return "unknown setting (check the spelling)"
    # Never echo an input that may be a secret; pydantic messages themselves do not include it.
    return msg.removeprefix("Value error, ")


def _check_references(config: Config) -> list[str]:
    problems: list[str] = []
    names = [r.name for r in config.routes]
    for i, r in enumerate(config.routes):
        if names.index(r.name) != i:
            problems.append(f"routes[{i}].name: route {r.name!r} is already defined at routes[{names.index(r.name)}]")
        for j, fb in enumerate(r.fallbacks):
            if fb == r.name:
                problems.append(f"routes[{i}].fallbacks[{j}]: a route cannot fall back to itself")
            elif fb not in names:
                problems.append(f"routes[{i}].fallbacks[{j}]: unknown route {fb!r}")
        ids = [d.name for d in r.deployments]
        for j, d in enumerate(r.deployments):
            if ids.index(d.name) != j:
                problems.append(f"routes[{i}].deployments[{j}].id: deployment {d.name!r} appears twice")
    return problems


def _read_key_files(config: Config, base: Path, problems: list[str]) -> Config:
    """Resolve `api_key_file` into `api_key` at load time so a missing file refuses the config."""
    routes = []
    for i, r in enumerate(config.routes):
        deps = []
        for j, d in enumerate(r.deployments):
            if d.api_key_file is not None:
                path = d.api_key_file if d.api_key_file.is_absolute() else base / d.api_key_file
                try:
                    secret = path.read_text().strip()
                except OSError as e:
                    problems.append(f"routes[{i}].deployments[{j}].api_key_file: cannot read {path}: {e.strerror}")
                    secret = ""
                d = d.model_copy(update={"api_key": SecretStr(secret), "api_key_file": None})
            deps.append(d)
        routes.append(r.model_copy(update={"deployments": deps}))
    return config.model_copy(update={"routes": routes})


def _read_policies_file(config: Config, base: Path, problems: list[str]) -> Config:
    """Load `authorization.policies_file` into `policies`, so a bad file refuses the config."""
    path = config.authorization.policies_file
    if path is None:
        return config
    path = path if path.is_absolute() else base / path
    try:
        text = path.read_text()
    except OSError as e:
        problems.append(f"authorization.policies_file: cannot read {path}: {e.strerror}")
        return config
    try:
        auth = Authorization(policies=text)
    except ValidationError as e:
        problems.extend(f"authorization.policies_file: {_msg(err)}" for err in e.errors())
        return config
    return config.model_copy(update={"authorization": auth})

