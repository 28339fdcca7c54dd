//! The in-process event bus of the embedded mode: publishing appends to an in-memory log, and a
//! background task feeds the same batch handler the Lambda indexer runs, in order, retrying a
//! failed batch until it succeeds (no record is ever dropped). `publish` returns once the record's
//! batch is handled (indexed), as a Kafka publish returns once the record is durable: the caller
//! clears the outbox mark only then. Should indexing take longer than [`ACK_TIMEOUT`], `publish`
//! fails and the mark stays (the record itself stays queued and is indexed when it can be).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use plan::events::{ChangeEvent, ChangePublisher, PublishError};
use tokio::sync::{mpsc, oneshot};

use crate::batch::{BatchHandler, ConsumedRecord, msk_event};

/// Records handed to the handler at once, at most.
const MAX_BATCH: usize = 100;
/// How long `publish` waits for its record to be indexed.
pub const ACK_TIMEOUT: Duration = Duration::from_secs(5);

/// A queued record and who waits for it to be handled.
type Queued = (ConsumedRecord, oneshot::Sender<()>);

pub struct InProcessBus {
    topic: String,
    next_offset: AtomicI64,
    sender: mpsc::UnboundedSender<Queued>,
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
        let offset = self.next_offset.fetch_add(1, Ordering::SeqCst);
        let record = ConsumedRecord::of_event(&self.topic, 0, offset, chrono::Utc::now().timestamp_millis(), event);
        let (handled, done) = oneshot::channel();
        self.sender.send((record, handled)).map_err(|_| PublishError::new("the in-process bus has stopped"))?;
        match tokio::time::timeout(ACK_TIMEOUT, done).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(PublishError::new("the in-process bus has stopped")),
            Err(_) => Err(PublishError::new(format!("queued, but not indexed within {ACK_TIMEOUT:?}"))),
        }
    }
}

async fn consume(mut receiver: mpsc::UnboundedReceiver<Queued>, handler: Arc<dyn BatchHandler>) {
    let mut queued = Vec::with_capacity(MAX_BATCH);
    while receiver.recv_many(&mut queued, MAX_BATCH).await > 0 {
        let (batch, waiting): (Vec<ConsumedRecord>, Vec<oneshot::Sender<()>>) = queued.drain(..).unzip();
        let event = msk_event(&batch, "arn:local:in-process-bus");
        let mut delay = Duration::from_millis(10);
        while let Err(error) = handler.handle(event.clone()).await {
            tracing::warn!(%error, records = batch.len(), "indexing batch failed; retrying");
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
        for handled in waiting {
            let _ = handled.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicU32};

    use aws_lambda_events::event::kafka::KafkaEvent;

    use super::*;
    use crate::batch::BatchError;

    /// Fails its first two batches, then takes a while: a slow, flaky indexer.
    #[derive(Default)]
    struct Slow {
        attempts: AtomicU32,
        handled: AtomicBool,
    }

    #[async_trait]
    impl BatchHandler for Slow {
        async fn handle(&self, _event: KafkaEvent) -> Result<(), BatchError> {
            if self.attempts.fetch_add(1, Ordering::SeqCst) < 2 {
                return Err(BatchError::new("index unavailable"));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            self.handled.store(true, Ordering::SeqCst);
            Ok(())
        }
    }

    #[tokio::test]
    async fn publish_returns_once_the_record_is_indexed() {
        let handler = Arc::new(Slow::default());
        let bus = InProcessBus::start("plan_operations", handler.clone());
        let event = ChangeEvent::delete(plan::ObjectId::parse("p").unwrap(), 2, "");
        bus.publish(&event).await.unwrap();
        assert!(handler.handled.load(Ordering::SeqCst), "publish answered before the record was indexed");
    }
}
