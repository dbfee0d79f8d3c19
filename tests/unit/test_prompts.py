"""Prompt templates: declared and typed variables, plain substitution, parameters, references by
label or version, and clear errors."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ostiary.llmops.prompts import PromptError, Snapshot, Version, parse_template


def _snapshot() -> Snapshot:
    v1 = parse_template({"messages": [{"role": "system", "content": "You help {{ customer }} with {{topic}}."}],
                         "variables": {"customer": {"type": "string"}, "topic": {"required": False, "default": "billing"},
                                       "limit": {"type": "integer", "required": False}},
                         "params": {"temperature": 0.1, "max_tokens": 50}})
    v2 = parse_template({"messages": [{"role": "system", "content": "v2 for {{customer}}"}],
                         "variables": {"customer": {}}})
    now = datetime.now(UTC)
    return Snapshot({("support", 1): Version("support", 1, v1, "d1", now, "cli"),
                     ("support", 2): Version("support", 2, v2, "d2", now, "cli")},
                    {("support", "production"): 1, ("support", "staging"): 2})


def test_render_by_label_version_and_default() -> None:
    snap = _snapshot()
    r = snap.render("support", {"customer": "Acme"})
    assert r.ref == "support@1" and r.label == "production"
    assert r.messages == [{"role": "system", "content": "You help Acme with billing."}]
    assert r.params == {"temperature": 0.1, "max_tokens": 50}
    assert snap.render("support@staging", {"customer": "Acme"}).messages[0]["content"] == "v2 for Acme"
    assert snap.render("support@2", {"customer": "Acme"}).label is None


def test_values_are_inserted_as_text_never_evaluated() -> None:
    r = _snapshot().render("support@1", {"customer": "{{topic}} <script>", "topic": "x"})
    assert r.messages[0]["content"] == "You help {{topic}} <script> with x."


@pytest.mark.parametrize(("ref", "variables", "message"), [
    ("support@1", {}, "needs the variable 'customer'"),
    ("support@1", {"customer": "A", "colour": "red"}, "has no variables colour"),
    ("support@1", {"customer": 7}, "'customer' must be of type string"),
    ("support@1", {"customer": "A", "limit": "ten"}, "'limit' must be of type integer"),
    ("support@1", ["A"], "variables must be an object"),
    ("support@canary", {}, "has no label 'canary'"),
    ("support@9", {}, "has no version 9"),
    ("other", {}, "has no label 'production'"),
])
def test_bad_references_and_variables_are_clear_errors(ref: str, variables: object, message: str) -> None:
    with pytest.raises(PromptError, match=message):
        _snapshot().render(ref, variables)


def test_templates_are_checked_when_created() -> None:
    with pytest.raises(PromptError, match="undeclared variables: who"):
        parse_template({"messages": [{"role": "user", "content": "hi {{who}}"}]})
    with pytest.raises(PromptError, match="unknown params: model_name"):
        parse_template({"messages": [{"role": "user", "content": "hi"}], "params": {"model_name": "x"}})
    with pytest.raises(PromptError, match="at least one message"):
        parse_template({"messages": []})
    with pytest.raises(PromptError, match="invalid prompt template"):
        parse_template({"messages": [{"role": "robot", "content": "hi"}]})


def test_a_version_is_ascii_digits() -> None:
    # "²".isdigit() is true and int("²") fails: such a reference is a label, and there is none.
    with pytest.raises(PromptError, match="no label") as e:
        _snapshot().render("support@\u00b2", {"customer": "A"})
    assert e.value.missing
    with pytest.raises(PromptError, match="no label"):
        _snapshot().render("support@" + "9" * 5000, {"customer": "A"})
