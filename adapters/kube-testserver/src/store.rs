//! The test server's object store: every object as JSON, keyed by resource,
//! namespace and name, with the API server's bookkeeping (uid,
//! resourceVersion, creationTimestamp), label and field selectors,
//! finalizers, and garbage collection of owned objects when their owner is
//! deleted.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::SystemTime;

use serde_json::{json, Value};

/// The resources the test server serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Resource {
    /// `ray.io/v1` RayJob.
    RayJob,
    /// `ray.io/v1` RayCluster.
    RayCluster,
    /// `v1` Pod.
    Pod,
    /// `v1` Secret.
    Secret,
    /// `v1` Node (cluster-scoped; namespace is empty).
    Node,
}

impl Resource {
    /// The resource for a URL's plural, e.g. `rayjobs`.
    pub fn from_plural(plural: &str) -> Option<Resource> {
        Some(match plural {
            "rayjobs" => Resource::RayJob,
            "rayclusters" => Resource::RayCluster,
            "pods" => Resource::Pod,
            "secrets" => Resource::Secret,
            "nodes" => Resource::Node,
            _ => return None,
        })
    }

    /// `(apiVersion, kind)`.
    pub fn type_meta(self) -> (&'static str, &'static str) {
        match self {
            Resource::RayJob => ("ray.io/v1", "RayJob"),
            Resource::RayCluster => ("ray.io/v1", "RayCluster"),
            Resource::Pod => ("v1", "Pod"),
            Resource::Secret => ("v1", "Secret"),
            Resource::Node => ("v1", "Node"),
        }
    }

    /// The qualified name used in error messages, e.g. `rayjobs.ray.io`.
    pub fn qualified(self) -> &'static str {
        match self {
            Resource::RayJob => "rayjobs.ray.io",
            Resource::RayCluster => "rayclusters.ray.io",
            Resource::Pod => "pods",
            Resource::Secret => "secrets",
            Resource::Node => "nodes",
        }
    }
}

type Key = (Resource, String, String);

/// Every object, and the resourceVersion counter.
#[derive(Default)]
pub struct Store {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    objects: BTreeMap<Key, Value>,
    version: u64,
}

/// Why a write failed.
#[derive(Debug, PartialEq, Eq)]
pub enum WriteError {
    /// The name is taken.
    AlreadyExists,
    /// There is no such object.
    NotFound,
}

/// RFC 3339 time, seconds precision, as the API server writes it.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

fn lock(store: &Store) -> std::sync::MutexGuard<'_, Inner> {
    match store.inner.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

impl Store {
    /// Adds a new object, filling in uid, resourceVersion and creationTimestamp.
    pub fn create(
        &self,
        resource: Resource,
        namespace: &str,
        mut object: Value,
    ) -> Result<Value, WriteError> {
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let mut inner = lock(self);
        let key = (resource, namespace.to_string(), name);
        if inner.objects.contains_key(&key) {
            return Err(WriteError::AlreadyExists);
        }
        inner.version += 1;
        let (api_version, kind) = resource.type_meta();
        object["apiVersion"] = json!(api_version);
        object["kind"] = json!(kind);
        let metadata = &mut object["metadata"];
        if !namespace.is_empty() {
            metadata["namespace"] = json!(namespace);
        }
        metadata["uid"] = json!(ulid::Ulid::new().to_string().to_ascii_lowercase());
        metadata["resourceVersion"] = json!(inner.version.to_string());
        metadata["creationTimestamp"] = json!(now_rfc3339());
        metadata["generation"] = json!(1);
        inner.objects.insert(key, object.clone());
        Ok(object)
    }

    /// The object, if any.
    pub fn get(&self, resource: Resource, namespace: &str, name: &str) -> Option<Value> {
        lock(self)
            .objects
            .get(&(resource, namespace.to_string(), name.to_string()))
            .cloned()
    }

