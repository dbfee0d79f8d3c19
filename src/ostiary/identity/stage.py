"""The identity stage: resolve the caller's credential to a principal and check what it may use.

A credential is a virtual API key or, when issuers are configured, a bearer JWT. While no key and
no issuer exist, loopback clients are served anonymously (the embedded default's first try); from
the first key or issuer on, every request must present a valid credential.
"""

from __future__ import annotations

import functools
import ipaddress

from ostiary.errors import Forbidden, Unauthenticated
from ostiary.identity.keys import KeyIndex
from ostiary.identity.principal import ANONYMOUS, Principal
from ostiary.identity.tokens import TokenVerifier, looks_like_jwt
from ostiary.pipeline.call import Call
from ostiary.pipeline.stage import Handler

_WHY = {
    "invalid": "Invalid API key. Check the key you send as 'Authorization: Bearer <key>' (or 'x-api-key').",
    "revoked": "This API key has been revoked; ask your administrator for a new one.",
    "expired": "This API key has expired; ask your administrator to rotate or reissue it.",
}


class Identify:
    name = "identity"

    def __init__(self, keys: KeyIndex, tokens: TokenVerifier) -> None:
        self.keys = keys
        self.tokens = tokens

    async def principal(self, credential: str | None, client_ip: str) -> Principal:
        """The principal behind a request's credential, or a 401 that says what is wrong."""
        if not self.keys.auth_required and not self.tokens:
            if not is_loopback(client_ip):
                raise Unauthenticated("No authentication is configured on this gateway, so it serves only "
                                      "clients on this machine (loopback).")
            return ANONYMOUS
        if not credential:
            raise Unauthenticated("Missing credential: send an API key or a bearer token as "
                                  "'Authorization: Bearer <credential>' (or an API key as 'x-api-key').")
        if self.tokens and looks_like_jwt(credential):
            return await self.tokens.verify(credential)
        principal, why = self.keys.lookup(credential)
        if principal is None:
            raise Unauthenticated(_WHY[why], code=f"{why}_api_key")
        return principal

    async def __call__(self, call: Call, next: Handler) -> None:
        call.principal = await self.principal(call.credential, call.client_ip)
        need = "embeddings" if call.kind == "embeddings" else "chat"
        if need not in call.principal.scopes:
            raise Forbidden(f"This API key lacks the '{need}' scope.", code="missing_scope")
        if not call.principal.may_use(call.model):
            raise Forbidden(f"This API key may not use the model {call.model!r}.", param="model",
                            code="model_not_allowed")
        await next(call)


@functools.lru_cache(maxsize=4096)
def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"
