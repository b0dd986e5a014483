"""WSGI environ keys that fngw's gunicorn worker fills and resources read.

The server owns the socket; resources only ever see what it puts here, so no domain package needs
to know gunicorn's own keys.
"""

from __future__ import annotations

# list[tuple[str, str]]: the request's header lines in order, names as sent (WSGI joins repeats).
RAW_HEADERS = "fngw.raw_headers"
# Callable[[Callable[[], None]], ContextManager[None]]: see ``fngw.http.disconnect``.
WATCH_DISCONNECT = "fngw.watch_disconnect"
# Callable[[], socket.socket]: hands the connection's socket to the application, which then owns
# it (a websocket); the server sends nothing more on it and closes it once the application returns.
TAKE_OVER = "fngw.take_over"
# bool: set by TAKE_OVER's callable; the server reads it after the application returned.
TAKEN_OVER = "fngw.taken_over"
# fngw.jobs.runner.JobRun: set by the job runner when it replays an accepted asynchronous call
# through the application; a client cannot set it (WSGI servers only add HTTP_* keys for headers).
JOB_RUN = "fngw.job_run"
