//! HTTP/1.1 on loopback: recording, injected failures, routing, CRUD.

use crate::admission;
use crate::controller;
use crate::kinds::Kind;
use crate::kubelet;
use crate::respond::{self, Body};
use crate::selector::Selector;
use crate::state::Shared;
use crate::status::ApiError;
use crate::store::name_of;
use crate::{logs, watch, RecordedRequest};
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Accepts connections until the runtime shuts down.
pub async fn serve(shared: Arc<Shared>, listener: TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(handle(shared, req).await) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| Some((hex(*bytes.get(i + 1)?)?, hex(*bytes.get(i + 2)?)?)))
            .flatten();
        match (bytes[i], escaped) {
            (_, Some((hi, lo))) => {
                out.push(hi << 4 | lo);
                i += 2;
            }
            (b'+', None) => out.push(b' '),
            (b, None) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `a=1&b=x%2Cy` (empty pairs skipped, as in kube-rs's `?&watch=true`).
pub fn parse_query(query: &str) -> HashMap<String, String> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Response<Body> {
    let method = req.method().as_str().to_string();
    let path = req.uri().path().to_string();
    let raw_query = req.uri().query().unwrap_or("").to_string();
    let content_type = req
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let user_agent = req
        .headers()
        .get(hyper::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let (seq, injected) = {
        let mut st = shared.lock();
        st.requests.push(RecordedRequest {
            method: method.clone(),
            path: path.clone(),
            query: raw_query.clone(),
            code: 0,
            user_agent,
        });
        (st.requests.len() - 1, st.take_injection(&method, &path))
    };
    let response = match injected {
        Some(code) => respond::error(&ApiError::injected(code)),
        None => answer(&shared, req, &method, &path, &raw_query, content_type).await,
    };
    if let Some(r) = shared.lock().requests.get_mut(seq) {
        r.code = response.status().as_u16();
    }
    response
}

async fn answer(
    shared: &Arc<Shared>,
    req: Request<Incoming>,
    method: &str,
    path: &str,
    raw_query: &str,
    content_type: String,
) -> Response<Body> {
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return respond::error(&ApiError::bad_request(format!("reading the body: {e}"))),
    };
    let call = Call {
        method,
        query: parse_query(raw_query),
        body,
        content_type,
    };
    route(shared, path, &call).unwrap_or_else(|e| respond::error(&e))
}

struct Call<'a> {
    method: &'a str,
    query: HashMap<String, String>,
    body: Bytes,
    content_type: String,
}

impl Call<'_> {
    fn json_body(&self) -> Result<Value, ApiError> {
        let value: Value = serde_json::from_slice(&self.body).map_err(|e| {
            ApiError::bad_request(format!(
                "the body of the request was in an unknown format: {e}"
            ))
        })?;
        if !value.is_object() {
            return Err(ApiError::bad_request(
                "the body of the request must be a JSON object",
            ));
        }
        Ok(value)
    }

    fn flag(&self, key: &str) -> bool {
        self.query.get(key).is_some_and(|v| v == "true" || v == "1")
    }

    fn selector(&self) -> Result<Selector, ApiError> {
        Selector::parse(
            self.query
                .get("labelSelector")
                .map(String::as_str)
                .unwrap_or(""),
        )
        .map_err(ApiError::bad_request)
    }
}

fn version() -> Value {
    json!({"major": "1", "minor": "33", "gitVersion": "v1.33.0",
        "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
        "buildDate": "2025-04-23T00:00:00Z", "goVersion": "go1.24.2", "compiler": "gc",
        "platform": "linux/amd64"})
}

