"""The subset of Go's ``text/template`` that people pass to ``--format``.

Supported: text and ``{{action}}`` with ``{{-``/``-}}`` trimming; fields ``.A.B``, ``.``,
variables ``$x`` / ``$x.A`` (``$`` is the root); string, number, ``true``/``false``/``nil``
literals; pipelines ``a | b``; parenthesised sub-pipelines; ``if``/``else if``/``else``,
``range`` (with ``$i, $v :=``), ``with``, ``end``; Go's built-in functions (``index``,
``len``, ``print``, ``printf``, ``println``, ``eq``...``ge``, ``and``, ``or``, ``not``) and
Docker's (``json``, ``join``, ``split``, ``lower``, ``upper``, ``title``, ``pad``,
``truncate``). Values print the way Go's ``fmt`` prints them (``true``, ``[a b]``,
``map[k:v]``, ``<no value>``).

Data is plain JSON-like values (dicts, lists, str, int, float, bool, None) or objects whose
attributes are the template's fields (callables are methods: ``{{.Label "x"}}``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


class TemplateError(Exception):
    """Parse or execution error; the message reads like Go's (``template: ...``)."""


class _Missing:
    """A map key that is not there: prints ``<no value>`` as Go does."""

    def __repr__(self) -> str:
        return "<no value>"


MISSING = _Missing()

_ACTION = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.S)
_TOKEN = re.compile(
    r"""\s*(?:
      (?P<string>"(?:[^"\\]|\\.)*")
    | (?P<raw>`[^`]*`)
    | (?P<number>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)
    | (?P<decl>:=)
    | (?P<assign>=)
    | (?P<pipe>\|)
    | (?P<lparen>\()
    | (?P<rparen>\))
    | (?P<comma>,)
    | (?P<var>\$\w*(?:\.\w+)*)
    | (?P<field>(?:\.\w+)+|\.)
    | (?P<ident>\w+)
    )""",
    re.X,
)

# -- printing values the way Go's fmt does --------------------------------------------------


def go_float(value: float) -> str:
    """``%v`` of a float64: shortest digits, exponent form when exp < -4 or exp >= 6."""
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "0"
    from decimal import Decimal  # rare: only float fields reach here

    sign, digit_tuple, exponent = Decimal(repr(value)).normalize().as_tuple()
    digits = "".join(map(str, digit_tuple))
    exp = len(digits) + int(exponent) - 1
    prefix = "-" if sign else ""
    if exp < -4 or exp >= 6:
        body = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{prefix}{body}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if exp < 0:
        return f"{prefix}0.{'0' * (-exp - 1)}{digits}"
    whole = digits[: exp + 1].ljust(exp + 1, "0")
    fraction = digits[exp + 1 :]
    return prefix + whole + ("." + fraction if fraction else "")


def go_print(value: Any) -> str:
    if value is MISSING:
        return "<no value>"
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return go_float(value)
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        items = " ".join(f"{go_print(k)}:{go_print(value[k])}" for k in sorted(value, key=str))
        return f"map[{items}]"
    if isinstance(value, list | tuple):
        return "[" + " ".join(go_print(item) for item in value) + "]"
    return str(value)


def go_json(value: Any) -> str:
    return json.dumps(_plain(value), separators=(",", ":"), ensure_ascii=False)


def _plain(value: Any) -> Any:
    to_json = getattr(value, "to_json", None)
    if callable(to_json):
        return to_json()
    if value is MISSING:
        return None
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def truthy(value: Any) -> bool:
    if value is MISSING or value is None:
        return False
    if isinstance(value, bool | int | float | str | list | tuple | dict):
        return bool(value)
    return True


# -- functions ------------------------------------------------------------------------------


def _index(item: Any, *keys: Any) -> Any:
    for key in keys:
        if isinstance(item, Mapping):
            item = item.get(key, MISSING)
        elif isinstance(item, list | tuple | str):
            try:
                item = item[int(key)]
            except (IndexError, ValueError) as error:
                raise TemplateError(f"error calling index: index out of range: {key}") from error
        elif item is None or item is MISSING:
            return MISSING
        else:
            raise TemplateError(f"error calling index: can't index item of type {type(item)}")
    return item


