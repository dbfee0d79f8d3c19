"""Structured output: an answer must match the JSON schema its request asked for.

The schema comes from the request (`response_format: {type: json_schema, json_schema: {schema}}`, or
`json_object` for any JSON object); `validate` says what is wrong in words a model can act on, for
the one corrective retry a policy may allow. Validators are cached per schema: an application sends
the same few schemas over and over.
"""

from __future__ import annotations

from typing import Any

import orjson
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

_validators: dict[bytes, Draft202012Validator] = {}
ANY_OBJECT: dict[str, Any] = {"type": "object"}


def expected_schema(body: dict[str, Any]) -> dict[str, Any] | None:
    """The schema the request asks its answer to match, or None."""
    rf = body.get("response_format")
    if not isinstance(rf, dict):
        return None
    if rf.get("type") == "json_object":
        return ANY_OBJECT
    js = rf.get("json_schema")
    if rf.get("type") == "json_schema" and isinstance(js, dict) and isinstance(js.get("schema"), dict):
        return js["schema"]
    return None


def validate(text: str, schema: dict[str, Any]) -> str | None:
    """None if `text` is JSON matching `schema`, else what is wrong (first problem, with its path)."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as e:
        return f"the answer is not valid JSON ({e})"
    key = orjson.dumps(schema, option=orjson.OPT_SORT_KEYS)
    v = _validators.get(key)
    if v is None:
        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as e:
            return f"the request's schema is invalid: {e.message}"
        if len(_validators) > 1000:
            _validators.clear()
        v = _validators[key] = Draft202012Validator(schema)
    error = next(iter(v.iter_errors(value)), None)
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path) or "the top level"
    return f"at {where}: {error.message}"
