//! `GET .../pods/{name}/log`: the captured stdout+stderr as text/plain,
//! with `tailLines`, `limitBytes` and `follow`.

use crate::controller::is_terminal;
use crate::kinds::Kind;
use crate::kubelet::{has_started, log_path};
use crate::respond::{self, Body};
use crate::state::Shared;
use crate::status::ApiError;
use crate::store::uid_of;
use bytes::Bytes;
use hyper::Response;
use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::sync::Arc;
use std::time::Duration;

pub fn get(
    shared: &Arc<Shared>,
    ns: &str,
    name: &str,
    query: &HashMap<String, String>,
) -> Result<Response<Body>, ApiError> {
    let st = shared.lock();
    let pod = st
        .store
        .get(Kind::Pod, ns, name)
        .ok_or_else(|| ApiError::not_found(Kind::Pod, name))?;
    let container = pod
        .pointer("/spec/containers/0/name")
        .and_then(|v| v.as_str())
        .unwrap_or("");
    if !has_started(&st, pod) {
        return Err(ApiError::bad_request(format!(
            "container \"{container}\" in pod \"{name}\" is waiting to start: ContainerCreating"
        )));
    }
    let path = log_path(&st.dir, uid_of(pod));
    let uid = uid_of(pod).to_string();
    drop(st);
    let mut bytes = std::fs::read(&path).unwrap_or_default();
    if let Some(n) = query.get("tailLines").and_then(|s| s.parse::<usize>().ok()) {
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let lines: Vec<&str> = text.split_inclusive('\n').collect();
        bytes = lines[lines.len().saturating_sub(n)..].concat().into_bytes();
    }
    if query.get("follow").is_some_and(|v| v == "true" || v == "1") {
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let shared2 = shared.clone();
        let (ns, name) = (ns.to_string(), name.to_string());
        shared.handle.spawn(async move {
            let mut offset = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            if tx.send(Bytes::from(bytes)).await.is_err() {
                return;
            }
            loop {
                let done = {
                    let st = shared2.lock();
                    st.store.get(Kind::Pod, &ns, &name).is_none_or(|p| {
                        uid_of(p) != uid || (is_terminal(p) && !st.procs.contains_key(&uid))
                    })
                };
                let mut chunk = Vec::new();
                if let Ok(mut f) = std::fs::File::open(&path) {
                    let _ = f.seek(SeekFrom::Start(offset));
                    let _ = f.read_to_end(&mut chunk);
                }
                offset += chunk.len() as u64;
                if !chunk.is_empty() && tx.send(Bytes::from(chunk)).await.is_err() {
                    return;
                }
                if done {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        return Ok(respond::stream(rx, "text/plain"));
    }
    if let Some(n) = query
        .get("limitBytes")
        .and_then(|s| s.parse::<usize>().ok())
    {
        bytes.truncate(n);
    }
    Ok(respond::text(bytes))
}
