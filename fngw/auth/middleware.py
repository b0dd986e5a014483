"""Bearer-token authentication for every resource that declares who may call it.

A resource opts in with ``access_for(method) -> Access | None``. Tokens are accepted as
``Authorization: Bearer X``, ``Authorization: token X`` (Kernel Gateway's form) or ``?token=X``.
No token, or one that matches no configured token: 401 with ``WWW-Authenticate: Bearer``. A valid
token the route does not accept: 403. Every configured secret is compared in constant time, and
no token is ever logged or echoed. CORS preflights pass without a token (browsers never send one).
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Any, Protocol

import falcon

from fngw.http.cors import is_preflight
from fngw.http.environ import JOB_RUN
from fngw.http.errors import GatewayError
from fngw.manifest import Access


def presented_token(req: falcon.Request) -> str | None:
    """The token of Authorization: Bearer/token X, or of ?token=X; None without one."""
    header = req.get_header("Authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() in ("bearer", "token") and value.strip():
            return value.strip()
        return None
    param = req.get_param("token")
    return param or None


def unauthorized(message: str) -> GatewayError:
    """A 401 with ``message`` and the challenge that says which scheme to use."""
    return GatewayError(401, message=message, headers={"WWW-Authenticate": 'Bearer realm="fngw"'})


class Guarded:
    """A resource under one access rule for every method it serves: subclasses set ``access``."""

    access: Access

    def access_for(self, method: str) -> Access:
        """Who may call (the same for every method)."""
        return self.access


PEER_HEADER = "X-Fngw-Peer"


class PeerTrust(Protocol):
    """Tells a call relayed by another instance of the deployment from anyone else's."""

    def trusts(self, presented: str, /) -> bool:
        """Whether ``presented`` (the ``X-Fngw-Peer`` header) is the deployment's peer secret."""


class TokenAuth:
    """Falcon middleware; ``secrets`` maps token names to their secret values, read at start."""

    def __init__(self, secrets: Mapping[str, str], peers: PeerTrust | None = None):
        self._secrets = {name: secret.encode() for name, secret in secrets.items()}
        # Other instances of the deployment relay calls they have already authorized (kernel API,
        # Redis registry); they show the deployment's peer secret instead of a client's token.
        self._peers = peers

    def identify(self, token: str) -> str | None:
        """The name of the configured token equal to ``token``; every secret is compared."""
        presented = token.encode()
        found = None
        for name, secret in self._secrets.items():
            if hmac.compare_digest(presented, secret):
                found = name
        return found

    def caller(self, req: falcon.Request) -> str | None:
        """The name of the token ``req`` presents; None without one; 401 for a token that matches
        none (where the token names the caller, as for the owner of a job, a wrong one is an error)."""
        token = presented_token(req)
        if token is None:
            return None
        name = self.identify(token)
        if name is None:
            raise unauthorized("the token is not valid")
        return name

    def process_resource(
        self, req: falcon.Request, resp: falcon.Response, resource: object, params: dict[str, Any]
    ) -> None:
        """Authorize the request against the resource's access rule (preflights pass)."""
        access_for = getattr(resource, "access_for", None)
        if access_for is None or is_preflight(req) or req.env.get(JOB_RUN) is not None:
            return  # a job's replay was authorized when it was accepted
        peer = req.get_header(PEER_HEADER)
        if peer is not None and self._peers is not None and self._peers.trusts(peer):
            return  # relayed by another instance, which authorized the client
        self.authorize(req, access_for(req.method))

    def authorize(self, req: falcon.Request, access: Access | None) -> None:
        """Raise 401 or 403 unless ``req`` may pass ``access``."""
        if access is None or access.public:
            return
        name = self.caller(req)
        if name is None:
            raise unauthorized("a valid token is required: Authorization: Bearer <token>")
        if name not in access.tokens:
            raise GatewayError(403, message="this token does not grant access to this route")
