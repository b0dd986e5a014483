"""The strict YAML layer: YAML 1.2 values, located problems for every surprise."""

from fngw.manifest.yamlsource import Location, load_yaml


def load(text):
    return load_yaml(text, "f.yaml")


def rules(result):
    return [(p.line, p.col, p.path, p.rule) for p in result.problems]


def test_values_follow_yaml_1_2_not_1_1():
    result = load("a: 010\nb: 1:30\nc: 2024-01-01\nd: 0o17\ne: 0x1F\nf: 1e3\ng: ~\nh: true\ni: .inf\n")
    assert result.problems == []
    assert result.data == {
        "a": 10,
        "b": "1:30",
        "c": "2024-01-01",
        "d": 15,
        "e": 31,
        "f": 1000.0,
        "g": None,
        "h": True,
        "i": float("inf"),
    }


def test_yaml_1_1_booleans_are_errors_unless_quoted():
    result = load("a: yes\nb: 'no'\nc: Off\n")
    assert rules(result) == [(1, 4, "$.a", "yaml-ambiguous-bool"), (3, 4, "$.c", "yaml-ambiguous-bool")]
    assert result.data["b"] == "no"


def test_keys_are_always_strings():
    assert load("on: 1\n1: 2\nnull: 3\n").data == {"on": 1, "1": 2, "null": 3}


def test_duplicate_keys_name_the_first_definition():
    result = load("a: 1\nb:\n  c: 1\n  c: 2\n")
    (problem,) = result.problems
    assert (problem.line, problem.col, problem.path, problem.rule) == (4, 3, "$.b.c", "yaml-duplicate-key")
    assert "line 3, column 3" in problem.message
    assert result.data == {"a": 1, "b": {"c": 1}}


def test_second_document_is_an_error():
    result = load("a: 1\n---\nb: 2\n")
    assert rules(result) == [(2, 1, "$", "yaml-multiple-documents")]
    assert result.data is None


def test_merge_keys_are_refused():
    result = load("base: &b {x: 1}\nother:\n  <<: *b\n  y: 2\n")
    assert rules(result) == [(3, 3, "$.other", "yaml-merge-key")]


def test_syntax_error_is_located():
    result = load("a:\n  - 1\n  b: 2\n")
    assert [(p.line, p.rule) for p in result.problems] == [(3, "yaml-syntax")]


def test_unknown_tags_are_refused_and_standard_ones_honoured():
    result = load("a: !!python/name:os.system x\nb: !!str yes\n")
    assert rules(result) == [(1, 4, "$.a", "yaml-tag")]
    assert result.data["b"] == "yes"


def test_empty_document():
    assert rules(load("# nothing\n")) == [(1, 1, "$", "yaml-empty")]


def test_source_map_locates_keys_values_and_items():
    result = load("top:\n  list:\n    - x\n    - {k: v}\n")
    src = result.source
    assert src.key(("top", "list")) == Location(2, 3)
    assert src.value(("top", "list", 1, "k")) == Location(4, 11)
    assert src.value(("top", "missing", "deeper")) == Location(2, 3)  # nearest located ancestor
