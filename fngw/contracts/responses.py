"""Checking a cell's response against the endpoint's declared ``responses`` (``validate_responses``:
for development and ``fngw test``; a violation becomes a 500 naming it)."""

from __future__ import annotations

import json
from typing import Any

import jsonschema

from .model import Contract, json_pointer
from .requests import MAX_MESSAGE, media_type


class ResponseValidator:
    """Validates responses of one endpoint: compiled once, when the gateway builds its routes."""

    def __init__(self, contract: Contract):
        self.contract = contract
        self._schemas = {
            status: contract.schemas.validator(entry.schema)
            for status, entry in contract.responses.items()
            if entry.schema is not None
        }

    def problems(self, status: int, content_type: str | None, body: bytes) -> list[str]:
        """What is wrong with a response (empty: nothing): a status no entry covers (when any are
        declared), another media type than the entry's, a body its schema refuses."""
        contract = self.contract
        entry = contract.response_for(status)
        if entry is None:
            if contract.responses:
                return [f"status {status} is not among the declared responses ({', '.join(contract.responses)})"]
            return []
        found = []
        given = media_type(content_type)
        if entry.content_type is not None and given != entry.content_type.lower():
            found.append(
                f"Content-Type is {given or 'absent'}, not {entry.content_type} as declared for {entry.status}"
            )
        validator = self._schemas.get(entry.status)
        if validator is None or found:
            return found
        value, why = _decoded(body, given)
        if why is not None:
            return [why]
        for error in validator.iter_errors(value):
            found.append(_describe(error))
        return found


def _decoded(body: bytes, given: str | None) -> tuple[Any, str | None]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return None, "the body is not UTF-8 text, so its schema cannot be checked"
    if given is not None and (given == "application/json" or given.endswith("+json")):
        try:
            return json.loads(text), None
        except ValueError as exc:
            return None, f"the body is not valid JSON: {exc}"
    return text, None


def _describe(error: jsonschema.ValidationError) -> str:
    pointer = json_pointer(*error.absolute_path)
    message = error.message if len(error.message) <= MAX_MESSAGE else error.message[: MAX_MESSAGE - 1] + "…"
    return f"body{pointer}: {message}"
