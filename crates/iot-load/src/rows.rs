//! What a batch holds for each message: an event ready to be written, or a dead
//! letter with its reason, each with where in Kafka it came from.

use iot_model::{Event, Timestamp};

/// Where a message came from.
#[derive(Debug, Clone, PartialEq)]
pub struct KafkaMeta {
    pub partition: i32,
    pub offset: i64,
    pub timestamp: Option<Timestamp>,
    pub key: Option<Key>,
}

/// A message key, byte for byte: text where it is UTF-8 (as the simulator's device
/// ids are), else the bytes. Told apart once, when the message is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    Text(String),
    Bytes(Vec<u8>),
}

impl Key {
    pub fn new(bytes: &[u8]) -> Self {
        match std::str::from_utf8(bytes) {
            Ok(text) => Key::Text(text.to_owned()),
            Err(_) => Key::Bytes(bytes.to_vec()),
        }
    }
}

impl KafkaMeta {
    /// The key as text, where it is UTF-8.
    pub fn key_text(&self) -> Option<&str> {
        match &self.key {
            Some(Key::Text(text)) => Some(text),
            _ => None,
        }
    }

    /// The key's bytes, where it is not UTF-8 and so has no text.
    pub fn key_bytes(&self) -> Option<&[u8]> {
        match &self.key {
            Some(Key::Bytes(bytes)) => Some(bytes),
            _ => None,
        }
    }
}

/// A valid event, ready to be written.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub kafka: KafkaMeta,
    pub event: Event,
    /// Fields the model does not know, as a JSON object.
    pub extra: Option<String>,
}

/// A message that could not be loaded, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    pub topic: String,
    pub kafka: KafkaMeta,
    pub payload: Vec<u8>,
    pub error: String,
}
