//! Change events: the Kafka producer, the in-process bus of the embedded mode, MSK-shaped batches
//! and the handler contract the indexer implements.

#[cfg(feature = "aws")]
pub mod aws;
pub mod batch;
pub mod bus;
pub mod indexer;
pub mod kafka;
#[cfg(feature = "aws")]
pub mod msk;
mod murmur2;
pub mod poller;
pub mod reindex;

pub use batch::{BatchError, BatchHandler, ConsumedRecord, DeliveredRecord, delivered_records, msk_event};
pub use bus::InProcessBus;
pub use kafka::{KafkaAuth, KafkaConfig, KafkaPublisher, Secret, TopicCreation};
pub use murmur2::partition_for;
pub use poller::{Offsets, run_poller};