    /// Changes an object in place with `change`; the result gets a new
    /// resourceVersion. An object being deleted whose last finalizer the
    /// change removes is gone afterwards (with what it owns).
    pub fn update(
        &self,
        resource: Resource,
        namespace: &str,
        name: &str,
        change: impl FnOnce(&mut Value),
    ) -> Result<Value, WriteError> {
        let mut inner = lock(self);
        inner.version += 1;
        let version = inner.version;
        let key = (resource, namespace.to_string(), name.to_string());
        let object = inner.objects.get_mut(&key).ok_or(WriteError::NotFound)?;
        change(object);
        object["metadata"]["resourceVersion"] = json!(version.to_string());
        let updated = object.clone();
        if !updated["metadata"]["deletionTimestamp"].is_null() && !has_finalizers(&updated) {
            inner.objects.remove(&key);
            inner.collect_owned_by(updated["metadata"]["uid"].clone());
        }
        Ok(updated)
    }

    /// Objects of `resource` in `namespace` (all namespaces when `None`), by name.
    pub fn list(&self, resource: Resource, namespace: Option<&str>) -> Vec<Value> {
        lock(self)
            .objects
            .iter()
            .filter(|((r, ns, _), _)| *r == resource && namespace.is_none_or(|n| n == ns))
            .map(|(_, object)| object.clone())
            .collect()
    }

    /// The current resourceVersion (for list metadata).
    pub fn version(&self) -> u64 {
        lock(self).version
    }

    /// Deletes an object as the API server does. Without `metadata.finalizers`
    /// it goes at once, and the garbage collector takes, recursively,
    /// everything it owns (`ownerReferences`). With finalizers it only gets a
    /// `deletionTimestamp` and stays until an update empties them;
    /// [`Propagation::Foreground`] then collects what it owns right away,
    /// [`Propagation::Background`] only once it is gone. Returns the object.
    pub fn delete(
        &self,
        resource: Resource,
        namespace: &str,
        name: &str,
        propagation: Propagation,
    ) -> Result<Value, WriteError> {
        let mut inner = lock(self);
        let key = (resource, namespace.to_string(), name.to_string());
        inner.version += 1;
        let version = inner.version;
        let object = inner.objects.get_mut(&key).ok_or(WriteError::NotFound)?;
        if has_finalizers(object) {
            let metadata = &mut object["metadata"];
            if metadata["deletionTimestamp"].is_null() {
                metadata["deletionTimestamp"] = json!(now_rfc3339());
            }
            metadata["resourceVersion"] = json!(version.to_string());
            let kept = object.clone();
            if propagation == Propagation::Foreground {
                inner.collect_owned_by(kept["metadata"]["uid"].clone());
            }
            return Ok(kept);
        }
        let removed = inner.objects.remove(&key).ok_or(WriteError::NotFound)?;
        inner.collect_owned_by(removed["metadata"]["uid"].clone());
        Ok(removed)
    }
}

/// When the garbage collector removes what a deleted object owns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Propagation {
    /// Once the owner is gone (the default for custom resources).
    #[default]
    Background,
    /// Before the owner goes: right when its deletion starts.
    Foreground,
}

fn has_finalizers(object: &Value) -> bool {
    object["metadata"]["finalizers"]
        .as_array()
        .is_some_and(|f| !f.is_empty())
}

impl Inner {
    /// Removes, recursively, every object owned by `uid`.
    fn collect_owned_by(&mut self, uid: Value) {
        let mut owners = vec![uid];
        while let Some(uid) = owners.pop() {
            let owned: Vec<Key> = self
                .objects
                .iter()
                .filter(|(_, o)| {
                    o["metadata"]["ownerReferences"]
                        .as_array()
                        .is_some_and(|refs| refs.iter().any(|r| r["uid"] == uid))
                })
                .map(|(key, _)| key.clone())
                .collect();
            for key in owned {
                if let Some(object) = self.objects.remove(&key) {
                    owners.push(object["metadata"]["uid"].clone());
                }
            }
        }
    }
}

