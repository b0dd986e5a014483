"""The shipped default manifest serves the hello example as the README shows."""

from __future__ import annotations

import json

from gateway import Gateway


def test_readme_tour_of_the_hello_example():
    with Gateway() as gw:
        gw.wait_ready("/_fngw/ready", timeout=90)
        assert gw.request("GET", "/hello")[2] == b"hello, world\n"
        assert gw.request("GET", "/hello/fngw?punctuation=!")[2] == b"hello, fngw!\n"
        status, headers, body = gw.request(
            "POST", "/echo", body=b'{"a": 1}', headers={"Content-Type": "application/json"}
        )
        assert (status, headers["content-type"]) == (200, "application/json")
        assert json.loads(body) == {"received": {"a": 1}, "keys": 1}
        status, _, body = gw.request("GET", "/_fngw/openapi.json")
        assert status == 200 and "/hello/{name}" in json.loads(body)["paths"]
