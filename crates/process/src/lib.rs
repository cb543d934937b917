//! Unwinding live processes and core dumps with ORC.

#![forbid(unsafe_code)]
