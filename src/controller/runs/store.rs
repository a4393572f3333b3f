//! Where run records outlive the process. The controller keeps them in the cluster
//! (ConfigMaps); tests and a controller without a cluster keep them in memory.

use async_trait::async_trait;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Mutex;

/// A store of run records, keyed by their string `id` field. `save` replaces the record of
/// the same id; it is called on every status change, in order.
#[async_trait]
pub trait RunRecords: Send + Sync {
    async fn save(&self, record: &Value) -> Result<(), String>;
    async fn load(&self) -> Result<Vec<Value>, String>;
}

/// Records in this process's memory: lost with it.
#[derive(Default)]
pub struct MemoryRecords {
    records: Mutex<BTreeMap<String, Value>>,
}

impl MemoryRecords {
    pub fn new() -> MemoryRecords {
        MemoryRecords::default()
    }
}

#[async_trait]
impl RunRecords for MemoryRecords {
    async fn save(&self, record: &Value) -> Result<(), String> {
        let id = record
            .get("id")
            .and_then(Value::as_str)
            .ok_or("a run record needs a string `id` field")?
            .to_string();
        self.records
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, record.clone());
        Ok(())
    }

    async fn load(&self) -> Result<Vec<Value>, String> {
        Ok(self
            .records
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect())
    }
}