def _printf(fmt: str, *args: Any) -> str:
    converted = re.sub(r"%(-?\d*(?:\.\d+)?)[vqsdgfte]", lambda m: f"%{m.group(1)}s", fmt)
    rendered = tuple(json.dumps(a) if isinstance(a, str) and "%q" in fmt else go_print(a)
                     for a in args)
    try:
        return converted % rendered
    except (TypeError, ValueError) as error:
        raise TemplateError(f"error calling printf: {error}") from error


def _truncate(text: Any, length: Any) -> str:
    return go_print(text)[: int(length)]


def _pad(text: Any, before: Any, after: Any) -> str:
    return " " * int(before) + go_print(text) + " " * int(after)


def _compare(name: str, test: Callable[[Any, Any], bool]) -> Callable[..., bool]:
    def compare(a: Any, *others: Any) -> bool:
        if not others:
            raise TemplateError(f"error calling {name}: missing argument for comparison")
        try:
            return any(test(a, b) for b in others) if name == "eq" else test(a, others[0])
        except TypeError as error:
            raise TemplateError(f"error calling {name}: incompatible types") from error

    return compare


def _and(*args: Any) -> Any:
    for arg in args:
        if not truthy(arg):
            return arg
    return args[-1]


def _or(*args: Any) -> Any:
    for arg in args:
        if truthy(arg):
            return arg
    return args[-1]


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "json": go_json,
    "join": lambda items, sep: sep.join(go_print(i) for i in (items or [])),
    "split": lambda text, sep: go_print(text).split(sep),
    "lower": lambda text: go_print(text).lower(),
    "upper": lambda text: go_print(text).upper(),
    "title": lambda text: go_print(text).title(),
    "pad": _pad,
    "truncate": _truncate,
    "index": _index,
    "len": lambda item: len(item) if item not in (None, MISSING) else 0,
    "print": lambda *args: "".join(go_print(a) for a in args),
    "println": lambda *args: " ".join(go_print(a) for a in args) + "\n",
    "printf": _printf,
    "not": lambda value: not truthy(value),
    "and": _and,
    "or": _or,
    "eq": _compare("eq", lambda a, b: a == b),
    "ne": _compare("ne", lambda a, b: a != b),
    "lt": _compare("lt", lambda a, b: a < b),
    "le": _compare("le", lambda a, b: a <= b),
    "gt": _compare("gt", lambda a, b: a > b),
    "ge": _compare("ge", lambda a, b: a >= b),
}


# -- parse tree -------------------------------------------------------------------------------


@dataclass
class _Operand:
    kind: str  # field, var, string, number, bool, nil, ident, pipeline, dot
    value: Any


@dataclass
class _Command:
    operands: list[_Operand]


@dataclass
class _Pipeline:
    declare: list[str]
    commands: list[_Command]


@dataclass
class _Text:
    text: str


@dataclass
class _Action:
    pipeline: _Pipeline


@dataclass
class _Block:
    kind: str  # if, range, with
    pipeline: _Pipeline
    body: list[Any] = field(default_factory=list)
    otherwise: list[Any] = field(default_factory=list)


def _unquote(text: str) -> str:
    if text.startswith("`"):
        return text[1:-1]
    try:
        value = json.loads(text)
    except ValueError as error:
        raise TemplateError(f"template: bad string literal {text}") from error
    return str(value)


def _tokens(source: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    source = source.rstrip()
    while pos < len(source):
        match = _TOKEN.match(source, pos)
        if match is None or match.end() == pos:
            raise TemplateError(f"template: unexpected {source[pos:pos + 10]!r} in command")
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind)))
        pos = match.end()
    return tokens


