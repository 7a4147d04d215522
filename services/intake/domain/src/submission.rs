//! The submission decider (placeholder while record checks are built).
