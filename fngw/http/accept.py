"""Content negotiation for answers the client must ask for by name.

A cell's display becomes the body, and a response streams as SSE or NDJSON, only when the client
names that media type in Accept: a wildcard (curl's ``*/*``) never picks one. Among the named
ones, Falcon's ``client_prefers`` decides (quality values; a tie goes to the type named first).
"""

from __future__ import annotations

from collections.abc import Iterable

import falcon


def named_preference(req: falcon.Request, candidates: Iterable[str]) -> str | None:
    """The one of ``candidates`` (lower-case media types) the client names in Accept and prefers,
    or None (none named, or only with ``q=0``). Media types match in any case, as RFC 9110 says;
    ``client_prefers`` compares them as written, so it is offered the client's own spelling."""
    wanted = set(candidates)
    spelled: dict[str, str] = {}  # lower case -> as the client wrote it, in the client's order
    for item in (req.accept or "").split(","):
        media = item.split(";", 1)[0].strip()
        if media.lower() in wanted and "*" not in media:
            spelled.setdefault(media.lower(), media)
    if not spelled:
        return None
    chosen = req.client_prefers(list(spelled.values()))  # Falcon 4: a tie goes to the first offer
    return chosen.lower() if chosen else None
