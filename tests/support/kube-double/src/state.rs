//! The double's whole mutable state behind one lock, and the step that
//! lets the Job controller and the kubelet react after every change.

use crate::controller::{self, JobBook};
use crate::kubelet;
use crate::store::Store;
use crate::{Options, RecordedRequest};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

/// A pending `inject_failure`.
pub struct Injection {
    pub method: String,
    pub path_prefix: String,
    pub status: u16,
    pub remaining: u32,
}

/// A pod whose process was launched and not yet reaped.
pub struct Proc {
    /// The process group id, once spawned.
    pub pgid: Option<i32>,
}

pub struct State {
    pub store: Store,
    pub options: Options,
    /// Job controller bookkeeping, by Job uid.
    pub jobs: HashMap<String, JobBook>,
    /// Launched pod processes, by pod uid.
    pub procs: HashMap<String, Proc>,
    pub requests: Vec<RecordedRequest>,
    pub injections: Vec<Injection>,
    /// Where pod logs and termination-message files live.
    pub dir: PathBuf,
}

impl State {
    pub fn new(options: Options, dir: PathBuf) -> State {
        State {
            store: Store::default(),
            options,
            jobs: HashMap::new(),
            procs: HashMap::new(),
            requests: Vec::new(),
            injections: Vec::new(),
            dir,
        }
    }

    /// Consumes one matching injected failure, if any.
    pub fn take_injection(&mut self, method: &str, path: &str) -> Option<u16> {
        let hit = self.injections.iter_mut().find(|i| {
            i.remaining > 0
                && i.method.eq_ignore_ascii_case(method)
                && path.starts_with(&i.path_prefix)
        })?;
        hit.remaining -= 1;
        let status = hit.status;
        self.injections.retain(|i| i.remaining > 0);
        Some(status)
    }
}

/// What the server, the kubelet tasks and the public handle share.
pub struct Shared {
    state: Mutex<State>,
    pub handle: tokio::runtime::Handle,
}

impl Shared {
    pub fn new(state: State, handle: tokio::runtime::Handle) -> Shared {
        Shared {
            state: Mutex::new(state),
            handle,
        }
    }

    /// The state, for reading (a poisoned lock is still usable).
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the state, then lets the controllers react (reconcile Jobs,
    /// schedule and launch pods) before the lock is released.
    pub fn mutate<R>(self: &Arc<Self>, f: impl FnOnce(&mut State) -> R) -> R {
        let mut st = self.lock();
        let result = f(&mut st);
        controller::reconcile_all(&mut st);
        let launches = kubelet::schedule(&mut st);
        drop(st);
        for launch in launches {
            self.handle.spawn(kubelet::run(self.clone(), launch));
        }
        result
    }
}