fn resource_list(group_version: &str, kinds: &[Kind]) -> Value {
    let resources: Vec<Value> = kinds
        .iter()
        .map(|k| json!({"name": k.resource(), "singularName": k.kind().to_lowercase(),
            "namespaced": true, "kind": k.kind(),
            "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]}))
        .collect();
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources})
}

fn route(shared: &Arc<Shared>, path: &str, call: &Call) -> Result<Response<Body>, ApiError> {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let get_only = |value: Value| {
        if call.method == "GET" {
            Ok(respond::json(200, &value))
        } else {
            Err(ApiError::method_not_allowed(call.method))
        }
    };
    match segments.as_slice() {
        ["version"] => get_only(version()),
        ["api"] => get_only(json!({"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]})),
        ["apis"] => get_only(
            json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": [{
            "name": "batch", "versions": [{"groupVersion": "batch/v1", "version": "v1"}],
            "preferredVersion": {"groupVersion": "batch/v1", "version": "v1"}}]}),
        ),
        ["api", "v1"] => get_only(resource_list("v1", &[Kind::Pod, Kind::ConfigMap])),
        ["apis", "batch", "v1"] => get_only(resource_list("batch/v1", &[Kind::Job])),
        ["api", "v1", "namespaces", ns, resource, rest @ ..] => {
            resource_call(shared, "", ns, resource, rest, path, call)
        }
        ["apis", "batch", "v1", "namespaces", ns, resource, rest @ ..] => {
            resource_call(shared, "batch", ns, resource, rest, path, call)
        }
        _ => Err(ApiError::path_not_found(path)),
    }
}

fn resource_call(
    shared: &Arc<Shared>,
    group: &str,
    ns: &str,
    resource: &str,
    rest: &[&str],
    path: &str,
    call: &Call,
) -> Result<Response<Body>, ApiError> {
    let kind =
        Kind::from_resource(group, resource).ok_or_else(|| ApiError::path_not_found(path))?;
    match (rest, call.method) {
        ([], "GET") if call.flag("watch") => {
            watch::start(shared, kind, ns, call.selector()?, &call.query)
        }
        ([], "GET") => list(shared, kind, ns, call),
        ([], "POST") => create(shared, kind, ns, call),
        ([], "DELETE") => delete_collection(shared, kind, ns, call),
        ([name], "GET") | ([name, "status"], "GET") => shared
            .lock()
            .store
            .get(kind, ns, name)
            .map(|o| respond::json(200, o))
            .ok_or_else(|| ApiError::not_found(kind, name)),
        ([name], "DELETE") => delete(shared, kind, ns, name, call),
        ([name], "PUT") => replace(shared, kind, ns, name, call.json_body()?),
        ([name], "PATCH") => patch(shared, kind, ns, name, call),
        ([name, "log"], "GET") if kind == Kind::Pod => logs::get(shared, ns, name, &call.query),
        ([name, "eviction"], "POST") if kind == Kind::Pod => evict(shared, ns, name, call),
        ([] | [_], _) => Err(ApiError::method_not_allowed(call.method)),
        _ => Err(ApiError::path_not_found(path)),
    }
}

fn list(
    shared: &Arc<Shared>,
    kind: Kind,
    ns: &str,
    call: &Call,
) -> Result<Response<Body>, ApiError> {
    let selector = call.selector()?;
    let st = shared.lock();
    let items: Vec<&Value> = st
        .store
        .list(kind, ns)
        .into_iter()
        .filter(|o| selector.matches_object(o))
        .collect();
    Ok(respond::json(
        200,
        &json!({
            "apiVersion": kind.api_version(), "kind": kind.list_kind(),
            "metadata": {"resourceVersion": st.store.rv().to_string()}, "items": items,
        }),
    ))
}

