//! The analytics queries through GraphQL.
