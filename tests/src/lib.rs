//! End-to-end tests live in `tests/`: they drive the real binaries and the
//! scripts behind `just up`, as a new user would.
