//! Service harness: filled in with the services.
