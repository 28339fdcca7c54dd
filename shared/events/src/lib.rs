//! Change events: the Kafka producer, the in-process bus of the embedded mode, MSK-shaped batches
//! and the handler contract the indexer implements.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing))]

#[cfg(feature = "aws")]
pub mod aws;
pub mod batch;
pub mod bus;
pub mod config;
pub mod indexer;
#[cfg(feature = "kafka")]
pub mod kafka;
#[cfg(all(feature = "aws", feature = "kafka"))]
pub mod msk;
mod murmur2;
#[cfg(feature = "kafka")]
pub mod poller;

pub use batch::{BatchError, BatchHandler, ConsumedRecord, DeliveredRecord, delivered_records, msk_event};
pub use bus::InProcessBus;
pub use config::{EventSettings, KafkaAuth, KafkaConfig, Secret, TopicCreation};
#[cfg(feature = "kafka")]
pub use kafka::{KafkaDeadLetters, KafkaPublisher};
pub use murmur2::partition_for;
#[cfg(feature = "kafka")]
pub use poller::{Offsets, run_poller};
