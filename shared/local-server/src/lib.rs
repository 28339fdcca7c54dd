//! The local server's parts that tests share with the `plan-local` binary.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing))]

pub mod exporter;
pub mod server;
