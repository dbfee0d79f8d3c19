"""Cedar policies through the real gateway: the deciding policy reaches the client."""

from __future__ import annotations

from pathlib import Path

import openai
import pytest

from tests.support import gateway, keys
from tests.unit.test_authorize import CONFIG

HELLO = [{"role": "user", "content": "Hello"}]


def test_policies_decide_per_route_and_clearance(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"server: {{data_dir: {tmp_path / 'data'}}}\n" + CONFIG)
    internal = keys(cfg, "create", "--tenant", "acme")["key"]
    cleared = keys(cfg, "create", "--tenant", "acme", "--clearance", "restricted")["key"]
    outsider = keys(cfg, "create", "--tenant", "globex")["key"]
    with gateway(cfg) as (url, _):
        def ask(key: str, model: str) -> str | None:
            c = openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)
            return c.chat.completions.create(model=model, messages=HELLO).choices[0].message.content  # type: ignore[arg-type]

        assert ask(internal, "open") and ask(cleared, "vault")
        with pytest.raises(openai.PermissionDeniedError) as e:
            ask(internal, "vault")
        assert "restricted-needs-clearance" in str(e.value) and e.value.code == "policy_denied"
        with pytest.raises(openai.PermissionDeniedError, match="No authorization policy permits"):
            ask(outsider, "open")
