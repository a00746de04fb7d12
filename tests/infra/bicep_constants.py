"""Offline check of Bicep's deploy-time-constant rules, which only the Bicep compiler enforces.

No Bicep compiler can be installed where CI runs, and checkov and pycep do not type-check, so these errors
would surface only at `azd up`:
- BCP120: a resource's `name`, `scope`, `parent`, `location` (and the other top-level properties Bicep marks
  deploy-time constant: `kind`, `sku`, `identity`, `tags`, `zones`, ...) and a module's `name` and `scope`
  must be known at the start of the deployment. Of a resource only `id`, `name`, `type` and `apiVersion` are
  (an `existing` resource's `location` is not: it is read from Azure at run time); of a module only `name`
  (its outputs are run time).
- BCP177 / BCP178: the same for an `if (...)` condition and a `for` loop's collection.
- BCP318 (a warning): reading a property of a conditional resource or module, which is null when the
  condition is false; `x.?prop ?? fallback` (or `x!.prop`) says what to do then.
The property lists follow Bicep's AzResourceTypeProvider (ReadWriteDeployTimeConstantPropertyNames,
WriteOnlyDeployTimeConstantPropertyNames, UniqueIdentifierProperties).

Run: `python tests/infra/bicep_constants.py infra` (exit 1 on a finding); tests/infra/test_bicep_constants.py.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a script by scripts/infra-check.sh: import from the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.infra.bicep_syntax import (
    Access,
    Call,
    Declaration,
    ForExpr,
    Ident,
    Index,
    Lambda,
    Node,
    NonNull,
    Obj,
    Op,
    Str,
    Template,
    parse_file,
)

READABLE_AT_START = {"id", "name", "type", "apiVersion"}
RESOURCE_CONSTANT_PROPERTIES = ["name", "scope", "parent"]
NEW_RESOURCE_CONSTANT_PROPERTIES = [
    "location",
    "kind",
    "subscriptionId",
    "resourceGroup",
    "managedBy",
    "extendedLocation",
    "zones",
    "plan",
    "sku",
    "identity",
    "managedByExtended",
    "tags",
    "asserts",
]
MODULE_CONSTANT_PROPERTIES = ["name", "scope"]
RUNTIME_FUNCTIONS = {"reference", "listKeys", "listSecrets", "listAccountSas", "pickZones"}


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.code} {self.message}"


class Checker:
    def __init__(self, template: Template) -> None:
        self.template = template
        self.decls = template.declarations
        self._var_cache: dict[str, list[str]] = {}
        self._identity_cache: dict[str, list[str]] = {}

    # what makes an expression a run-time value: a list of reasons, empty when it is known at the start
    def runtime(self, node: Node | None, local: frozenset[str] = frozenset()) -> list[str]:
        if node is None:
            return []
        if isinstance(node, (Access, Index, Call, NonNull)):
            root, path = _chain(node)
            symbol = self.decls.get(root.name) if isinstance(root, Ident) and root.name not in local else None
            if symbol and symbol.kind in ("resource", "module"):
                reasons = self._symbol_access(symbol, path)
                return reasons + [r for n in _chain_arguments(node) for r in self.runtime(n, local)]
            if isinstance(root, Ident) and root.name in RUNTIME_FUNCTIONS:
                return [f"{root.name}() (evaluated at run time)"]
            if isinstance(root, Ident) and root.name.startswith("list") and path and path[0] == "()":
                return [f"{root.name}() (evaluated at run time)"]
            return [r for n in [root, *_chain_arguments(node)] for r in self.runtime(n, local)]
        if isinstance(node, Ident):
            declaration = self.decls.get(node.name)
            if node.name in local or declaration is None:
                return []
            if declaration.kind == "var":
                return self._variable(declaration)
            if declaration.kind in ("resource", "module"):
                return self._identity(declaration)
            return []
        if isinstance(node, ForExpr):
            inner = local | set(node.variables)
            return [
                *self.runtime(node.collection, local),
                *self.runtime(node.condition, inner),
                *self.runtime(node.body, inner),
            ]
        if isinstance(node, Lambda):
            return self.runtime(node.body, local | set(node.params))
        return [r for child in _children(node) for r in self.runtime(child, local)]

    def _symbol_access(self, declaration: Declaration, path: list[str]) -> list[str]:
        first = next((p for p in path if p not in ("[]", "!")), None)
        if first is None:
            return self._identity(declaration)
        if "()" in path:
            method = path[path.index("()") - 1]
            return [f"{declaration.name}.{method}() (a call evaluated at run time)"]
        if declaration.kind == "module":
            if first == "name":
                return self._identity(declaration)
            return [f"{declaration.name}.{first} (an output of module {declaration.name}: known only once it ran)"]
        if first in READABLE_AT_START:
            return self._identity(declaration)
        what = "existing resource" if declaration.existing else "resource"
        return [f"{declaration.name}.{first} (a run-time property of the {what} {declaration.name})"]

    def _variable(self, declaration: Declaration) -> list[str]:
        if declaration.name not in self._var_cache:
            self._var_cache[declaration.name] = []  # a cycle is the compiler's error, not ours
            reasons = self.runtime(declaration.value)
            self._var_cache[declaration.name] = [f"variable {declaration.name} = {r}" for r in reasons]
        return self._var_cache[declaration.name]

    def _identity(self, declaration: Declaration) -> list[str]:
        """Reasons a resource's own id/name is not known at the start (its name, scope or parent are not)."""
        if declaration.name not in self._identity_cache:
            self._identity_cache[declaration.name] = []
            body = declaration.body
            values = dict((key, value) for key, value, _ in body.items) if body else {}
            reasons = [r for key in ("name", "scope", "parent") for r in self.runtime(values.get(key))]
            self._identity_cache[declaration.name] = reasons
        return self._identity_cache[declaration.name]

    # the positions that must be deploy-time constants
    def findings(self) -> list[Finding]:
        found: list[Finding] = []
        for declaration in self.decls.values():
            if declaration.kind not in ("resource", "module"):
                continue
            local = frozenset(declaration.loop.variables) if declaration.loop else frozenset()
            what = f"{declaration.kind} {declaration.name}"
            for reason in self.runtime(declaration.condition):
                found.append(self._finding(declaration.line, "BCP177", f"the condition of {what} uses {reason}"))
            if declaration.loop:
                for reason in self.runtime(declaration.loop.collection):
                    found.append(self._finding(declaration.line, "BCP178", f"the loop of {what} uses {reason}"))
            if declaration.kind == "module":
                names = MODULE_CONSTANT_PROPERTIES
            elif declaration.existing:
                names = ["scope", "parent"]  # an existing resource may take a run-time name (Bicep 0.7+)
            else:
                names = RESOURCE_CONSTANT_PROPERTIES + NEW_RESOURCE_CONSTANT_PROPERTIES
            for key, value, line in declaration.body.items if declaration.body else []:
                if key in names:
                    for reason in self.runtime(value, local):
                        found.append(
                            self._finding(
                                line,
                                "BCP120",
                                f"{what}: '{key}' must be known at the start of the deployment, but uses {reason}",
                            )
                        )
        found.extend(self._nullable_accesses())
        return found

    def _nullable_accesses(self) -> list[Finding]:
        conditional = {name for name, d in self.decls.items() if d.condition is not None and not d.loop}
        found: list[Finding] = []
        for declaration in self.decls.values():
            for node in _walk(declaration.value):
                if (
                    isinstance(node, Access)
                    and isinstance(node.base, Ident)
                    and node.base.name in conditional
                    and not node.safe
                    and node.base.name != declaration.name
                ):
                    found.append(
                        self._finding(
                            node.line,
                            "BCP318",
                            f"{node.base.name}.{node.name}: {node.base.name} is conditional (null when its "
                            f"condition is false); write {node.base.name}.?{node.name} ?? <fallback>",
                        )
                    )
        return found

    def _finding(self, line: int, code: str, message: str) -> Finding:
        return Finding(self.template.path, line, code, message)


