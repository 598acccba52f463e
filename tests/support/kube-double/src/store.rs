//! Objects, the global resourceVersion, and the change history watches read.

use crate::clock;
use crate::kinds::Kind;
use crate::status::ApiError;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// One change, as a watch reports it.
#[derive(Debug, Clone)]
pub struct Change {
    pub rv: u64,
    pub kind: Kind,
    pub namespace: String,
    pub event_type: &'static str,
    pub object: Value,
}

struct Entry {
    seq: u64,
    object: Value,
}

type Key = (Kind, String, String);

/// Every stored object; one counter stamps every change.
pub struct Store {
    rv: u64,
    seq: u64,
    objects: BTreeMap<Key, Entry>,
    history: Vec<Change>,
    compacted: u64,
    epoch: u64,
    notify: tokio::sync::watch::Sender<u64>,
}

impl Default for Store {
    fn default() -> Self {
        Store {
            rv: 1,
            seq: 0,
            objects: BTreeMap::new(),
            history: Vec::new(),
            compacted: 0,
            epoch: 0,
            notify: tokio::sync::watch::channel(0).0,
        }
    }
}

fn key(kind: Kind, ns: &str, name: &str) -> Key {
    (kind, ns.to_string(), name.to_string())
}

/// The object's `metadata.name` (empty when absent).
pub fn name_of(object: &Value) -> &str {
    object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// The object's `metadata.uid` (empty when absent).
pub fn uid_of(object: &Value) -> &str {
    object
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or("")
}

impl Store {
    /// The current resourceVersion.
    pub fn rv(&self) -> u64 {
        self.rv
    }

    /// Bumped by `expire`: open watches compare it to end with 410.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// A receiver that wakes on every change.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.notify.subscribe()
    }

    fn record(&mut self, kind: Kind, namespace: &str, event_type: &'static str, object: &Value) {
        self.history.push(Change {
            rv: self.rv,
            kind,
            namespace: namespace.to_string(),
            event_type,
            object: object.clone(),
        });
        self.notify.send_modify(|n| *n += 1);
    }

    fn bump(&mut self, object: &mut Value) {
        self.rv += 1;
        object["metadata"]["resourceVersion"] = json!(self.rv.to_string());
    }

    /// Stores a new object: stamps uid, resourceVersion, creationTimestamp,
    /// namespace (and generation for Jobs), applies defaults. 409 if the name exists.
    pub fn create(&mut self, kind: Kind, ns: &str, mut object: Value) -> Result<Value, ApiError> {
        if !object.get("metadata").is_some_and(Value::is_object) {
            object["metadata"] = json!({});
        }
        if name_of(&object).is_empty() {
            let prefix = object
                .pointer("/metadata/generateName")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            object["metadata"]["name"] = json!(format!("{prefix}{}", clock::suffix(5)));
        }
        let name = name_of(&object).to_string();
        if self.objects.contains_key(&key(kind, ns, &name)) {
            return Err(ApiError::already_exists(kind, &name));
        }
        object["apiVersion"] = json!(kind.api_version());
        object["kind"] = json!(kind.kind());
        let meta = &mut object["metadata"];
        meta["namespace"] = json!(ns);
        meta["uid"] = json!(clock::uid());
        meta["creationTimestamp"] = json!(clock::now());
        if let Some(m) = meta.as_object_mut() {
            m.remove("deletionTimestamp");
        }
        if kind == Kind::Job {
            meta["generation"] = json!(1);
        }
        crate::admission::default(kind, &mut object);
        self.bump(&mut object);
        self.seq += 1;
        self.record(kind, ns, "ADDED", &object);
        self.objects.insert(
            key(kind, ns, &name),
            Entry {
                seq: self.seq,
                object: object.clone(),
            },
        );
        Ok(object)
    }

    pub fn get(&self, kind: Kind, ns: &str, name: &str) -> Option<&Value> {
        self.objects.get(&key(kind, ns, name)).map(|e| &e.object)
    }

    /// Objects of a kind in a namespace, by name.
    pub fn list(&self, kind: Kind, ns: &str) -> Vec<&Value> {
        self.objects
            .range(key(kind, ns, "")..)
            .take_while(|((k, n, _), _)| *k == kind && n == ns)
            .map(|(_, e)| &e.object)
            .collect()
    }

    /// All objects of a kind (any namespace), in creation order.
    pub fn all_by_creation(&self, kind: Kind) -> Vec<&Value> {
        let mut entries: Vec<&Entry> = self
            .objects
            .iter()
            .filter(|((k, _, _), _)| *k == kind)
            .map(|(_, e)| e)
            .collect();
        entries.sort_by_key(|e| e.seq);
        entries.into_iter().map(|e| &e.object).collect()
    }

    /// Changes `f` makes to a copy; when the copy differs, stores it with a new
    /// resourceVersion and a MODIFIED event. Returns the stored object.
    pub fn update(
        &mut self,
        kind: Kind,
        ns: &str,
        name: &str,
        f: impl FnOnce(&mut Value),
    ) -> Option<Value> {
        let k = key(kind, ns, name);
        let mut object = self.objects.get(&k)?.object.clone();
        f(&mut object);
        if object == self.objects.get(&k)?.object {
            return Some(object);
        }
        self.bump(&mut object);
        self.record(kind, ns, "MODIFIED", &object);
        if let Some(entry) = self.objects.get_mut(&k) {
            entry.object = object.clone();
        }
        Some(object)
    }

    /// Removes an object (DELETED event, new resourceVersion).
    pub fn delete(&mut self, kind: Kind, ns: &str, name: &str) -> Option<Value> {
        let mut object = self.objects.remove(&key(kind, ns, name))?.object;
        self.bump(&mut object);
        self.record(kind, ns, "DELETED", &object);
        Some(object)
    }

    /// Changes of a kind in a namespace after `rv`; `Err` (410) when `rv` is
    /// at or before the compaction point.
    pub fn changes_after(&self, kind: Kind, ns: &str, rv: u64) -> Result<Vec<&Change>, ApiError> {
        if self.compacted > 0 && rv <= self.compacted {
            return Err(ApiError::expired());
        }
        let start = self.history.partition_point(|c| c.rv <= rv);
        Ok(self.history[start..]
            .iter()
            .filter(|c| c.kind == kind && c.namespace == ns)
            .collect())
    }

    /// Compaction: forget the history, make every resourceVersion up to now
    /// too old, end open watches. The counter moves on by one so that a
    /// fresh LIST returns a version that can be watched from.
    pub fn expire(&mut self) {
        self.compacted = self.rv;
        self.rv += 1;
        self.history.clear();
        self.epoch += 1;
        self.notify.send_modify(|n| *n += 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_history_and_compaction() {
        let mut s = Store::default();
        let a = s
            .create(Kind::ConfigMap, "ns", json!({"metadata": {"name": "a"}}))
            .unwrap();
        assert_eq!(a["metadata"]["resourceVersion"], "2");
        assert_eq!(a["kind"], "ConfigMap");
        let err = s
            .create(Kind::ConfigMap, "ns", json!({"metadata": {"name": "a"}}))
            .unwrap_err();
        assert_eq!(err.code, 409);
        s.update(Kind::ConfigMap, "ns", "a", |o| {
            o["data"] = json!({"k": "v"})
        });
        s.update(Kind::ConfigMap, "ns", "a", |o| {
            o["data"] = json!({"k": "v"})
        });
        assert_eq!(s.rv(), 3);
        s.delete(Kind::ConfigMap, "ns", "a");
        let types: Vec<_> = s
            .changes_after(Kind::ConfigMap, "ns", 2)
            .unwrap()
            .iter()
            .map(|c| c.event_type)
            .collect();
        assert_eq!(types, ["MODIFIED", "DELETED"]);
        assert!(s
            .changes_after(Kind::ConfigMap, "other", 0)
            .unwrap()
            .is_empty());
        s.expire();
        assert_eq!(
            s.changes_after(Kind::ConfigMap, "ns", 4).unwrap_err().code,
            410
        );
        assert!(s
            .changes_after(Kind::ConfigMap, "ns", 5)
            .unwrap()
            .is_empty());
    }
}
