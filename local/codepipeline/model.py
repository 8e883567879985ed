"""Input validation against the installed botocore model of CodePipeline (2015-07-09).

AWS validates requests server-side with validators generated from the same Smithy model botocore
ships (``botocore/data/codepipeline/2015-07-09/service-2.json``): required members, string
lengths, enums, patterns (a full match, like AWS's Java validators), integer ranges. A violation
is a ``ValidationException`` (HTTP 400) worded "N validation errors detected: ...", as AWS words it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from functools import lru_cache
from typing import Any

import botocore.session
from botocore.model import ListShape, MapShape, OperationModel, Shape, StructureShape


class ApiError(Exception):
    """An AWS error answer: error code, message and HTTP status."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status


@lru_cache(maxsize=1)
def service_model() -> Any:
    """The installed botocore model of CodePipeline (loading it is the slow part: cached)."""
    return botocore.session.get_session().get_service_model("codepipeline")


def operation_model(operation: str) -> OperationModel:
    found: OperationModel = service_model().operation_model(operation)
    return found


def enum_values(shape_name: str) -> tuple[str, ...]:
    """The enum of a model string shape, e.g. ``JobStatus`` or ``ActionExecutionStatus``."""
    return tuple(service_model().shape_for(shape_name).metadata["enum"])


def modeled_errors(operation: str) -> frozenset[str]:
    """Error codes the model lists for an operation (a fake must not invent others)."""
    return frozenset(shape.name for shape in operation_model(operation).error_shapes)


@lru_cache(maxsize=64)
def _compiled(pattern: str) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern)
    except re.error:  # a Java-only construct: skip rather than reject valid input
        return None


def _shown(value: Any, shape: Shape) -> str:
    if shape.metadata.get("sensitive"):
        return ""
    text = str(value)
    # AWS echoes the whole value; cut it so a 5,000-character message stays readable in a test.
    return f" '{text[:200]}...'" if len(text) > 200 else f" '{text}'"


def _violation(value: Any, path: str, shape: Shape, constraint: str) -> str:
    return f"Value{_shown(value, shape)} at '{path}' failed to satisfy constraint: {constraint}"


def _length_problems(meta: Mapping[str, Any], size: int) -> list[str]:
    found = []
    if "min" in meta and size < meta["min"]:
        found.append(f"Member must have length greater than or equal to {meta['min']}")
    if "max" in meta and size > meta["max"]:
        found.append(f"Member must have length less than or equal to {meta['max']}")
    return found


def _scalar_problems(shape: Shape, value: Any) -> list[str]:
    meta = shape.metadata
    found: list[str] = []
    if shape.type_name == "string":
        if "enum" in meta and value not in meta["enum"]:
            found.append(f"Member must satisfy enum value set: [{', '.join(meta['enum'])}]")
        found += _length_problems(meta, len(value))
        pattern = _compiled(meta["pattern"]) if "pattern" in meta else None
        if pattern is not None and not pattern.fullmatch(value):
            found.append(f"Member must satisfy regular expression pattern: {meta['pattern']}")
    elif shape.type_name in ("integer", "long"):
        if "min" in meta and value < meta["min"]:
            found.append(f"Member must have value greater than or equal to {meta['min']}")
        if "max" in meta and value > meta["max"]:
            found.append(f"Member must have value less than or equal to {meta['max']}")
    return found


_PYTHON_TYPES: dict[str, tuple[type, ...]] = {
    "structure": (dict,),
    "map": (dict,),
    "list": (list,),
    "string": (str,),
    "integer": (int,),
    "long": (int,),
    "boolean": (bool,),
    "timestamp": (datetime, int, float),  # CBOR tag 1 decodes to datetime, JSON sends epoch
}


def _check_type(shape: Shape, value: Any, path: str) -> None:
    expected = _PYTHON_TYPES.get(shape.type_name)
    wrong_bool = isinstance(value, bool) and shape.type_name != "boolean"
    if expected is not None and (not isinstance(value, expected) or wrong_bool):
        raise ApiError("SerializationException", f"Unexpected value type at '{path}'")


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def collect_violations(shape: Shape, value: Any, path: str, errors: list[str]) -> None:
    """Append AWS-style constraint violations of ``value`` against a botocore shape."""
    _check_type(shape, value, path)
    if isinstance(shape, StructureShape):
        for name in shape.metadata.get("required", []):
            if value.get(name) is None:
                errors.append(
                    f"Value null at '{_join(path, name)}' failed to satisfy constraint: "
                    "Member must not be null"
                )
        for name, member in shape.members.items():
            if value.get(name) is not None:
                collect_violations(member, value[name], _join(path, name), errors)
    elif isinstance(shape, ListShape):
        errors += [
            _violation(value, path, shape, c) for c in _length_problems(shape.metadata, len(value))
        ]
        for index, item in enumerate(value, start=1):
            collect_violations(shape.member, item, _join(path, f"{index}.member"), errors)
    elif isinstance(shape, MapShape):
        errors += [
            _violation(value, path, shape, c) for c in _length_problems(shape.metadata, len(value))
        ]
        key_problems: list[str] = []
        for key, item in value.items():
            _check_type(shape.key, key, path)
            key_problems += [c for c in _scalar_problems(shape.key, key) if c not in key_problems]
            collect_violations(shape.value, item, _join(path, key), errors)
        if key_problems:
            constraint = f"Map keys must satisfy constraint: [{', '.join(key_problems)}]"
            errors.append(_violation(value, path, shape, constraint))
    else:
        errors += [_violation(value, path, shape, c) for c in _scalar_problems(shape, value)]


def raise_if_invalid(errors: list[str]) -> None:
    if errors:
        noun = "error" if len(errors) == 1 else "errors"
        detail = "; ".join(errors)
        raise ApiError("ValidationException", f"{len(errors)} validation {noun} detected: {detail}")


def validate_input(operation: str, params: Mapping[str, Any]) -> None:
    """Validate request parameters against the installed botocore model, as AWS does."""
    errors: list[str] = []
    collect_violations(operation_model(operation).input_shape, params, "", errors)
    raise_if_invalid(errors)


def shape_violations(shape_name: str, value: Any) -> list[str]:
    """Violations of a value against a named model shape (e.g. ``JobData``), for admin checks."""
    errors: list[str] = []
    collect_violations(service_model().shape_for(shape_name), value, "", errors)
    return errors
