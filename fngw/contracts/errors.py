"""What checking a request against its contract raises (fngw.server.error_map makes them HTTP)."""

from __future__ import annotations


class ContractError(Exception):
    """A request that breaks its endpoint's contract."""


class RequestRejected(ContractError):
    """The request fails its schemas (422): ``errors`` lists every violation, in request order
    (path, query, headers, body)."""

    def __init__(self, errors: list[dict[str, str]]):
        self.errors = errors
        count = len(errors)
        super().__init__(f"the request does not match the endpoint's schema ({count} error{'s' * (count != 1)})")


class UnsupportedMediaType(ContractError):
    """The body's media type is not one the endpoint accepts (415)."""

    def __init__(self, given: str | None, accepted: tuple[str, ...]):
        self.accepted = accepted
        what = f"Content-Type {given}" if given else "no Content-Type"
        super().__init__(f"the body has {what}; this endpoint accepts {', '.join(accepted)}")


class SchemaUnusable(ContractError):
    """A schema cannot be applied (it refers to itself without end): the endpoint's fault, a 500."""


class ResponseBroken(ContractError):
    """The cell's response breaks the endpoint's declared responses (a 500, with validate_responses)."""
