//! Proof by execution: single-step a program and check ORC against its shadow stack.
