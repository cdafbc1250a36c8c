//! The audit objects (placeholder until they land).
