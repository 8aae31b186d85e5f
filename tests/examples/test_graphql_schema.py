"""The GraphQL example's hand-rolled parser and executor, driven directly."""

from __future__ import annotations

import pytest

from examples.graphql.schema import GraphQLError, parse_operation, resolve_query, tick, ticks_arguments

QUOTE = "query Quote($symbol: String!) { quote(symbol: $symbol) { symbol price } }"
TICKS = """
subscription Ticks($symbol: String!, $every: Int = 50) {  # a comment
  t: ticks(symbol: $symbol, intervalMs: $every, count: 3) { seq sentAt, __typename }
}
"""


def test_a_query_with_variables_is_executed_in_its_selection() -> None:
    op = parse_operation({"query": QUOTE, "variables": {"symbol": "ACME"}})
    assert op.kind == "query" and op.name == "Quote"
    result = resolve_query(op, 1000.0)
    assert set(result["data"]["quote"]) == {"symbol", "price"} and result["data"]["quote"]["symbol"] == "ACME"
    assert "errors" not in result


def test_shorthand_literals_aliases_and_typename() -> None:
    op = parse_operation({"query": '{ a: echo(message: "hi \\"there\\"") __typename }'})
    assert resolve_query(op, 0.0) == {"data": {"a": 'hi "there"', "__typename": "Query"}}


def test_an_unknown_symbol_is_a_field_error_with_null_data() -> None:
    op = parse_operation({"query": QUOTE, "variables": {"symbol": "NOPE"}})
    assert resolve_query(op, 0.0) == {
        "data": {"quote": None},
        "errors": [{"message": "Unknown symbol NOPE", "path": ["quote"]}],
    }


def test_a_subscription_with_defaults_and_its_ticks() -> None:
    op = parse_operation({"query": TICKS, "variables": {"symbol": "GLOBEX"}})
    f, symbol, interval, count = ticks_arguments(op)
    assert (symbol, interval, count) == ("GLOBEX", 0.05, 3)
    assert tick(f, symbol, 2, 1234.5) == {"data": {"t": {"seq": 2, "sentAt": 1234.5, "__typename": "Tick"}}}


def test_the_operation_name_picks_one_of_several() -> None:
    doc = QUOTE + ' query Echo { echo(message: "x") }'
    assert parse_operation({"query": doc, "operationName": "Echo"}).name == "Echo"
    with pytest.raises(GraphQLError, match="operation name"):
        parse_operation({"query": doc})
    with pytest.raises(GraphQLError, match='Unknown operation named "Nope"'):
        parse_operation({"query": doc, "operationName": "Nope"})


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({}, 'needs a "query" string'),
        ({"query": QUOTE, "variables": [1]}, '"variables" must be an object'),
        ({"query": "{ quote(symbol: "}, "Syntax Error"),
        ({"query": '{ quote(symbol: "A") { ...F } }'}, "fragments and directives"),
        ({"query": "{ nope }"}, 'Cannot query field "nope" on type "Query"'),
        ({"query": '{ quote(symbol: "A") }'}, "must have a selection of subfields"),
        ({"query": '{ echo(message: "a") { x } }'}, "must not have a selection"),
        ({"query": '{ echo(text: "a") }'}, 'Unknown argument "text"'),
        ({"query": "{ echo(message: 1) }"}, "must be str"),
        ({"query": "{ echo }"}, 'needs argument "message"'),
        ({"query": "{ echo(message: $m) }"}, 'Variable "$m" is not defined'),
        ({"query": 'mutation { echo(message: "a") }'}, "not configured for mutations"),
        (
            {"query": 'subscription { ticks(symbol: "A") { seq } t2: ticks(symbol: "B") { seq } }'},
            "exactly one top-level field",
        ),
        ({"query": 'query { quote(symbol: "A") { price } } %'}, "unexpected character '%'"),
    ],
)
def test_bad_documents_are_named(payload: dict, message: str) -> None:
    with pytest.raises(GraphQLError, match=message.replace("$", r"\$").replace("(", r"\(")):
        parse_operation(payload)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ('symbol: "NOPE"', "Unknown symbol NOPE"),
        ('symbol: "ACME", intervalMs: 5', ">= 10"),
        ('symbol: "ACME", count: 0', "count must be >= 1"),
    ],
)
def test_bad_tick_arguments(args: str, message: str) -> None:
    op = parse_operation({"query": f"subscription {{ ticks({args}) {{ seq }} }}"})
    with pytest.raises(GraphQLError, match=message):
        ticks_arguments(op)
