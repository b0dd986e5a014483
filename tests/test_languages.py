"""The REQUEST assignment in each kernel language: the variable holds the text, and no request data
is ever interpreted as code. Checked with the real interpreter where this machine has it."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from fngw.endpoints.languages import request_assignment

HOSTILE = [
    "plain",
    "quote ' double \" backslash \\ end",
    "$(touch /tmp/fngw-pwned) `touch /tmp/fngw-pwned` ${HOME} $HOME @{[ `id` ]} #{`id`}",
    "'; import os; os.system('touch /tmp/fngw-pwned'); '",
    '""" \'\'\' )" )---" \\u0022 \\x22 \u2028 \u00e9 \U0001f600 \t\n\r',
]

RUNNERS = {
    # language: (interpreter argv, statement that prints REQUEST after the assignment)
    "python": (["python3", "-c"], "print(REQUEST, end='')"),
    "bash": (["bash", "-c"], 'printf "%s" "$REQUEST"'),
    "perl": (["perl", "-e"], "print $REQUEST;"),
    "javascript": (["node", "-e"], "process.stdout.write(REQUEST)"),
    "ruby": (["ruby", "-e"], "print REQUEST"),
}


def request_json(value: str) -> str:
    return json.dumps({"body": value, "args": {}, "path": {}, "headers": {}})


@pytest.mark.parametrize("language", sorted(RUNNERS))
@pytest.mark.parametrize("value", HOSTILE)
def test_the_interpreter_sees_exactly_the_text(language, value, tmp_path):
    argv, show = RUNNERS[language]
    if shutil.which(argv[0]) is None:
        pytest.skip(f"{argv[0]} is not installed here")
    text = request_json(value)
    program = f"{request_assignment(language, text)}; {show}"
    run = subprocess.run([*argv, program], capture_output=True, timeout=30, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stdout.decode() == text
    assert not (tmp_path / "fngw-pwned").exists()


@pytest.mark.parametrize("value", HOSTILE)
def test_languages_without_an_interpreter_here_use_inert_literals(value):
    text = request_json(value)
    r = request_assignment("R", text)
    assert r.startswith('REQUEST <- r"-') and r.endswith(")" + r.split('r"', 1)[1].split("(", 1)[0] + '"')
    julia = request_assignment("julia", text)
    assert julia == f'REQUEST = String(hex2bytes("{text.encode().hex()}"))'
    scala = request_assignment("scala", text)
    assert set(scala.split('decode("', 1)[1].split('")', 1)[0]) <= set(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="
    )
    other = request_assignment("cobol", text)
    body = other[len('REQUEST = "') : -1]
    assert re.fullmatch(r"[A-Za-z0-9 ,:._\-\[\]{}\\]*", body)  # only inert characters and \u escapes
    assert json.loads('"' + body + '"') == text


def test_r_raw_string_delimiter_grows_past_the_text():
    text = 'a)-" b)--" c'
    assert request_assignment("r", text) == f'REQUEST <- r"---({text})---"'