class _PipelineParser:
    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens = tokens
        self.pos = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def pipeline(self, allow_declare: bool = True) -> _Pipeline:
        declare: list[str] = []
        if allow_declare:
            saved = self.pos
            names: list[str] = []
            while (token := self.peek()) and token[0] == "var" and "." not in token[1]:
                names.append(token[1])
                self.pos += 1
                token = self.peek()
                if token and token[0] == "comma":
                    self.pos += 1
                    continue
                break
            token = self.peek()
            if names and token and token[0] in ("decl", "assign"):
                self.pos += 1
                declare = names
            else:
                self.pos = saved
        commands = [self.command()]
        while (token := self.peek()) and token[0] == "pipe":
            self.pos += 1
            commands.append(self.command())
        return _Pipeline(declare, commands)

    def command(self) -> _Command:
        operands: list[_Operand] = []
        while (token := self.peek()) and token[0] not in ("pipe", "rparen"):
            self.pos += 1
            kind, text = token
            if kind == "lparen":
                inner = self.pipeline(allow_declare=False)
                closing = self.peek()
                if not closing or closing[0] != "rparen":
                    raise TemplateError("template: unclosed left paren")
                self.pos += 1
                operands.append(_Operand("pipeline", inner))
            elif kind in ("string", "raw"):
                operands.append(_Operand("string", _unquote(text)))
            elif kind == "number":
                number: Any = float(text) if any(c in text for c in ".eE") else int(text)
                operands.append(_Operand("number", number))
            elif kind == "field":
                operands.append(_Operand("dot" if text == "." else "field", text))
            elif kind == "var":
                operands.append(_Operand("var", text))
            elif kind == "ident":
                if text in ("true", "false"):
                    operands.append(_Operand("bool", text == "true"))
                elif text == "nil":
                    operands.append(_Operand("nil", None))
                elif text in FUNCTIONS:
                    operands.append(_Operand("ident", text))
                else:
                    raise TemplateError(f'template: function "{text}" not defined')
            else:
                raise TemplateError(f"template: unexpected {text!r} in operand")
        if not operands:
            raise TemplateError("template: missing value for command")
        return _Command(operands)


def _parse_pipeline(source: str) -> _Pipeline:
    parser = _PipelineParser(_tokens(source))
    pipeline = parser.pipeline()
    if parser.peek() is not None:
        raise TemplateError(f"template: unexpected {parser.peek()[1]!r} in command")  # type: ignore[index]
    return pipeline


def _parse(source: str) -> list[Any]:
    root: list[Any] = []
    stack: list[tuple[_Block, list[Any]]] = []
    current = root
    pos = 0
    trim_next = False
    matches = list(_ACTION.finditer(source))
    for match in matches:
        text = source[pos : match.start()]
        if trim_next:
            text = text.lstrip()
        if match.group(1):
            text = text.rstrip()
        if text:
            current.append(_Text(text))
        trim_next = bool(match.group(3))
        pos = match.end()
        body = match.group(2).strip()
        if body.startswith("/*"):
            continue
        word, _, rest = body.partition(" ")
        word = word.strip()
        if word in ("if", "range", "with"):
            block = _Block(word, _parse_pipeline(rest))
            current.append(block)
            stack.append((block, current))
            current = block.body
        elif word == "else":
            if not stack:
                raise TemplateError("template: unexpected {{else}}")
            block = stack[-1][0]
            rest = rest.strip()
            if rest.startswith("if ") and block.kind == "if":
                nested = _Block("if", _parse_pipeline(rest[3:]))
                block.otherwise.append(nested)
                # ``else if`` shares the outer ``end``: the nested block replaces the top.
                stack[-1] = (nested, stack[-1][1])
                current = nested.body
            else:
                current = block.otherwise
        elif word == "end":
            if not stack:
                raise TemplateError("template: unexpected {{end}}")
            _, current = stack.pop()
        else:
            current.append(_Action(_parse_pipeline(body)))
    text = source[pos:]
    if "{{" in text:
        raise TemplateError("template: unclosed action")
    if trim_next:
        text = text.lstrip()
    if text:
        current.append(_Text(text))
    if stack:
        raise TemplateError(f"template: unexpected EOF (unclosed {{{{{stack[-1][0].kind}}}}})")
    return root


# -- execution ------------------------------------------------------------------------------