/// One term of a label selector.
#[derive(Debug, PartialEq, Eq)]
enum Term {
    Equals(String, String),
    NotEquals(String, String),
    Exists(String),
    NotExists(String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
}

/// A parsed label selector (`a=b,c!=d,e,!f,g in (x,y),h notin (z)`).
#[derive(Debug, Default)]
pub struct Selector(Vec<Term>);

impl Selector {
    /// Parses a selector; the error says which term is malformed.
    pub fn parse(text: &str) -> Result<Selector, String> {
        let mut terms = Vec::new();
        let mut rest = text.trim();
        while !rest.is_empty() {
            // Split at the next comma outside parentheses.
            let mut depth = 0;
            let mut end = rest.len();
            for (i, c) in rest.char_indices() {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    ',' if depth == 0 => {
                        end = i;
                        break;
                    }
                    _ => {}
                }
            }
            let term = rest[..end].trim();
            rest = rest.get(end + 1..).unwrap_or("").trim();
            terms.push(
                parse_term(term).ok_or_else(|| format!("unable to parse requirement: {term:?}"))?,
            );
        }
        Ok(Selector(terms))
    }

    /// True when `labels` satisfy every term.
    pub fn matches(&self, labels: &Value) -> bool {
        let get = |key: &str| labels.get(key).and_then(Value::as_str);
        self.0.iter().all(|term| match term {
            Term::Equals(k, v) => get(k) == Some(v.as_str()),
            Term::NotEquals(k, v) => get(k) != Some(v.as_str()),
            Term::Exists(k) => get(k).is_some(),
            Term::NotExists(k) => get(k).is_none(),
            Term::In(k, vs) => get(k).is_some_and(|v| vs.iter().any(|x| x == v)),
            Term::NotIn(k, vs) => get(k).is_none_or(|v| vs.iter().all(|x| x != v)),
        })
    }
}

fn parse_term(term: &str) -> Option<Term> {
    let valid_key = |k: &str| !k.is_empty() && !k.contains(char::is_whitespace);
    if let Some(key) = term.strip_prefix('!') {
        return valid_key(key.trim()).then(|| Term::NotExists(key.trim().to_string()));
    }
    for (op, negated) in [(" notin ", true), (" in ", false)] {
        if let Some((key, values)) = term.split_once(op) {
            let values = values.trim().strip_prefix('(')?.strip_suffix(')')?;
            let values = values.split(',').map(|v| v.trim().to_string()).collect();
            let key = key.trim().to_string();
            return Some(if negated {
                Term::NotIn(key, values)
            } else {
                Term::In(key, values)
            });
        }
    }
    if let Some((key, value)) = term.split_once("!=") {
        return Some(Term::NotEquals(
            key.trim().to_string(),
            value.trim().to_string(),
        ));
    }
    if let Some((key, value)) = term.split_once("==").or_else(|| term.split_once('=')) {
        return valid_key(key.trim())
            .then(|| Term::Equals(key.trim().to_string(), value.trim().to_string()));
    }
    valid_key(term).then(|| Term::Exists(term.to_string()))
}

/// A field selector over the few fields the API server supports for pods:
/// `metadata.name`, `metadata.namespace`, `spec.nodeName`, `status.phase`.
pub fn field_matches(selector: &str, object: &Value) -> Result<bool, String> {
    for term in selector.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        let (field, value, negated) = match term.split_once("!=") {
            Some((f, v)) => (f, v, true),
            None => match term.split_once("==").or_else(|| term.split_once('=')) {
                Some((f, v)) => (f, v, false),
                None => return Err(format!("invalid field selector term {term:?}")),
            },
        };
        let actual = match field.trim() {
            "metadata.name" => &object["metadata"]["name"],
            "metadata.namespace" => &object["metadata"]["namespace"],
            "spec.nodeName" => &object["spec"]["nodeName"],
            "status.phase" => &object["status"]["phase"],
            other => return Err(format!("field label not supported: {other}")),
        };
        let actual = actual.as_str().unwrap_or("");
        if (actual == value.trim()) == negated {
            return Ok(false);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests;
