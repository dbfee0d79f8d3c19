"""Cedar authorization: permits, forbids naming their policy, default deny, config errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from ostiary.config.load import ConfigError, load_file, parse
from ostiary.errors import Forbidden
from ostiary.identity.authorize import Authorize
from ostiary.identity.principal import Principal
from ostiary.pipeline.call import Call

POLICIES = """
@id("members-may-chat")
permit(principal, action == Action::"chat", resource) when { principal.tenant == "acme" };

@id("restricted-needs-clearance")
forbid(principal, action, resource)
  when { resource.tags has data_class && resource.tags.data_class == "restricted" }
  unless { principal.clearance == "restricted" };
"""

CONFIG = ("authorization:\n  policies: |\n" + "".join(f"    {line}\n" for line in POLICIES.splitlines())
          + "routes:\n  - name: open\n    deployments: [{provider: mock, model: m}]\n"
          "  - name: vault\n    tags: {data_class: restricted}\n    deployments: [{provider: mock, model: m}]\n")


def who(tenant: str = "acme", clearance: str = "internal") -> Principal:
    return Principal(kind="key", subject="ost-x", tenant=tenant, user="u", role="developer",
                     scopes=frozenset({"chat", "embeddings"}), models=None, clearance=clearance)


def call(model: str, principal: Principal, api: str = "openai.chat") -> Call:
    c = Call(id="r", api=api, body={}, model=model, stream=False, config_version="v")  # type: ignore[arg-type]
    c.principal = principal
    return c


async def _next(c: Call) -> None:
    c.result = {"ok": True}


def stage() -> Authorize:
    loaded = parse(CONFIG.encode(), source="t")
    a = Authorize.from_config(loaded.config.authorization, {r.name: r for r in loaded.config.routes}, "v1")
    assert a is not None
    return a


async def test_permit_and_the_decision_is_recorded() -> None:
    c = call("open", who())
    await stage()(c, _next)
    assert c.result == {"ok": True}
    assert c.decisions["authorization"] == {"allowed": True, "policies": ["members-may-chat"], "config_version": "v1"}


async def test_a_forbid_names_its_policy() -> None:
    with pytest.raises(Forbidden) as e:
        await stage()(call("vault", who()), _next)
    assert "restricted-needs-clearance" in e.value.message and e.value.code == "policy_denied"
    c = call("vault", who(clearance="restricted"))
    await stage()(c, _next)  # the clearance lifts the forbid
    assert c.result == {"ok": True}


async def test_default_deny_when_nothing_permits() -> None:
    with pytest.raises(Forbidden, match="No authorization policy permits"):
        await stage()(call("open", who(tenant="globex")), _next)
    with pytest.raises(Forbidden):  # only chat is permitted
        await stage()(call("open", who(), api="openai.embeddings"), _next)


def test_invalid_policies_refuse_the_config(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as e:
        parse(b"authorization:\n  policies: 'permit(principal, action, resource) when { oops };'\n", source="t")
    assert e.value.problems[0].startswith("authorization.policies: invalid Cedar policies")
    (tmp_path / "p.cedar").write_text("forbid(principal, action, resource) when { nope };")
    (tmp_path / "c.yaml").write_text("authorization: {policies_file: p.cedar}\n")
    with pytest.raises(ConfigError) as e:
        load_file(tmp_path / "c.yaml")
    assert e.value.problems[0].startswith("authorization.policies_file: invalid Cedar policies")
    (tmp_path / "p.cedar").write_text(POLICIES)
    assert load_file(tmp_path / "c.yaml").config.authorization.policies == POLICIES