def _chain(node: Node) -> tuple[Node, list[str]]:
    """The root of an access chain and its steps, outermost last: a.b[0].c() -> (a, ['b', '[]', 'c', '()'])."""
    path: list[str] = []
    while True:
        if isinstance(node, Access):
            path.append(node.name)
            node = node.base
        elif isinstance(node, Index):
            path.append("[]")
            node = node.base
        elif isinstance(node, NonNull):
            path.append("!")
            node = node.expr
        elif isinstance(node, Call):
            path.append("()")
            node = node.callee
        else:
            return node, path[::-1]


def _chain_arguments(node: Node) -> list[Node]:
    """Index expressions and call arguments along an access chain: they are evaluated too."""
    found: list[Node] = []
    while isinstance(node, (Access, Index, Call, NonNull)):
        if isinstance(node, Index):
            found.append(node.index)
        if isinstance(node, Call):
            found.extend(node.args)
        node = node.callee if isinstance(node, Call) else node.expr if isinstance(node, NonNull) else node.base
    return found


def _children(node: Node) -> list[Node]:
    if isinstance(node, Str):
        return [p for p in node.parts if isinstance(p, Node)]
    if isinstance(node, Op):
        return node.operands
    if isinstance(node, Obj):
        return [value for _, value, _ in node.items]
    if hasattr(node, "items"):
        return list(node.items)
    return []


def _walk(node: Node | None):
    if node is None:
        return
    yield node
    if isinstance(node, Access):
        yield from _walk(node.base)
    elif isinstance(node, Index):
        yield from _walk(node.base)
        yield from _walk(node.index)
    elif isinstance(node, Call):
        yield from _walk(node.callee)
        for arg in node.args:
            yield from _walk(arg)
    elif isinstance(node, NonNull):
        pass  # x!.prop: the author asserted it is not null
    elif isinstance(node, ForExpr):
        for child in (node.collection, node.condition, node.body):
            yield from _walk(child)
    elif isinstance(node, Lambda):
        yield from _walk(node.body)
    else:
        for child in _children(node):
            yield from _walk(child)


def check_template(template: Template) -> list[Finding]:
    return Checker(template).findings()


def check_paths(paths: list[Path]) -> list[Finding]:
    return [finding for path in paths for finding in check_template(parse_file(path))]


def main(argv: list[str]) -> int:
    roots = [Path(arg) for arg in argv] or [Path("infra")]
    files = sorted(p for root in roots for p in ([root] if root.is_file() else root.rglob("*.bicep")))
    findings = check_paths(files)
    for finding in findings:
        print(f"bicep-constants: {finding}", file=sys.stderr)
    print(f"bicep-constants: {len(files)} Bicep files, {len(findings)} deploy-time-constant finding(s)")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