class Template:
    """A parsed template; ``execute(data)`` renders it."""

    def __init__(self, source: str, functions: Mapping[str, Callable[..., Any]] | None = None):
        self.source = source
        self.functions = dict(FUNCTIONS)
        if functions:
            self.functions.update(functions)
        self.tree = _parse(source)

    def execute(self, data: Any) -> str:
        out: list[str] = []
        self._run(self.tree, data, {"$": data}, out)
        return "".join(out)

    def _run(self, nodes: list[Any], dot: Any, variables: dict[str, Any], out: list[str]) -> None:
        for node in nodes:
            if isinstance(node, _Text):
                out.append(node.text)
            elif isinstance(node, _Action):
                value = self._pipeline(node.pipeline, dot, variables)
                if not node.pipeline.declare:
                    out.append(go_print(value))
            else:
                self._block(node, dot, variables, out)

    def _block(self, block: _Block, dot: Any, variables: dict[str, Any], out: list[str]) -> None:
        scope = dict(variables)
        value = self._pipeline(block.pipeline, dot, scope, declare=block.kind != "range")
        if block.kind == "if":
            self._run(block.body if truthy(value) else block.otherwise, dot, scope, out)
        elif block.kind == "with":
            if truthy(value):
                self._run(block.body, value, scope, out)
            else:
                self._run(block.otherwise, dot, scope, out)
        else:
            if isinstance(value, Mapping):
                pairs = [(k, value[k]) for k in sorted(value, key=str)]
            elif isinstance(value, list | tuple):
                pairs = list(enumerate(value))
            elif value is None or value is MISSING:
                pairs = []
            elif isinstance(value, int) and not isinstance(value, bool):
                pairs = [(i, i) for i in range(value)]
            else:
                raise TemplateError(f"template: range can't iterate over {go_print(value)}")
            names = block.pipeline.declare
            for key, item in pairs:
                inner = dict(scope)
                if len(names) == 1:
                    inner[names[0]] = item
                elif len(names) >= 2:
                    inner[names[0]], inner[names[1]] = key, item
                self._run(block.body, item, inner, out)
            if not pairs:
                self._run(block.otherwise, dot, scope, out)

    def _pipeline(self, pipeline: _Pipeline, dot: Any, variables: dict[str, Any],
                  declare: bool = True) -> Any:
        value: Any = None
        piped = False
        for command in pipeline.commands:
            value = self._command(command, dot, variables, value if piped else None, piped)
            piped = True
        if declare and pipeline.declare:
            variables[pipeline.declare[0]] = value
        return value

    def _command(self, command: _Command, dot: Any, variables: dict[str, Any], piped: Any,
                 has_piped: bool) -> Any:
        first = command.operands[0]
        args = [self._operand(op, dot, variables) for op in command.operands[1:]]
        if has_piped:
            args.append(piped)
        if first.kind == "ident":
            function = self.functions[first.value]
            try:
                return function(*args)
            except TemplateError:
                raise
            except Exception as error:
                raise TemplateError(f"template: error calling {first.value}: {error}") from error
        if first.kind in ("field", "var") and args:
            target = self._operand(first, dot, variables, call_args=args)
            return target
        if args:
            raise TemplateError(f"template: can't give argument to non-function {first.value}")
        return self._operand(first, dot, variables)

    def _operand(self, operand: _Operand, dot: Any, variables: dict[str, Any],
                 call_args: list[Any] | None = None) -> Any:
        if operand.kind == "dot":
            return dot
        if operand.kind == "pipeline":
            return self._pipeline(operand.value, dot, variables, declare=False)
        if operand.kind == "ident":
            return self.functions[operand.value]()
        if operand.kind == "field":
            return _walk(dot, operand.value.split(".")[1:], call_args)
        if operand.kind == "var":
            name, *path = operand.value.split(".")
            if name not in variables:
                raise TemplateError(f"template: undefined variable: {name}")
            return _walk(variables[name], path, call_args)
        return operand.value


def _walk(value: Any, path: list[str], call_args: list[Any] | None) -> Any:
    for position, name in enumerate(path):
        last = position == len(path) - 1
        if isinstance(value, Mapping):
            value = value.get(name, MISSING)
        elif value is None or value is MISSING:
            if isinstance(value, _Missing):
                return MISSING
            raise TemplateError(f"template: nil pointer evaluating .{name}")
        else:
            attribute = getattr(value, name, MISSING) if not name.startswith("_") else MISSING
            if attribute is MISSING:
                raise TemplateError(
                    f"template: can't evaluate field {name} in type {type(value).__name__}")
            if callable(attribute):
                attribute = attribute(*(call_args or [])) if last else attribute()
                if last:
                    return attribute
            value = attribute
    if call_args:
        raise TemplateError("template: can't give argument to non-function")
    return value


def render(source: str, data: Any) -> str:
    return Template(source).execute(data)
