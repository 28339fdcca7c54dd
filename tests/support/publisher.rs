//! A change publisher that records what it is given, and can be switched off to play a broker
//! that is down.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use plan::events::{ChangeEvent, ChangePublisher, PublishError};

#[derive(Default)]
pub struct RecordingPublisher {
    events: Mutex<Vec<ChangeEvent>>,
    down: AtomicBool,
}

impl RecordingPublisher {
    pub fn events(&self) -> Vec<ChangeEvent> {
        self.events.lock().unwrap().clone()
    }

    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }
}

#[async_trait]
impl ChangePublisher for RecordingPublisher {
    async fn publish(&self, event: &ChangeEvent) -> Result<(), PublishError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(PublishError::new("the broker is down"));
        }
        self.events.lock().unwrap().push(event.clone());
        Ok(())
    }
}
