//! The in-process event bus of the embedded mode: publishing appends to an in-memory log, and a
//! background task feeds the same batch handler the Lambda indexer runs, asynchronously, in order,
//! retrying a failed batch until it succeeds (no record is ever dropped).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use plan::events::{ChangeEvent, ChangePublisher, PublishError};
use tokio::sync::mpsc;

use crate::batch::{BatchHandler, ConsumedRecord, msk_event};

/// Records handed to the handler at once, at most.
const MAX_BATCH: usize = 100;

pub struct InProcessBus {
    topic: String,
    next_offset: AtomicI64,
    sender: mpsc::UnboundedSender<ConsumedRecord>,
}

impl InProcessBus {
    /// The bus and its consumer task, which runs until the bus is dropped.
    pub fn start(topic: &str, handler: Arc<dyn BatchHandler>) -> Arc<Self> {
        let (sender, receiver) = mpsc::unbounded_channel();
        tokio::spawn(consume(receiver, handler));
        Arc::new(Self { topic: topic.to_owned(), next_offset: AtomicI64::new(0), sender })
    }
}

#[async_trait]
impl ChangePublisher for InProcessBus {
    async fn publish(&self, event: &ChangeEvent) -> Result<(), PublishError> {
        let record = ConsumedRecord {
            topic: self.topic.clone(),
            partition: 0,
            offset: self.next_offset.fetch_add(1, Ordering::SeqCst),
            key: Some(event.plan_id.as_str().as_bytes().to_vec()),
            value: Some(event.to_json()),
            timestamp_ms: chrono::Utc::now().timestamp_millis(),
        };
        self.sender.send(record).map_err(|_| PublishError::new("the in-process bus has stopped"))
    }
}

async fn consume(mut receiver: mpsc::UnboundedReceiver<ConsumedRecord>, handler: Arc<dyn BatchHandler>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while receiver.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let event = msk_event(&batch, "arn:local:in-process-bus");
        let mut delay = Duration::from_millis(10);
        while let Err(error) = handler.handle(event.clone()).await {
            tracing::warn!(%error, records = batch.len(), "indexing batch failed; retrying");
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
        batch.clear();
    }
}
