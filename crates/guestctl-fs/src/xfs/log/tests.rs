//! Unit tests of the I/O-free parts.
