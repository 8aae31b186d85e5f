"""The GraphQL example's schema and a small hand-rolled executor for it (no I/O, no dependency).

The schema::

    type Query {
      quote(symbol: String!): Quote          # fails for an unknown symbol (a field error, data null)
      echo(message: String!): String
    }
    type Subscription {
      ticks(symbol: String!, intervalMs: Int = 200, count: Int): Tick   # count: complete after so many
    }
    type Quote { symbol: String!  price: Float!  ts: Float! }
    type Tick  { symbol: String!  price: Float!  seq: Int!  sentAt: Float! }  # sentAt: Unix seconds

Documents are parsed for the subset of GraphQL an operation against this schema needs: one or more
operations (``query``/``subscription``, named or not, with variable definitions and defaults), fields
with aliases, arguments (variables or literals) and nested selections, ``__typename``, commas and
comments. Fragments and directives are refused with a clear error, like anything the schema lacks: this
stands in for a real server in an example, it is not a GraphQL implementation (use ``graphql-core``
for that).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "PRICES",
    "Field",
    "GraphQLError",
    "Operation",
    "parse_operation",
    "price",
    "resolve_query",
    "select",
    "tick",
    "ticks_arguments",
]

PRICES = {"ACME": 101.25, "GLOBEX": 47.5, "INITECH": 12.75, "UMBRELLA": 230.0}

_TOKEN = re.compile(
    r"""
    (?P<skip>[\s,\ufeff]+|\#[^\n]*)
  | (?P<punct>\.\.\.|[!$():=@\[\]{}|&])
  | (?P<name>[_A-Za-z][_0-9A-Za-z]*)
  | (?P<number>-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)
  | (?P<string>"(?:[^"\\\n]|\\.)*")
    """,
    re.VERBOSE,
)

_TYPES: dict[str, dict[str, str]] = {
    "Query": {"quote": "Quote", "echo": "String", "__typename": "String"},
    "Subscription": {"ticks": "Tick", "__typename": "String"},
    "Quote": {"symbol": "String", "price": "Float", "ts": "Float", "__typename": "String"},
    "Tick": {"symbol": "String", "price": "Float", "seq": "Int", "sentAt": "Float", "__typename": "String"},
}
_ARGUMENTS: dict[tuple[str, str], dict[str, type]] = {
    ("Query", "quote"): {"symbol": str},
    ("Query", "echo"): {"message": str},
    ("Subscription", "ticks"): {"symbol": str, "intervalMs": int, "count": int},
}
_REQUIRED = {
    ("Query", "quote"): {"symbol"},
    ("Query", "echo"): {"message"},
    ("Subscription", "ticks"): {"symbol"},
}
_SCALARS = {"String", "Float", "Int"}


class GraphQLError(Exception):
    """An error for the ``errors`` list of a result (``message`` only: no locations are tracked)."""

    def to_json(self) -> dict[str, Any]:
        return {"message": str(self)}


@dataclass(frozen=True)
class Variable:
    name: str


@dataclass(frozen=True)
class Field:
    """A selected field: ``alias: name(arguments) { selections }``."""

    name: str
    alias: str
    arguments: dict[str, Any] = field(default_factory=dict)
    selections: tuple[Field, ...] = ()


@dataclass(frozen=True)
class Operation:
    """A validated operation with its variables bound: ``kind`` is ``query`` or ``subscription``."""

    kind: str
    name: str | None
    fields: tuple[Field, ...]


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens: list[tuple[str, str]] = []
        pos = 0
        while pos < len(text):
            match = _TOKEN.match(text, pos)
            if match is None:
                raise GraphQLError(f"Syntax Error: unexpected character {text[pos]!r} at offset {pos}")
            pos = match.end()
            if match.lastgroup != "skip":
                self.tokens.append((match.lastgroup or "", match.group()))
        self.i = 0

    def peek(self) -> str | None:
        return self.tokens[self.i][1] if self.i < len(self.tokens) else None

    def take(self, expected: str | None = None, kind: str | None = None) -> str:
        if self.i >= len(self.tokens):
            raise GraphQLError(f"Syntax Error: expected {expected or kind or 'more'}, found the end")
        token_kind, value = self.tokens[self.i]
        if value in ("...", "@"):
            raise GraphQLError("fragments and directives are not supported by this example server")
        if (expected is not None and value != expected) or (kind is not None and token_kind != kind):
            raise GraphQLError(f"Syntax Error: expected {expected or kind}, found {value!r}")
        self.i += 1
        return value

    def document(self) -> list[tuple[str, str | None, dict[str, Any], tuple[Field, ...]]]:
        operations = []
        while self.peek() is not None:
            operations.append(self.operation())
        if not operations:
            raise GraphQLError("Syntax Error: the document holds no operation")
        return operations

    def operation(self) -> tuple[str, str | None, dict[str, Any], tuple[Field, ...]]:
        if self.peek() == "{":
            return "query", None, {}, self.selection_set()
        kind = self.take(kind="name")
        if kind not in ("query", "mutation", "subscription"):
            raise GraphQLError(f"Syntax Error: unexpected {kind!r}")
        name = self.take(kind="name") if self.peek() not in ("(", "{") else None
        defaults: dict[str, Any] = {}
        if self.peek() == "(":
            self.take("(")
            while self.peek() != ")":
                self.take("$")
                var = self.take(kind="name")
                self.take(":")
                self.type_ref()
                defaults[var] = None
                if self.peek() == "=":
                    self.take("=")
                    defaults[var] = self.value()
            self.take(")")
        return kind, name, defaults, self.selection_set()

    def type_ref(self) -> None:
        if self.peek() == "[":
            self.take("[")
            self.type_ref()
            self.take("]")
        else:
            self.take(kind="name")
        if self.peek() == "!":
            self.take("!")

    def selection_set(self) -> tuple[Field, ...]:
        self.take("{")
        fields = []
        while self.peek() != "}":
            fields.append(self.field())
        self.take("}")
        if not fields:
            raise GraphQLError("Syntax Error: empty selection set")
        return tuple(fields)

    def field(self) -> Field:
        alias = name = self.take(kind="name")
        if self.peek() == ":":
            self.take(":")
            name = self.take(kind="name")
        arguments: dict[str, Any] = {}
        if self.peek() == "(":
            self.take("(")
            while self.peek() != ")":
                arg = self.take(kind="name")
                self.take(":")
                arguments[arg] = self.value()
            self.take(")")
        selections = self.selection_set() if self.peek() == "{" else ()
        return Field(name, alias, arguments, selections)

    def value(self) -> Any:
        if self.peek() == "$":
            self.take("$")
            return Variable(self.take(kind="name"))
        kind, token = self.tokens[self.i] if self.i < len(self.tokens) else ("", "")
        if kind == "string":
            self.i += 1
            return re.sub(r'\\(["\\/])', r"\1", token[1:-1])
        if kind == "number":
            self.i += 1
            return float(token) if any(c in token for c in ".eE") else int(token)
        if kind == "name":
            self.i += 1
            return {"true": True, "false": False, "null": None}.get(token, token)
        raise GraphQLError(f"Syntax Error: expected a value, found {token or 'the end'!r}")


def _bind(value: Any, variables: dict[str, Any], defaults: dict[str, Any]) -> Any:
    if not isinstance(value, Variable):
        return value
    if value.name not in defaults:
        raise GraphQLError(f'Variable "${value.name}" is not defined')
    return variables.get(value.name, defaults[value.name])


def _validate(
    parent: str, fields: tuple[Field, ...], variables: dict[str, Any], defaults: dict[str, Any]
) -> tuple[Field, ...]:
    bound = []
    for f in fields:
        field_type = _TYPES[parent].get(f.name)
        if field_type is None:
            raise GraphQLError(f'Cannot query field "{f.name}" on type "{parent}"')
        if field_type in _SCALARS and f.selections:
            raise GraphQLError(f'Field "{f.name}" of type "{field_type}" must not have a selection')
        if field_type not in _SCALARS and not f.selections:
            raise GraphQLError(f'Field "{f.name}" of type "{field_type}" must have a selection of subfields')
        known = _ARGUMENTS.get((parent, f.name), {})
        arguments = {}
        for arg, raw in f.arguments.items():
            if arg not in known:
                raise GraphQLError(f'Unknown argument "{arg}" on field "{parent}.{f.name}"')
            value = _bind(raw, variables, defaults)
            if value is not None and (not isinstance(value, known[arg]) or isinstance(value, bool)):
                raise GraphQLError(f'Argument "{arg}" of "{parent}.{f.name}" must be {known[arg].__name__}')
            arguments[arg] = value
        if missing := _REQUIRED.get((parent, f.name), set()) - {
            a for a, v in arguments.items() if v is not None
        }:
            raise GraphQLError(f'Field "{parent}.{f.name}" needs argument "{sorted(missing)[0]}"')
        selections = _validate(field_type, f.selections, variables, defaults) if f.selections else ()
        bound.append(Field(f.name, f.alias, arguments, selections))
    return tuple(bound)


def parse_operation(payload: Any) -> Operation:
    """A ``subscribe`` payload (``{"query", "variables"?, "operationName"?}``) → a validated operation.

    Raises:
        GraphQLError: The document does not parse, names the wrong operation, or asks for anything this
            schema lacks; the server answers with an ``error`` message.
    """
    if not isinstance(payload, dict) or not isinstance(payload.get("query"), str):
        raise GraphQLError('the payload needs a "query" string')
    variables = payload.get("variables") or {}
    operation_name = payload.get("operationName")
    if not isinstance(variables, dict):
        raise GraphQLError('"variables" must be an object')
    operations = _Parser(payload["query"]).document()
    if operation_name is not None:
        chosen = [op for op in operations if op[1] == operation_name]
        if not chosen:
            raise GraphQLError(f'Unknown operation named "{operation_name}"')
    elif len(operations) > 1:
        raise GraphQLError("Must provide operation name if query contains multiple operations")
    else:
        chosen = operations
    kind, name, defaults, fields = chosen[0]
    if kind == "mutation":
        raise GraphQLError("Schema is not configured for mutations")
    root = "Query" if kind == "query" else "Subscription"
    bound = _validate(root, fields, variables, defaults)
    if kind == "subscription" and len([f for f in bound if f.name != "__typename"]) != 1:
        raise GraphQLError("A subscription must select exactly one top-level field")
    return Operation(kind, name, bound)


def select(obj: dict[str, Any], fields: tuple[Field, ...], typename: str) -> dict[str, Any]:
    """The requested fields of ``obj`` under their aliases (the response shape)."""
    return {f.alias: typename if f.name == "__typename" else obj[f.name] for f in fields}


def price(symbol: str, now: float) -> float:
    """A deterministic wandering price for ``symbol`` at Unix time ``now``."""
    return round(PRICES[symbol] * (1 + 0.02 * math.sin(now / 7 + len(symbol))), 4)


def resolve_query(operation: Operation, now: float) -> dict[str, Any]:
    """Execute a query: the ``ExecutionResult`` (``data``, and ``errors`` for failed fields)."""
    data: dict[str, Any] = {}
    errors: list[dict[str, Any]] = []
    for f in operation.fields:
        if f.name == "__typename":
            data[f.alias] = "Query"
        elif f.name == "echo":
            data[f.alias] = f.arguments["message"]
        elif f.arguments["symbol"] not in PRICES:
            data[f.alias] = None
            errors.append({"message": f"Unknown symbol {f.arguments['symbol']}", "path": [f.alias]})
        else:
            symbol = f.arguments["symbol"]
            quote = {"symbol": symbol, "price": price(symbol, now), "ts": now}
            data[f.alias] = select(quote, f.selections, "Quote")
    return {"data": data, "errors": errors} if errors else {"data": data}


def ticks_arguments(operation: Operation) -> tuple[Field, str, float, int | None]:
    """A ``ticks`` subscription → (its field, symbol, interval in seconds, count or ``None``).

    Raises:
        GraphQLError: An unknown symbol, an interval under 10 ms or a count under 1.
    """
    (f,) = [f for f in operation.fields if f.name == "ticks"]
    symbol = f.arguments["symbol"]
    interval_ms = f.arguments.get("intervalMs")
    count = f.arguments.get("count")
    if symbol not in PRICES:
        raise GraphQLError(f"Unknown symbol {symbol}")
    if interval_ms is None:
        interval_ms = 200
    if interval_ms < 10:
        raise GraphQLError("intervalMs must be >= 10")
    if count is not None and count < 1:
        raise GraphQLError("count must be >= 1")
    return f, symbol, interval_ms / 1000, count


def tick(f: Field, symbol: str, seq: int, now: float) -> dict[str, Any]:
    """The ``next`` payload of the ``seq``-th tick, ``sentAt`` = ``now`` (the send time, Unix seconds)."""
    obj = {"symbol": symbol, "price": price(symbol, now), "seq": seq, "sentAt": now}
    return {"data": {f.alias: select(obj, f.selections, "Tick")}}
