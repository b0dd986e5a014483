"""Result callbacks: a finished job is POSTed to the URL its caller (``X-Callback-Url``) or its
endpoint (``async.callback``) named, signed, and retried with backoff.

The body is JSON: the job (as its resource shows it) with ``response`` holding the run's
``status``, ``headers`` and ``body_base64`` (absent when the job failed without a response). The
header ``X-Fngw-Signature: sha256=<hex>`` is HMAC-SHA256 of the exact body bytes under
``jobs.callbacks.secret``; the body carries ``sent`` (RFC 3339) so a receiver can refuse replays.

Only hosts in ``jobs.callbacks.allow_hosts`` are ever contacted (checked at submission), and
redirects are not followed, so a caller cannot make the gateway reach other addresses. Callbacks
are sent from the worker that ran the job; one still being retried when that worker stops is lost
(the job's status and result stay available to poll).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
import urllib.request
from typing import Any

import gevent

from fngw.manifest import CallbackSettings

from .model import Job, StoredResponse
from .submission import representation, rfc3339

log = logging.getLogger("fngw.jobs.callbacks")

SIGNATURE_HEADER = "X-Fngw-Signature"
TIMEOUT = 10.0  # seconds for one attempt
FIRST_BACKOFF = 1.0  # seconds before the first retry; doubled each time


def signature(secret: bytes, body: bytes) -> str:
    """The ``X-Fngw-Signature`` value for ``body``: ``sha256=<hex>``."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def callback_body(job: Job, response: StoredResponse | None, base_url: str) -> bytes:
    """The JSON a callback POSTs for ``job``."""
    document: dict[str, Any] = {**representation(job, base_url), "sent": rfc3339(time.time())}
    if response is not None:
        document["response"] = {
            "status": response.status,
            "headers": [list(pair) for pair in response.headers],
            "body_base64": base64.b64encode(response.body).decode("ascii"),
        }
    return json.dumps(document).encode()


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a 3xx is an answer like any other: a failed attempt


class CallbackSender:
    """Sends callbacks in the background under ``settings``, signing with ``secret``."""

    def __init__(self, settings: CallbackSettings, secret: str, base_url: str, backoff: float = FIRST_BACKOFF):
        self.settings = settings
        self.secret = secret.encode()
        self.base_url = base_url
        self.backoff = backoff
        self._opener = urllib.request.build_opener(_NoRedirects)

    def deliver(self, job: Job, response: StoredResponse | None) -> None:
        """POST finished ``job`` (as the store has it now) and its response to its callback URL, if
        it has one, in a greenlet of its own."""
        if job.options.callback is None:
            return
        gevent.spawn(self._send, job, response)

    def _send(self, job: Job, response: StoredResponse | None) -> None:
        url = job.options.callback
        assert url is not None
        if not self.settings.allows(url):  # the manifest changed since the job was accepted
            log.warning("job %s: callback host no longer allowed; not sent", job.id)
            return
        body = callback_body(job, response, self.base_url)
        delay = self.backoff
        for attempt in range(self.settings.retries + 1):
            if self._attempt(url, body, job.id):
                return
            if attempt < self.settings.retries:
                gevent.sleep(delay)
                delay *= 2
        log.error("job %s: callback not accepted after %d attempts", job.id, self.settings.retries + 1)

    def _attempt(self, url: str, body: bytes, job_id: str) -> bool:
        request = urllib.request.Request(
            url,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                SIGNATURE_HEADER: signature(self.secret, body),
                "X-Fngw-Job-Id": job_id,
                "User-Agent": "fngw-callback",
            },
        )
        try:
            with self._opener.open(request, timeout=TIMEOUT) as answer:
                return 200 <= answer.status < 300
        except Exception as exc:  # any failure of one attempt (refused, timed out, malformed) is retried
            log.info("job %s: callback attempt failed: %s: %s", job_id, type(exc).__name__, exc)
            return False
