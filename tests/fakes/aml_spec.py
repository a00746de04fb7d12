"""The Azure ML REST spec subset (../shared/contracts/aml-rest-spec) as a request checker for the fake.

Why: a fake that accepts any body lets a request Azure would refuse pass every test. Each ARM request the fake
receives is matched to an operation of the spec by path and method, its ``api-version`` must be one the spec
defines for that operation (the fake routes by api-version), and its body is checked against the operation's
body schema: types, required properties, enums (case-insensitive, as ARM compares), formats (date-time,
duration, uuid, int32/int64) and the discriminated subtypes (``jobType``, ``jobInputType``, ...).

What the subset lacks is not guessed: a path the subset does not describe (metrics, operation status) is not
checked; a definition missing from its api-version's file is taken from another version of the same name
(``borrowed``); a discriminator value the spec lists but whose subtype is not in the subset (AutoML) is checked
against the base type only. Unknown properties are not an error (Azure ignores what it does not know).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

SPEC_ROOT = Path(__file__).resolve().parents[3] / "shared" / "contracts" / "aml-rest-spec" / "specification"

FORMATS = {
    "date-time": re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}:?\d{2})?$"),
    "duration": re.compile(r"^-?P(?!$)(\d+Y)?(\d+M)?(\d+W)?(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+(\.\d+)?S)?)?$"),
    "uuid": re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"),
}
INT_RANGES = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}
TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
}


@dataclass(frozen=True)
class Operation:
    operation_id: str
    method: str
    pattern: re.Pattern[str]
    api_version: str
    file: Path
    body: dict[str, Any] | None


@dataclass
class Problem:
    status: int
    code: str
    message: str


@dataclass
class _Check:
    """One body check: the errors found, and what could not be checked (for the fake's ``unchecked`` list)."""

    spec: RestSpec
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class RestSpec:
    def __init__(self, root: Path = SPEC_ROOT) -> None:
        if not root.is_dir():
            raise FileNotFoundError(f"{root}: the Azure ML REST spec subset (../shared/contracts) is missing")
        self.files = {
            path.resolve(): json.loads(path.read_text(encoding="utf-8"))
            for path in sorted(root.rglob("*.json"))
            if "examples" not in path.parts
        }
        self.operations = [op for path, doc in self.files.items() for op in _operations(path, doc)]

    # requests
    def check(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[Problem | None, list[str]]:
        """(the refusal Azure would answer, or None; notes on what the subset could not check)."""
        matching = [op for op in self.operations if op.method == method and op.pattern.fullmatch(path)]
        if not matching:
            return None, [f"{method} {path}: not in the spec subset, not checked"]
        version = query.get("api-version", "")
        by_version = [op for op in matching if op.api_version == version]
        if not by_version:
            known = ", ".join(sorted({op.api_version for op in matching}))
            message = f"The api-version '{version}' is not supported for {matching[0].operation_id}; supported: {known}"
            return Problem(400, "InvalidApiVersionParameter", message), []
        op = by_version[0]
        if op.body is None:
            return None, []
        check = _Check(self)
        if body is None:
            check.errors.append("body: required")
        else:
            self.validate(body, op.body, op.file, "body", check)
        if check.errors:
            message = f"{op.operation_id} ({version}) refused the request body: " + "; ".join(check.errors[:10])
            return Problem(400, "UserError", message), check.notes
        return None, check.notes

    def validate_definition(self, value: Any, name: str, api_version: str) -> list[str]:
        """Errors of ``value`` against definition ``name`` of ``api_version`` (for tests of the checker)."""
        [path] = [p for p in self.files if f"/{api_version}/" in p.as_posix() and name in self._defs(p)]
        check = _Check(self)
        self.validate(value, {"$ref": f"#/definitions/{name}"}, path, name, check)
        return check.errors

    # schemas
    def _defs(self, path: Path) -> dict[str, Any]:
        return self.files[path].get("definitions", {})

    def resolve(self, ref: str, file: Path, check: _Check) -> tuple[dict[str, Any], Path, str] | None:
        target, _, pointer = ref.partition("#")
        path = (file.parent / target).resolve() if target else file
        name = pointer.rsplit("/", 1)[-1]
        if path in self.files and name in self._defs(path):
            return self._defs(path)[name], path, name
        # Missing from this api-version's file (a routes-only file): borrow the newest definition of that name.
        for other in sorted(self.files, key=lambda p: p.parent.name, reverse=True):
            if name in self._defs(other):
                check.notes.append(f"{name}: borrowed from {other.parent.name}")
                return self._defs(other)[name], other, name
        check.notes.append(f"{name}: not in the spec subset, not checked")
        return None

    def validate(self, value: Any, schema: dict[str, Any], file: Path, where: str, check: _Check) -> None:
        self._validate(value, schema, file, where, check, dispatch=True)

    def _validate(
        self, value: Any, schema: dict[str, Any], file: Path, where: str, check: _Check, *, dispatch: bool
    ) -> None:
        if "$ref" in schema:
            resolved = self.resolve(schema["$ref"], file, check)
            if resolved is None:
                return
            target, target_file, name = resolved
            if value is None and schema.get("x-nullable"):
                return
            if (
                dispatch
                and "discriminator" in target
                and isinstance(value, dict)
                and self._dispatch(value, target, target_file, name, where, check)
            ):
                return
            self._validate(value, target, target_file, where, check, dispatch=False)
            return
        if value is None:
            if schema.get("x-nullable") is not False:
                return  # null is "not given" for an optional value; required-ness is checked by the parent
            check.errors.append(f"{where}: must not be null")
            return
        for parent in schema.get("allOf", []):
            self._validate(value, parent, file, where, check, dispatch=False)
        kind = schema.get("type") or ("object" if "properties" in schema else None)
        if kind and not _is(value, kind):
            check.errors.append(f"{where}: expected {kind}, got {type(value).__name__} {_show(value)}")
            return
        if "enum" in schema and isinstance(value, str):
            allowed = [str(v) for v in schema["enum"]]
            if value.lower() not in {v.lower() for v in allowed}:
                check.errors.append(f"{where}: {_show(value)} is not one of {', '.join(allowed)}")
        self._scalar_rules(value, schema, where, check)
        if isinstance(value, dict):
            self._object(value, schema, file, where, check)
        elif isinstance(value, list) and "items" in schema:
            for index, item in enumerate(value):
                self._validate(item, schema["items"], file, f"{where}[{index}]", check, dispatch=True)

    def _object(self, value: dict[str, Any], schema: dict[str, Any], file: Path, where: str, check: _Check) -> None:
        properties = schema.get("properties", {})
        for name in schema.get("required", []):
            prop = properties.get(name, {})
            if value.get(name) is None and not prop.get("readOnly"):
                check.errors.append(f"{where}.{name}: required")
        for name, item in value.items():
            if name in properties and not properties[name].get("readOnly"):
                self._validate(item, properties[name], file, f"{where}.{name}", check, dispatch=True)
            elif name not in properties and isinstance(schema.get("additionalProperties"), dict):
                extra = schema["additionalProperties"]
                self._validate(item, extra, file, f"{where}.{name}", check, dispatch=True)

    def _scalar_rules(self, value: Any, schema: dict[str, Any], where: str, check: _Check) -> None:
        fmt = schema.get("format", "")
        if isinstance(value, str):
            if fmt in FORMATS and not FORMATS[fmt].match(value):
                check.errors.append(f"{where}: {_show(value)} is not a valid {fmt}")
            if "pattern" in schema and not re.search(schema["pattern"], value):
                check.errors.append(f"{where}: {_show(value)} does not match {schema['pattern']}")
            if len(value) < schema.get("minLength", 0) or len(value) > schema.get("maxLength", len(value)):
                check.errors.append(f"{where}: length {len(value)} outside its limits")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            low, high = INT_RANGES.get(fmt, (None, None))
            low = schema.get("minimum", low)
            high = schema.get("maximum", high)
            if (low is not None and value < low) or (high is not None and value > high):
                check.errors.append(f"{where}: {value} outside [{low}, {high}]")

    def _dispatch(
        self, value: dict[str, Any], base: dict[str, Any], file: Path, name: str, where: str, check: _Check
    ) -> bool:
        """Validate against the subtype the discriminator names; False when the base alone must do."""
        key = base["discriminator"]
        wanted = str(value.get(key) or "")
        for sub_name, sub in self._defs(file).items():
            parents = [p.get("$ref", "").rsplit("/", 1)[-1] for p in sub.get("allOf", [])]
            if name in parents and str(sub.get("x-ms-discriminator-value", sub_name)).lower() == wanted.lower():
                self._validate(value, sub, file, where, check, dispatch=False)
                return True
        declared = base.get("properties", {}).get(key, {})
        resolved = self.resolve(declared["$ref"], file, check) if "$ref" in declared else (declared, file, key)
        allowed = [str(v).lower() for v in (resolved[0].get("enum", []) if resolved else [])]
        if wanted and wanted.lower() in allowed:
            check.notes.append(f"{where}: {key} {wanted}: its subtype is not in the subset, checked as {name}")
        elif wanted:
            check.errors.append(f"{where}.{key}: {_show(wanted)} is not a {name} type the spec defines")
        return False


def _operations(path: Path, doc: dict[str, Any]):
    version = str(doc.get("info", {}).get("version") or path.parent.name)
    for template, item in doc.get("paths", {}).items():
        pattern = re.compile(re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)), re.IGNORECASE)
        for method, op in item.items():
            if method == "parameters" or not isinstance(op, dict):
                continue
            body = next((p.get("schema") for p in op.get("parameters", []) if p.get("in") == "body"), None)
            yield Operation(op.get("operationId", ""), method.upper(), pattern, version, path, body)


def _is(value: Any, kind: str) -> bool:
    if kind in ("integer", "number") and isinstance(value, bool):
        return False
    if kind == "integer" and isinstance(value, float):
        return value.is_integer()
    return isinstance(value, TYPES.get(kind, (object,)))


def _show(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


@cache
def rest_spec() -> RestSpec:
    """Parsed once per test session."""
    return RestSpec()
