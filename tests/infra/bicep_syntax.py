"""A small Bicep reader: tokens, expressions and declarations, with line numbers.

Why not pycep's tree: it drops what the deploy-time-constant rules hinge on. It stores an identifier and a
string literal alike (``name: stg`` and ``name: 'stg'`` both read "stg"), loses the safe-dereference ``.?``
and the non-null ``!``, and nests ``a.b ?? c`` as ``a.(b ?? c)``. This reader keeps each of them. It covers
the Bicep this project writes (no user-defined types or functions are read: their declarations are skipped).
Standard library only, so scripts/infra-check.sh can run it with any python.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class BicepSyntaxError(ValueError):
    def __init__(self, message: str, line: int) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line


@dataclass(frozen=True)
class Token:
    kind: str  # ident, number, string, punct, newline, eof
    value: Any
    line: int


# ---- expressions -------------------------------------------------------------------------------------------


@dataclass
class Node:
    line: int


@dataclass
class Literal(Node):
    value: Any


@dataclass
class Str(Node):
    parts: list[Any]  # str pieces and Node holes (interpolations)


@dataclass
class Ident(Node):
    name: str


@dataclass
class Access(Node):
    base: Node
    name: str
    safe: bool = False  # .?name


@dataclass
class Index(Node):
    base: Node
    index: Node
    safe: bool = False  # [?index]


@dataclass
class Call(Node):
    callee: Node  # Ident (function) or Access (method on a resource or namespace)
    args: list[Node]


@dataclass
class NonNull(Node):
    expr: Node  # expr!


@dataclass
class Op(Node):
    op: str  # unary (!, -), binary, '?:' for the ternary
    operands: list[Node]


@dataclass
class Obj(Node):
    items: list[tuple[str, Node, int]]  # key, value, line of the key


@dataclass
class Arr(Node):
    items: list[Node]


@dataclass
class ForExpr(Node):
    variables: list[str]
    collection: Node
    condition: Node | None
    body: Node


@dataclass
class Lambda(Node):
    params: list[str]
    body: Node


# ---- declarations ------------------------------------------------------------------------------------------


@dataclass
class Declaration:
    kind: str  # param, var, output, resource, module
    name: str
    line: int
    value: Node | None = None  # var/output value, param default, resource/module body
    type_ref: str = ""  # resource 'type@version' or module path
    existing: bool = False
    condition: Node | None = None
    loop: ForExpr | None = None

    @property
    def body(self) -> Obj | None:
        """The resource or module body object (inside a condition or a loop)."""
        node = self.loop.body if self.loop else self.value
        return node if isinstance(node, Obj) else None


@dataclass
class Template:
    path: str
    declarations: dict[str, Declaration] = field(default_factory=dict)

    def of_kind(self, kind: str) -> dict[str, Declaration]:
        return {name: d for name, d in self.declarations.items() if d.kind == kind}


# ---- tokenizer ---------------------------------------------------------------------------------------------

PUNCTUATION = sorted(
    ["??", ".?", "[?", "==", "!=", "<=", ">=", "=~", "!~", "&&", "||", "=>", "::", "...", *"{}[](),:.?!=<>+-*/%@|"],
    key=len,
    reverse=True,
)
ESCAPES = {"\\": "\\", "'": "'", "n": "\n", "r": "\r", "t": "\t", "$": "$"}
IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def tokenize(text: str) -> list[Token]:
    tokens, _ = _tokenize(text, 0, 1, stop_at_brace=False)
    return tokens


def _tokenize(text: str, pos: int, line: int, stop_at_brace: bool) -> tuple[list[Token], int]:
    """Tokens from pos; inside an interpolation, stop at the '}' that closes it (returns the position after)."""
    tokens: list[Token] = []
    depth = 0
    while pos < len(text):
        char = text[pos]
        if char == "\n":
            if not tokens or tokens[-1].kind != "newline":
                tokens.append(Token("newline", "\n", line))
            line += 1
            pos += 1
        elif char in " \t\r":
            pos += 1
        elif text.startswith("//", pos):
            pos = text.find("\n", pos) if "\n" in text[pos:] else len(text)
        elif text.startswith("/*", pos):
            end = text.find("*/", pos + 2)
            if end < 0:
                raise BicepSyntaxError("unterminated /* comment", line)
            line += text.count("\n", pos, end)
            pos = end + 2
        elif text.startswith("'''", pos):
            end = text.find("'''", pos + 3)
            if end < 0:
                raise BicepSyntaxError("unterminated ''' string", line)
            tokens.append(Token("string", [text[pos + 3 : end]], line))
            line += text.count("\n", pos, end)
            pos = end + 3
        elif char == "'":
            parts, pos, end_line = _string(text, pos + 1, line)
            tokens.append(Token("string", parts, line))
            line = end_line
        elif char.isdigit():
            match = re.compile(r"\d+").match(text, pos)
            assert match
            tokens.append(Token("number", int(match.group()), line))
            pos = match.end()
        elif match := IDENT.match(text, pos):
            tokens.append(Token("ident", match.group(), line))
            pos = match.end()
        else:
            punct = next((p for p in PUNCTUATION if text.startswith(p, pos)), None)
            if punct is None:
                raise BicepSyntaxError(f"unexpected character {char!r}", line)
            if stop_at_brace and punct == "}" and depth == 0:
                return tokens, pos + 1
            depth += {"{": 1, "}": -1}.get(punct, 0)
            tokens.append(Token("punct", punct, line))
            pos += len(punct)
    if stop_at_brace:
        raise BicepSyntaxError("unterminated ${ interpolation", line)
    tokens.append(Token("eof", None, line))
    return tokens, pos


def _string(text: str, pos: int, line: int) -> tuple[list[Any], int, int]:
    parts: list[Any] = []
    chunk = ""
    start_line = line
    while pos < len(text):
        char = text[pos]
        if char == "'":
            return [*parts, chunk] if chunk or not parts else parts, pos + 1, line
        if char == "\n":
            raise BicepSyntaxError("unterminated string (a newline inside '...')", start_line)
        if char == "\\":
            nxt = text[pos + 1 : pos + 2]
            if nxt == "u":
                close = text.find("}", pos)
                chunk += chr(int(text[pos + 3 : close], 16))
                pos = close + 1
                continue
            if nxt not in ESCAPES:
                raise BicepSyntaxError(f"unknown escape \\{nxt} in a string", line)
            chunk += ESCAPES[nxt]
            pos += 2
        elif text.startswith("${", pos):
            if chunk:
                parts.append(chunk)
                chunk = ""
            inner, pos = _tokenize(text, pos + 2, line, stop_at_brace=True)
            parts.append([*inner, Token("eof", None, line)])
        else:
            chunk += char
            pos += 1
    raise BicepSyntaxError("unterminated string", start_line)


# ---- parser ------------------------------------------------------------------------------------------------

BINARY = [["??"], ["||"], ["&&"], ["==", "!=", "=~", "!~"], ["<", ">", "<=", ">="], ["+", "-"], ["*", "/", "%"]]


class Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.pos = 0

    # token helpers
    def peek(self, offset: int = 0) -> Token:
        return self.tokens[min(self.pos + offset, len(self.tokens) - 1)]

    def next(self) -> Token:
        token = self.peek()
        self.pos += 1
        return token

    def at(self, value: str, kind: str = "punct") -> bool:
        token = self.peek()
        return token.kind == kind and token.value == value

    def expect(self, value: str, kind: str = "punct") -> Token:
        token = self.next()
        if token.kind != kind or token.value != value:
            raise BicepSyntaxError(f"expected {value!r}, found {token.value!r}", token.line)
        return token

    def skip_newlines(self) -> None:
        while self.peek().kind == "newline":
            self.pos += 1

    # expressions
    def expression(self) -> Node:
        if self._lambda_ahead():
            return self._lambda()
        condition = self._binary(0)
        if self.at("?"):
            line = self.next().line
            self.skip_newlines()
            true_value = self.expression()
            self.skip_newlines()
            self.expect(":")
            self.skip_newlines()
            return Op(line, "?:", [condition, true_value, self.expression()])
        return condition

    def _lambda_ahead(self) -> bool:
        if self.peek().kind == "ident" and self.peek(1).value == "=>":
            return True
        if not self.at("("):
            return False
        depth, offset = 0, 0
        while True:
            token = self.peek(offset)
            if token.kind == "eof":
                return False
            depth += {"(": 1, ")": -1}.get(token.value, 0) if token.kind == "punct" else 0
            if depth == 0:
                return self.peek(offset + 1).value == "=>"
            offset += 1

    def _lambda(self) -> Node:
        line = self.peek().line
        params: list[str] = []
        if self.at("("):
            self.next()
            while not self.at(")"):
                params.append(self.next().value)
                if self.at(","):
                    self.next()
            self.next()
        else:
            params.append(self.next().value)
        self.expect("=>")
        self.skip_newlines()
        return Lambda(line, params, self.expression())

    def _binary(self, level: int) -> Node:
        if level == len(BINARY):
            return self._unary()
        left = self._binary(level + 1)
        while self.peek().kind == "punct" and self.peek().value in BINARY[level]:
            token = self.next()
            self.skip_newlines()
            left = Op(token.line, token.value, [left, self._binary(level + 1)])
        return left

    def _unary(self) -> Node:
        if self.peek().kind == "punct" and self.peek().value in ("!", "-"):
            token = self.next()
            return Op(token.line, token.value, [self._unary()])
        return self._postfix(self._primary())

    def _postfix(self, node: Node) -> Node:
        while True:
            token = self.peek()
            if token.kind != "punct":
                return node
            if token.value in (".", ".?", "::"):
                self.next()
                name = self.next()
                if name.kind != "ident":
                    raise BicepSyntaxError(f"expected a property name after {token.value!r}", token.line)
                node = Access(token.line, node, name.value, safe=token.value == ".?")
            elif token.value in ("[", "[?"):
                self.next()
                self.skip_newlines()
                index = self.expression()
                self.skip_newlines()
                self.expect("]")
                node = Index(token.line, node, index, safe=token.value == "[?")
            elif token.value == "(" and isinstance(node, (Ident, Access)):
                node = Call(token.line, node, self._arguments())
            elif token.value == "!" and self.peek(1).value != "=":
                self.next()
                node = NonNull(token.line, node)
            else:
                return node

    def _arguments(self) -> list[Node]:
        self.expect("(")
        args: list[Node] = []
        self.skip_newlines()
        while not self.at(")"):
            args.append(self.expression())
            self.skip_newlines()
            if self.at(","):
                self.next()
                self.skip_newlines()
        self.next()
        return args

    def _primary(self) -> Node:
        token = self.next()
        if token.kind == "number":
            return Literal(token.line, token.value)
        if token.kind == "string":
            return Str(token.line, [Parser(p).expression() if isinstance(p, list) else p for p in token.value])
        if token.kind == "ident":
            if token.value in ("true", "false"):
                return Literal(token.line, token.value == "true")
            if token.value == "null":
                return Literal(token.line, None)
            return Ident(token.line, token.value)
        if token.value == "(":
            self.skip_newlines()
            inner = self.expression()
            self.skip_newlines()
            self.expect(")")
            return inner
        if token.value == "{":
            return self._object(token.line)
        if token.value == "[":
            return self._array(token.line)
        raise BicepSyntaxError(f"unexpected {token.value!r} in an expression", token.line)

    def _object(self, line: int) -> Obj:
        items: list[tuple[str, Node, int]] = []
        self.skip_newlines()
        while not self.at("}"):
            if self.at("@"):  # a decorator on a property (types only): skip it
                self.next()
                self._postfix(self._primary())
                self.skip_newlines()
                continue
            key = self.next()
            if key.value == "...":
                items.append(("...", self.expression(), key.line))
            else:
                if key.kind == "string":
                    name = "".join(p for p in key.value if isinstance(p, str))
                elif key.kind == "ident":
                    name = key.value
                else:
                    raise BicepSyntaxError(f"expected a property name, found {key.value!r}", key.line)
                self.expect(":")
                self.skip_newlines()
                items.append((name, self.expression(), key.line))
            if self.at(","):
                self.next()
            self.skip_newlines()
        self.next()
        return Obj(line, items)

    def _array(self, line: int) -> Node:
        self.skip_newlines()
        if self.at("for", "ident"):
            return self._for(line)
        items: list[Node] = []
        while not self.at("]"):
            items.append(self.expression())
            if self.at(","):
                self.next()
            self.skip_newlines()
        self.next()
        return Arr(line, items)

    def _for(self, line: int) -> ForExpr:
        self.expect("for", "ident")
        variables: list[str] = []
        if self.at("("):
            self.next()
            while not self.at(")"):
                variables.append(self.next().value)
                if self.at(","):
                    self.next()
            self.next()
        else:
            variables.append(self.next().value)
        self.expect("in", "ident")
        collection = self.expression()
        self.expect(":")
        self.skip_newlines()
        condition = None
        if self.at("if", "ident"):
            self.next()
            self.expect("(")
            condition = self.expression()
            self.expect(")")
            self.skip_newlines()
        body = self.expression()
        self.skip_newlines()
        self.expect("]")
        return ForExpr(line, variables, collection, condition, body)

    # declarations
    def template(self, path: str) -> Template:
        template = Template(path)
        while True:
            self.skip_newlines()
            token = self.peek()
            if token.kind == "eof":
                return template
            if self.at("@"):
                self.next()
                self._postfix(self._primary())
                continue
            declaration = self._declaration()
            if declaration:
                template.declarations[declaration.name] = declaration

    def _declaration(self) -> Declaration | None:
        keyword = self.next()
        if keyword.kind != "ident":
            raise BicepSyntaxError(f"unexpected {keyword.value!r} at the top level", keyword.line)
        if keyword.value in ("param", "var", "output"):
            name = self.next().value
            value = None
            if keyword.value != "var":
                self._skip_type()
            if self.at("="):
                self.next()
                self.skip_newlines()
                value = self.expression()
            return Declaration(keyword.value, name, keyword.line, value)
        if keyword.value in ("resource", "module"):
            name = self.next().value
            type_ref = "".join(p for p in self.next().value if isinstance(p, str))
            existing = self.at("existing", "ident")
            if existing:
                self.next()
            self.expect("=")
            declaration = Declaration(keyword.value, name, keyword.line, type_ref=type_ref, existing=existing)
            if self.at("if", "ident"):
                self.next()
                self.expect("(")
                self.skip_newlines()
                declaration.condition = self.expression()
                self.skip_newlines()
                self.expect(")")
            value = self.expression()
            if isinstance(value, ForExpr):
                declaration.loop = value
            declaration.value = value
            return declaration
        # targetScope, metadata, type, func, import, extension: not needed by the checks; skip the statement.
        self._skip_statement()
        return None

    def _skip_type(self) -> None:
        depth = 0
        while True:
            token = self.peek()
            if token.kind == "eof" or (depth == 0 and (token.kind == "newline" or self.at("="))):
                return
            if token.kind == "punct":
                depth += {"{": 1, "[": 1, "(": 1, "}": -1, "]": -1, ")": -1}.get(token.value, 0)
            self.next()

    def _skip_statement(self) -> None:
        depth = 0
        while True:
            token = self.peek()
            if token.kind == "eof" or (depth == 0 and token.kind == "newline"):
                return
            if token.kind == "punct":
                depth += {"{": 1, "[": 1, "(": 1, "[?": 1, "}": -1, "]": -1, ")": -1}.get(token.value, 0)
            self.next()


def parse_text(text: str, path: str = "<text>") -> Template:
    return Parser(tokenize(text)).template(path)


def parse_file(path: Path) -> Template:
    return parse_text(path.read_text(), str(path))
