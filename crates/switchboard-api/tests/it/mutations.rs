//! Mutations through GraphQL: one test per area of the write side.
