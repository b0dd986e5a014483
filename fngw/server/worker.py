"""fngw's gunicorn worker: gunicorn's gevent worker, keeping repeated request headers apart.

WSGI joins repeated headers into one comma-separated value, but Kernel Gateway hands notebooks
repeated headers as lists. This worker passes gunicorn's parsed header list to the application as
``environ["fngw.raw_headers"]``.
"""

from __future__ import annotations

from gunicorn.workers.ggevent import GeventWorker as _GeventWorker


class GeventWorker(_GeventWorker):
    def load_wsgi(self) -> None:
        super().load_wsgi()
        app = self.wsgi
        by_socket: dict[int, list[tuple[str, str]]] = {}
        self._headers_by_socket = by_socket

        def with_raw_headers(environ, start_response):
            environ["fngw.raw_headers"] = by_socket.get(id(environ.get("gunicorn.socket")))
            return app(environ, start_response)

        self.wsgi = with_raw_headers

    def handle_request(self, listener_name, req, sock, addr):
        # One request at a time per connection, so the socket identifies the request.
        self._headers_by_socket[id(sock)] = req.headers
        try:
            return super().handle_request(listener_name, req, sock, addr)
        finally:
            self._headers_by_socket.pop(id(sock), None)
