"""What can go wrong with an endpoint request, in the endpoint's own terms.

The server maps each to its HTTP answer in one place (``fngw.server.error_map``); this package
says what happened, not which status it is.
"""

from __future__ import annotations


class EndpointError(Exception):
    """Base; ``str(error)`` is the message for the client."""


class RequestInvalid(EndpointError):
    """The request cannot become a ``REQUEST`` document (a body that does not parse as its
    Content-Type says, text that is not UTF-8, a malformed form)."""


class RequestTooLarge(EndpointError):
    """The request is within ``server.max_body`` but over a limit derived from it (form parts)."""


class ResponseInfoInvalid(EndpointError):
    """The ResponseInfo cell printed something that is not a valid status and headers object."""


class CellFailed(EndpointError):
    """The endpoint cell (or its ResponseInfo cell) raised; ``ename``, ``evalue`` and, when the
    endpoint shows them, ``traceback`` (lines without terminal colours) go to the client."""

    def __init__(self, message: str, ename: str, evalue: str, traceback: list[str] | None = None):
        super().__init__(message)
        self.ename = ename
        self.evalue = evalue
        self.traceback = traceback
