import pytest

from fngw.manifest import parse_duration, parse_size


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        (0, 0.0),
        (2.5, 2.5),
        ("500ms", 0.5),
        ("30s", 30.0),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("1.5m", 90.0),
    ],
)
def test_durations_are_seconds(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5", "5 s", "-1s", "1d", "s", True, -1])
def test_bad_durations_are_refused(text):
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "size"),
    [
        (0, 0),
        (1024, 1024),
        ("10B", 10),
        ("10MB", 10_000_000),
        ("512KiB", 524_288),
        ("1GiB", 1024**3),
        ("1.5kB", 1500),
    ],
)
def test_sizes_are_bytes(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["10", "10 MB", "10mb", "1TB", True, -5])
def test_bad_sizes_are_refused(text):
    with pytest.raises(ValueError):
        parse_size(text)


def test_the_line_a_seed_cell_raised_at_is_read_from_ipythons_traceback():
    from fngw.server.pools import raising_line

    traceback = [
        "\x1b[31m----\x1b[39m",
        "\x1b[31mValueError\x1b[39m        Traceback (most recent call last)",
        "\x1b[36mCell\x1b[39m\x1b[36m \x1b[39m\x1b[32mIn[1]\x1b[39m\x1b[32m, line 3\x1b[39m\n"
        "\x1b[32m      1\x1b[39m x = 1\n",
        "\x1b[36mCell\x1b[39m\x1b[36m \x1b[39m\x1b[32mIn[7]\x1b[39m\x1b[32m, line 9\x1b[39m, in f()\n",
        "\x1b[31mValueError\x1b[39m: boom",
    ]
    assert raising_line(traceback) == 3  # the executed cell's frame, not a function another cell defined
    assert raising_line(["SyntaxError: nope"]) == 1