fn create(
    shared: &Arc<Shared>,
    kind: Kind,
    ns: &str,
    call: &Call,
) -> Result<Response<Body>, ApiError> {
    let object = call.json_body()?;
    if let Some(k) = object.get("kind").and_then(Value::as_str) {
        if k != kind.kind() {
            return Err(ApiError::bad_request(format!(
                "the kind of the body ({k}) does not match the path ({})",
                kind.kind()
            )));
        }
    }
    if let Some(obj_ns) = object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
    {
        if obj_ns != ns {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
    }
    admission::validate(kind, &object)?;
    if call.query.contains_key("dryRun") {
        let mut object = object;
        object["metadata"]["namespace"] = json!(ns);
        return Ok(respond::json(201, &object));
    }
    let stored = shared.mutate(|st| st.store.create(kind, ns, object))?;
    Ok(respond::json(201, &stored))
}

fn propagation(call: &Call) -> String {
    let from_body = serde_json::from_slice::<Value>(&call.body)
        .ok()
        .and_then(|b| {
            b.get("propagationPolicy")
                .and_then(Value::as_str)
                .map(str::to_string)
        });
    call.query
        .get("propagationPolicy")
        .cloned()
        .or(from_body)
        .unwrap_or_else(|| "Orphan".into())
}

fn delete_one(
    st: &mut crate::state::State,
    kind: Kind,
    ns: &str,
    name: &str,
    policy: &str,
) -> Option<Value> {
    match kind {
        Kind::Job => controller::delete_job(st, ns, name, policy),
        Kind::Pod => kubelet::delete_pod(st, ns, name),
        Kind::ConfigMap => st.store.delete(kind, ns, name),
    }
}

fn delete(
    shared: &Arc<Shared>,
    kind: Kind,
    ns: &str,
    name: &str,
    call: &Call,
) -> Result<Response<Body>, ApiError> {
    let policy = propagation(call);
    shared
        .mutate(|st| delete_one(st, kind, ns, name, &policy))
        .map(|o| respond::json(200, &o))
        .ok_or_else(|| ApiError::not_found(kind, name))
}

fn delete_collection(
    shared: &Arc<Shared>,
    kind: Kind,
    ns: &str,
    call: &Call,
) -> Result<Response<Body>, ApiError> {
    let selector = call.selector()?;
    let policy = propagation(call);
    let deleted: Vec<Value> = shared.mutate(|st| {
        let names: Vec<String> = st
            .store
            .list(kind, ns)
            .into_iter()
            .filter(|o| selector.matches_object(o))
            .map(|o| name_of(o).to_string())
            .collect();
        names
            .iter()
            .filter_map(|n| delete_one(st, kind, ns, n, &policy))
            .collect()
    });
    let rv = shared.lock().store.rv();
    Ok(respond::json(
        200,
        &json!({"apiVersion": kind.api_version(), "kind": kind.list_kind(),
        "metadata": {"resourceVersion": rv.to_string()}, "items": deleted}),
    ))
}

/// POST `pods/{name}/eviction` (`policy/v1` Eviction): the grace period is the body's
/// `deleteOptions.gracePeriodSeconds`, else the pod's `terminationGracePeriodSeconds`, else
/// 30 s. Unknown fields are ignored, as the real server does (kube-rs 5's `Api::evict` sends
/// `delete_options`, which therefore has no effect). There are no PodDisruptionBudgets
/// here: an eviction is always allowed (201).
fn evict(
    shared: &Arc<Shared>,
    ns: &str,
    name: &str,
    call: &Call,
) -> Result<Response<Body>, ApiError> {
    let body = call.json_body()?;
    // The real API server takes the kind from the path when the body has none.
    if body
        .get("kind")
        .and_then(Value::as_str)
        .is_some_and(|k| k != "Eviction")
    {
        return Err(ApiError::bad_request(
            "the body must be a policy/v1 Eviction",
        ));
    }
    let pod_grace = shared
        .lock()
        .store
        .get(Kind::Pod, ns, name)
        .and_then(|p| p.pointer("/spec/terminationGracePeriodSeconds"))
        .and_then(Value::as_u64);
    let grace = body
        .pointer("/deleteOptions/gracePeriodSeconds")
        .and_then(Value::as_u64)
        .or(pod_grace)
        .unwrap_or(30);
    if !kubelet::evict(shared, ns, name, std::time::Duration::from_secs(grace)) {
        return Err(ApiError::not_found(Kind::Pod, name));
    }
    Ok(respond::json(
        201,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
    ))
}

/// PUT: replaces everything but identity, creation time and status.
fn replace(
    shared: &Arc<Shared>,
    kind: Kind,
    ns: &str,
    name: &str,
    mut object: Value,
) -> Result<Response<Body>, ApiError> {
    if name_of(&object) != name {
        return Err(ApiError::bad_request(
            "the name of the object does not match the name on the URL",
        ));
    }
    admission::validate(kind, &object)?;
    shared.mutate(|st| {
        let current = st.store.get(kind, ns, name).ok_or_else(|| ApiError::not_found(kind, name))?;
        let sent_rv = object.pointer("/metadata/resourceVersion").and_then(Value::as_str);
        if sent_rv.is_some_and(|rv| Some(rv) != current.pointer("/metadata/resourceVersion").and_then(Value::as_str)) {
            return Err(ApiError::conflict(kind, name,
                "the object has been modified; please apply your changes to the latest version and try again"));
        }
        for field in ["uid", "creationTimestamp", "namespace", "generation", "resourceVersion"] {
            match current["metadata"].get(field) {
                Some(v) => object["metadata"][field] = v.clone(),
                None => {
                    if let Some(m) = object["metadata"].as_object_mut() {
                        m.remove(field);
                    }
                }
            }
        }
        object["apiVersion"] = json!(kind.api_version());
        object["kind"] = json!(kind.kind());
        if kind != Kind::ConfigMap {
            if kind == Kind::Job && object.get("spec") != current.get("spec") {
                let generation = current.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(1);
                object["metadata"]["generation"] = json!(generation + 1);
            }
            object["status"] = current["status"].clone();
        }
        st.store
            .update(kind, ns, name, |o| *o = object)
            .map(|o| respond::json(200, &o))
            .ok_or_else(|| ApiError::not_found(kind, name))
    })
}

/// RFC 7386 JSON merge patch.
fn merge(target: &mut Value, patch: &Value) {
    match patch.as_object() {
        Some(fields) => {
            if !target.is_object() {
                *target = json!({});
            }
            for (k, v) in fields {
                if v.is_null() {
                    if let Some(m) = target.as_object_mut() {
                        m.remove(k);
                    }
                } else {
                    merge(&mut target[k.as_str()], v);
                }
            }
        }
        None => *target = patch.clone(),
    }
}

/// PATCH: merge patch (strategic merge is treated as merge patch).
fn patch(
    shared: &Arc<Shared>,
    kind: Kind,
    ns: &str,
    name: &str,
    call: &Call,
) -> Result<Response<Body>, ApiError> {
    if !(call
        .content_type
        .starts_with("application/merge-patch+json")
        || call
            .content_type
            .starts_with("application/strategic-merge-patch+json"))
    {
        return Err(ApiError {
            code: 415,
            reason: "UnsupportedMediaType",
            message: format!(
                "kube-double supports merge patches only, not {:?}",
                call.content_type
            ),
            details: None,
        });
    }
    let body = call.json_body()?;
    let mut object = shared
        .lock()
        .store
        .get(kind, ns, name)
        .cloned()
        .ok_or_else(|| ApiError::not_found(kind, name))?;
    if let Some(m) = object["metadata"].as_object_mut() {
        m.remove("resourceVersion");
    }
    merge(&mut object, &body);
    replace(shared, kind, ns, name, object)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parsing() {
        let q = parse_query("&watch=true&labelSelector=a%3Db%2Cc&x=%zz&y");
        assert_eq!(q["watch"], "true");
        assert_eq!(q["labelSelector"], "a=b,c");
        assert_eq!(q["x"], "%zz");
        assert_eq!(q["y"], "");
    }

    #[test]
    fn merge_patch() {
        let mut t = json!({"a": 1, "b": {"c": 2, "d": 3}});
        merge(&mut t, &json!({"a": null, "b": {"c": 5}, "e": [1]}));
        assert_eq!(t, json!({"b": {"c": 5, "d": 3}, "e": [1]}));
    }
}
