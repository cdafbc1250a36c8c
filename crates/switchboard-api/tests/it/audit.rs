//! The audit queries through GraphQL.
