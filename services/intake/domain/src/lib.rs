//! Intake's rules (formats.md "What is rejected, and how much"), as pure functions.
//!
//! A submission goes through these steps, each a module:
//! 1. [`text`]: bytes to text: UTF-8 (with or without BOM), else CP932, else F01.
//! 2. [`csv`]: strict RFC 4180 records with the physical line each starts on.
//! 3. [`file`]: header and trailer, record types, counts (F02, F03, F09), kind (F06).
//! 4. [`record`]: field and cross-field checks per kind (E001–E008, W001), into [`record::Record`].
//! 5. [`submission`]: the decider. Given the parsed files, the facts looked up before (known
//!    households and keys, accepted 送信通番), the registry and the caller, it returns the
//!    [`submission::Outcome`]: rejected whole (F04–F08), a duplicate, or the accepted records
//!    with their E and W rows (E007, E009, E010, W003).
//!
//! Architecture invariant: no IO, no clock, no randomness; a 個人番号 never appears in a row,
//! a message or a `Debug` output.

pub mod csv;
pub mod file;
pub mod messages;
pub mod record;
pub mod row;
pub mod submission;
pub mod text;

pub use row::{Kubun, ReRow};
