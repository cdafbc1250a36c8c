//! End-to-end tests of Switchboard: they drive the real `switchboard` binary once it exists.
//! Until the server lands (see the API issue), the cross-crate tests live in each crate's own
//! `tests/it` binary; this crate is the place the end-to-end suite will grow in.
