//! The local server's parts that tests share with the `plan-local` binary.

pub mod exporter;
pub mod server;
