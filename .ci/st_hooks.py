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
