"""Schemathesis hooks: value strategies for our custom GraphQL scalars."""

from hypothesis import strategies as st

import schemathesis
from schemathesis.graphql import nodes

# Decimal is a string on the wire ("19.99"); generate in-range and out-of-range amounts.
schemathesis.graphql.scalar(
    "Decimal",
    st.decimals(min_value=-(10**12), max_value=10**12, places=4, allow_nan=False, allow_infinity=False).map(
        lambda d: nodes.String(str(d))
    ),
)

# NaiveDate is an ISO date string ("2026-12-03"); any calendar date.
schemathesis.graphql.scalar(
    "NaiveDate",
    st.dates().map(lambda d: nodes.String(d.isoformat())),
)


def _object(fields):
    import graphql

    return nodes.Object(
        [graphql.ObjectFieldNode(name=graphql.NameNode(value=k), value=v) for k, v in fields.items()]
    )


# JSON is any JSON value (a contract document, a shipping address): nested objects and lists of
# strings, numbers, booleans and nulls, with the contract document's own keys among the names.
_keys = st.sampled_from(["terms", "rules", "items", "sku", "id", "when", "then", "currency", "x"]) | st.text(
    min_size=1, max_size=8, alphabet="abcdefghijklmnopqrstuvwxyz_"
)
schemathesis.graphql.scalar(
    "JSON",
    st.recursive(
        st.one_of(
            st.text(max_size=20).map(nodes.String),
            st.integers(min_value=-(10**9), max_value=10**9).map(nodes.Int),
            st.booleans().map(nodes.Boolean),
            st.just(nodes.Null),
        ),
        lambda children: st.one_of(
            st.lists(children, max_size=4).map(nodes.List),
            st.dictionaries(_keys, children, max_size=4).map(_object),
        ),
        max_leaves=20,
    ),
)
