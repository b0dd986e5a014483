"""Jupyter messages for websocket tests: building an execute_request, running code to completion."""

from __future__ import annotations

import json
import uuid


def execute_request(code: str, session: str = "s") -> tuple[str, dict]:
    msg_id = uuid.uuid4().hex
    return msg_id, {
        "header": {
            "msg_id": msg_id,
            "msg_type": "execute_request",
            "username": "test",
            "session": session,
            "version": "5.3",
            "date": "",
        },
        "parent_header": {},
        "metadata": {},
        "channel": "shell",
        "content": {
            "code": code,
            "silent": False,
            "store_history": False,
            "user_expressions": {},
            "allow_stdin": False,
        },
    }


def run_code(ws, code: str, session: str = "s") -> tuple[str, str]:
    """Execute over a legacy-framed websocket: (stdout, reply status). Shell and iopub are separate
    streams, so the reply may come before the output: wait for both the reply and iopub idle."""
    msg_id, msg = execute_request(code, session)
    ws.send(json.dumps(msg))
    out, status, idle = [], None, False
    while status is None or not idle:
        reply = json.loads(ws.recv(timeout=30))
        if reply["parent_header"].get("msg_id") != msg_id:
            continue
        if reply["msg_type"] == "stream":
            out.append(reply["content"]["text"])
        elif reply["msg_type"] == "execute_reply":
            status = reply["content"]["status"]
        elif reply["msg_type"] == "status" and reply["content"]["execution_state"] == "idle":
            idle = True
    return "".join(out), status


def ws_url(peer, kernel_id: str, session: str = "s", **query: str) -> str:
    extra = "".join(f"&{k}={v}" for k, v in query.items())
    return f"ws://127.0.0.1:{peer.port}/api/kernels/{kernel_id}/channels?session_id={session}{extra}"
