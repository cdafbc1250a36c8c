"""Schemathesis hooks for .ci/fuzz-mutations: the check that no answer is a server error.

GraphQL answers errors with 200, and schemathesis' own check for server errors counts every
GraphQL error as one, the refusals of bad input included (BAD_USER_INPUT, a reused
clientMutationId): what fuzzing looks for is an answer the server failed to give, a 5xx or an
error with the code INTERNAL.
"""

import json

import schemathesis
from hypothesis import strategies as st
from schemathesis.graphql import nodes

# async-graphql's NaiveTime (opening hours): a time of day, or any text to be refused.
schemathesis.graphql.scalar(
    "NaiveTime",
    st.one_of(st.times().map(lambda t: t.strftime("%H:%M:%S")), st.text()).map(nodes.String),
)

# async-graphql's NaiveDate (holidays): a calendar date, or any text to be refused.
schemathesis.graphql.scalar(
    "NaiveDate",
    st.one_of(st.dates().map(lambda d: d.isoformat()), st.text()).map(nodes.String),
)


@schemathesis.check
def no_internal_error(ctx, response, case):
    """The answer is not a 5xx, and no GraphQL error of it has the code INTERNAL or
    UNAUTHENTICATED (the fuzzer's token stopped working: whatever came after tested nothing)."""
    if response.status_code >= 500:
        raise AssertionError(f"server error: HTTP {response.status_code}")
    try:
        body = json.loads(response.text)
    except (ValueError, TypeError):
        return None
    errors = body.get("errors") if isinstance(body, dict) else None
    for error in errors or []:
        code = ((error or {}).get("extensions") or {}).get("code")
        if code in ("INTERNAL", "UNAUTHENTICATED"):
            raise AssertionError(f"{code} error: {error.get('message')}")
    return None
