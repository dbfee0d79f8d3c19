"""Bearer JWTs through the real gateway with the official clients."""

from __future__ import annotations

import time
from collections.abc import Iterator

import anthropic
import httpx
import openai
import pytest

from tests.support import gateway
from tests.unit.test_tokens import AUD, ISS, Keys

HELLO = [{"role": "user", "content": "Hello"}]


@pytest.fixture(scope="module")
def oidc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Keys]]:
    tmp = tmp_path_factory.mktemp("jwt")
    keys = Keys()
    keys.add("k1")
    (tmp / "jwks.json").write_bytes(keys.jwks())
    cfg = tmp / "ostiary.yaml"
    cfg.write_text(f"server: {{data_dir: {tmp / 'data'}}}\nidentity:\n  issuers:\n"
                   f"    - {{issuer: '{ISS}', audience: {AUD}, jwks_file: {tmp / 'jwks.json'}, algorithms: [RS256]}}\n"
                   "routes:\n  - name: mock-1\n    deployments: [{provider: mock, model: mock-1}]\n")
    with gateway(cfg) as (url, _):
        yield url, keys


def test_a_token_from_a_trusted_issuer_is_served(oidc: tuple[str, Keys]) -> None:
    url, keys = oidc
    token = keys.token()
    c = openai.OpenAI(base_url=f"{url}/v1", api_key=token, max_retries=0)
    assert c.chat.completions.create(model="mock-1", messages=HELLO).choices[0].message.content
    a = anthropic.Anthropic(base_url=url, auth_token=token, max_retries=0)
    assert a.messages.create(model="mock-1", max_tokens=10, messages=HELLO).content


def test_issuers_alone_make_authentication_required(oidc: tuple[str, Keys]) -> None:
    url, keys = oidc
    r = httpx.post(f"{url}/v1/chat/completions", json={"model": "mock-1", "messages": HELLO})
    assert r.status_code == 401 and "Missing credential" in r.json()["error"]["message"]
    r = httpx.post(f"{url}/v1/chat/completions", headers={"authorization": f"Bearer {keys.token(exp=int(time.time()) - 3600)}"},
                   json={"model": "mock-1", "messages": HELLO})
    assert r.status_code == 401 and r.json()["error"]["code"] == "token_expired"
    assert "expired" in r.json()["error"]["message"]
