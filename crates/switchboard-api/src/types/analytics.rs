//! The analytics objects (placeholder until they land).
