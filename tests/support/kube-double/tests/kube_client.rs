//! The unmodified `kube` client against the double.

use flow_kube_double::{ApiDouble, Options};
use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, DeleteParams, LogParams, PostParams, WatchEvent, WatchParams};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn client(rt: &tokio::runtime::Runtime, double: &ApiDouble) -> kube::Client {
    let config = kube::Config::new(double.url().parse().unwrap());
    rt.block_on(async { kube::Client::try_from(config).unwrap() })
}

fn block<F: Future>(rt: &tokio::runtime::Runtime, f: F) -> F::Output {
    rt.block_on(f)
}

fn phase(pod: &Value) -> &str {
    pod["status"]["phase"].as_str().unwrap_or("")
}

fn condition(job: &Value, kind: &str) -> bool {
    job["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == kind && c["status"] == "True")
}

fn job(name: &str, completions: i32, script: &str, extra_spec: Value) -> Job {
    let mut spec = json!({
        "completions": completions, "parallelism": completions, "completionMode": "Indexed",
        "backoffLimitPerIndex": 0,
        "template": {
            "metadata": {"labels": {"app": "flow"}},
            "spec": {"restartPolicy": "Never", "containers": [{
                "name": "main", "image": "busybox",
                "command": ["/bin/sh", "-c", script],
                "env": [
                    {"name": "TM", "value": "/dev/termination-log"},
                    {"name": "JOB_COMPLETION_INDEX", "valueFrom": {"fieldRef": {"fieldPath":
                        "metadata.annotations['batch.kubernetes.io/job-completion-index']"}}},
                ],
            }]},
        },
    });
    if let (Some(s), Some(extra)) = (spec.as_object_mut(), extra_spec.as_object()) {
        s.extend(extra.clone());
    }
    serde_json::from_value(json!({"apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name}, "spec": spec}))
    .unwrap()
}

/// A kube-rs watcher kept in a map by name, running on `rt`.
fn watch_into<K>(
    rt: &tokio::runtime::Runtime,
    api: Api<K>,
    config: watcher::Config,
) -> Arc<Mutex<BTreeMap<String, K>>>
where
    K: kube::Resource
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let seen = Arc::new(Mutex::new(BTreeMap::new()));
    let map = seen.clone();
    rt.spawn(async move {
        let mut events = watcher::watcher(api, config).default_backoff().boxed();
        while let Some(event) = events.next().await {
            let mut map = map.lock().unwrap();
            match event {
                Ok(Event::Apply(o) | Event::InitApply(o)) => {
                    map.insert(o.meta().name.clone().unwrap_or_default(), o);
                }
                Ok(Event::Delete(o)) => {
                    map.remove(o.meta().name.as_deref().unwrap_or(""));
                }
                _ => {}
            }
        }
    });
    seen
}

#[test]
fn configmap_conflict_through_the_written_kubeconfig() {
    let double = ApiDouble::start(Options {
        namespace: "team".into(),
        ..Options::default()
    })
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    double.write_kubeconfig(&path).unwrap();
    let rt = runtime();
    block(&rt, async {
        let kubeconfig = kube::config::Kubeconfig::read_from(&path).unwrap();
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .unwrap();
        assert_eq!(config.default_namespace, "team");
        let client = kube::Client::try_from(config).unwrap();
        let version = client.apiserver_version().await.unwrap();
        assert_eq!(
            (version.major.as_str(), version.minor.as_str()),
            ("1", "33")
        );
        let api: Api<ConfigMap> = Api::default_namespaced(client);
        let cm: ConfigMap =
            serde_json::from_value(json!({"metadata": {"name": "cfg"}, "data": {"k": "v"}}))
                .unwrap();
        let created = api.create(&PostParams::default(), &cm).await.unwrap();
        assert!(created.metadata.uid.is_some());
        assert!(created.metadata.creation_timestamp.is_some());
        match api.create(&PostParams::default(), &cm).await {
            Err(kube::Error::Api(status)) => {
                assert_eq!(status.code, 409);
                assert_eq!(status.reason, "AlreadyExists");
            }
            other => panic!("expected 409, got {other:?}"),
        }
        match api.get("missing").await {
            Err(kube::Error::Api(status)) => assert_eq!(status.code, 404),
            other => panic!("expected 404, got {other:?}"),
        }
        assert_eq!(api.list(&Default::default()).await.unwrap().items.len(), 1);
    });
    assert_eq!(double.configmaps("team").len(), 1);
    assert_eq!(
        double.count("POST", "/api/v1/namespaces/team/configmaps"),
        2
    );
}

#[test]
fn indexed_job_completes_with_termination_messages_and_logs() {
    let double = ApiDouble::start(Options::default()).unwrap();
    let rt = runtime();
    let client = client(&rt, &double);
    let pods: Api<Pod> = Api::namespaced(client.clone(), "ns1");
    let jobs: Api<Job> = Api::namespaced(client, "ns1");
    let seen = watch_into(
        &rt,
        pods.clone(),
        watcher::Config::default().labels("app=flow,job-name"),
    );
    let script = "echo out-$(JOB_COMPLETION_INDEX); printf '{\"ok\":1}' > \"$TM\"; exit 0";
    block(
        &rt,
        jobs.create(&PostParams::default(), &job("sim", 3, script, json!({}))),
    )
    .unwrap();
    assert!(
        double.wait_until(WAIT, |_| {
            let seen = seen.lock().unwrap();
            seen.len() == 3
                && seen.values().all(|p| {
                    let status = p.status.as_ref();
                    let message = status
                        .and_then(|s| s.container_statuses.as_ref())
                        .and_then(|cs| cs[0].state.as_ref())
                        .and_then(|s| s.terminated.as_ref())
                        .and_then(|t| t.message.clone());
                    status.and_then(|s| s.phase.as_deref()) == Some("Succeeded")
                        && message.as_deref() == Some("{\"ok\":1}")
                })
        }),
        "pods: {:#?}",
        double.pods("ns1")
    );
    assert!(double.wait_until(WAIT, |d| d
        .jobs("ns1")
        .iter()
        .any(|j| condition(j, "Complete"))));
    let stored = &double.jobs("ns1")[0];
    assert_eq!(stored["status"]["completedIndexes"], "0-2");
    assert_eq!(stored["status"]["succeeded"], 3);
    assert!(stored["status"]["completionTime"].is_string());
    let typed = block(&rt, jobs.get("sim")).unwrap();
    assert!(typed.status.unwrap().start_time.is_some());
    for pod in double.pods("ns1") {
        let index = pod["metadata"]["labels"]["batch.kubernetes.io/job-completion-index"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(pod["metadata"]["name"]
            .as_str()
            .unwrap()
            .starts_with(&format!("sim-{index}-")));
        assert_eq!(pod["metadata"]["ownerReferences"][0]["controller"], true);
        let log = block(
            &rt,
            pods.logs(
                pod["metadata"]["name"].as_str().unwrap(),
                &LogParams::default(),
            ),
        )
        .unwrap();
        assert_eq!(log, format!("out-{index}\n"));
    }
}

#[test]
fn fail_index_policy_gives_a_failed_job_with_failed_indexes() {
    let double = ApiDouble::start(Options::default()).unwrap();
    let rt = runtime();
    let jobs: Api<Job> = Api::namespaced(client(&rt, &double), "ns2");
    let script = "[ \"$JOB_COMPLETION_INDEX\" = 1 ] && { echo boom >&2; exit 3; }; exit 0";
    let policy = json!({"podFailurePolicy": {"rules": [
        {"action": "FailIndex", "onExitCodes": {"operator": "In", "values": [3]}}]}});
    let mut bad = job("bad", 2, script, policy);
    bad.spec
        .as_mut()
        .unwrap()
        .template
        .spec
        .as_mut()
        .unwrap()
        .containers[0]
        .termination_message_policy = Some("FallbackToLogsOnError".into());
    block(&rt, jobs.create(&PostParams::default(), &bad)).unwrap();
    assert!(double.wait_until(WAIT, |d| d
        .jobs("ns2")
        .iter()
        .any(|j| condition(j, "Failed"))));
    let stored = &double.jobs("ns2")[0];
    assert_eq!(stored["status"]["failedIndexes"], "1");
    assert_eq!(stored["status"]["completedIndexes"], "0");
    let failed = stored["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Failed")
        .unwrap();
    assert_eq!(failed["reason"], "FailedIndexes");
    let pod = double
        .pods("ns2")
        .into_iter()
        .find(|p| phase(p) == "Failed")
        .unwrap();
    assert_eq!(
        pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"],
        3
    );
    // An empty termination message falls back to the log's tail.
    assert_eq!(
        pod["status"]["containerStatuses"][0]["state"]["terminated"]["message"],
        "boom\n"
    );
}

#[test]
fn disrupted_pod_is_recreated_when_the_policy_ignores_it() {
    let double = ApiDouble::start(Options::default()).unwrap();
    let rt = runtime();
    let jobs: Api<Job> = Api::namespaced(client(&rt, &double), "ns3");
    let policy = json!({"podFailurePolicy": {"rules": [
        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}]}});
    block(
        &rt,
        jobs.create(
            &PostParams::default(),
            &job("pre", 1, "exec sleep 60", policy),
        ),
    )
    .unwrap();
    assert!(double.wait_until(WAIT, |d| d
        .pods("ns3")
        .iter()
        .any(|p| phase(p) == "Running")));
    let first = double.pods("ns3")[0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(double.disrupt_pod("ns3", &first));
    let pods = double.pods("ns3");
    let disrupted = pods
        .iter()
        .find(|p| p["metadata"]["name"] == first.as_str())
        .unwrap();
    assert_eq!(phase(disrupted), "Failed");
    assert_eq!(
        disrupted["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"],
        137
    );
    let second = |d: &ApiDouble| {
        d.pods("ns3")
            .into_iter()
            .find(|p| p["metadata"]["name"] != first.as_str() && phase(p) == "Running")
    };
    assert!(
        double.wait_until(WAIT, |d| second(d).is_some()),
        "{:#?}",
        double.jobs("ns3")
    );
    let second = second(&double).unwrap();
    assert_eq!(
        second["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"],
        "0"
    );
    assert!(double.fail_pod("ns3", second["metadata"]["name"].as_str().unwrap(), 0));
    assert!(double.wait_until(WAIT, |d| d
        .jobs("ns3")
        .iter()
        .any(|j| condition(j, "Complete"))));
    assert!(double.jobs("ns3")[0]["status"].get("failed").is_none());
}

#[test]
fn an_evicted_pod_is_killed_after_its_grace_or_ends_within_it_and_is_removed() {
    use kube::api::EvictParams;
    let double = ApiDouble::start(Options::default()).unwrap();
    let rt = runtime();
    let kube = client(&rt, &double);
    let jobs: Api<Job> = Api::namespaced(kube.clone(), "ns9");
    let pods: Api<Pod> = Api::namespaced(kube, "ns9");
    let marker = tempfile::tempdir().unwrap();
    let marker = marker.path().join("started");
    // Index 0 sleeps (its replacement finds the marker and ends); index 1 ends in 2 s.
    let script = format!(
        "case $JOB_COMPLETION_INDEX in 0) [ -e {m} ] && exit 0; touch {m}; exec sleep 60;; *) sleep 2;; esac",
        m = marker.display()
    );
    let policy = json!({"podFailurePolicy": {"rules": [
        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}]}});
    block(
        &rt,
        jobs.create(&PostParams::default(), &job("evict", 2, &script, policy)),
    )
    .unwrap();
    let running = |d: &ApiDouble| {
        let mut pods: Vec<Value> = d
            .pods("ns9")
            .into_iter()
            .filter(|p| phase(p) == "Running")
            .collect();
        pods.sort_by_key(|p| {
            p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"].to_string()
        });
        pods
    };
    assert!(double.wait_until(WAIT, |d| running(d).len() == 2));
    let [first, second] = [0, 1].map(|i| {
        running(&double)[i]["metadata"]["name"]
            .as_str()
            .unwrap()
            .to_string()
    });
    // With a grace period, as `kubectl drain --grace-period` sends it (kube-rs 5's
    // `Api::evict` spells it `delete_options`, which a real API server ignores).
    let (code, body) = raw(
        &double,
        "POST",
        &format!("/api/v1/namespaces/ns9/pods/{first}/eviction"),
        &json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": first},
            "deleteOptions": {"gracePeriodSeconds": 1}})
        .to_string(),
    );
    assert_eq!(code, 201, "{body}");
    // The pod's own grace period (the default 30 s).
    block(&rt, pods.evict(&second, &EvictParams::default())).unwrap();
    // Both are marked at once and still run.
    for name in [&first, &second] {
        let pod = double
            .pods("ns9")
            .into_iter()
            .find(|p| p["metadata"]["name"] == name.as_str())
            .unwrap();
        assert_eq!(phase(&pod), "Running");
        assert!(pod["metadata"]["deletionTimestamp"].is_string(), "{pod:#}");
        let disruption = pod["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "DisruptionTarget")
            .cloned()
            .unwrap();
        assert_eq!(disruption["reason"], "EvictionByEvictionAPI");
    }
    // The Job ends Complete: index 0 was recreated (the eviction did not count), index 1
    // ended within its grace and was not; both evicted pods are gone.
    assert!(
        double.wait_until(WAIT, |d| d
            .jobs("ns9")
            .iter()
            .any(|j| condition(j, "Complete"))),
        "{:#?}",
        double.jobs("ns9")
    );
    assert!(double.wait_until(WAIT, |d| d
        .pods("ns9")
        .iter()
        .all(
            |p| p["metadata"]["name"] != first.as_str() && p["metadata"]["name"] != second.as_str()
        )));
    let left = double.pods("ns9");
    assert_eq!(left.len(), 1, "{left:#?}");
    assert_eq!(
        left[0]["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"],
        "0"
    );
    let status = &double.jobs("ns9")[0]["status"];
    assert_eq!(status["succeeded"], 2, "{status:#}");
    assert!(status.get("failed").is_none(), "{status:#}");
    let evictions: Vec<u16> = double
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/eviction"))
        .map(|r| r.code)
        .collect();
    assert_eq!(evictions, [201, 201]);
    // A pod that does not exist: 404.
    assert!(matches!(
        block(&rt, pods.evict("nope", &EvictParams::default())),
        Err(kube::Error::Api(s)) if s.code == 404
    ));
}

#[test]
fn watcher_relists_after_expiry_and_keeps_seeing_changes() {
    let double = ApiDouble::start(Options::default()).unwrap();
    let rt = runtime();
    let api: Api<ConfigMap> = Api::namespaced(client(&rt, &double), "ns4");
    let seen = watch_into(&rt, api.clone(), watcher::Config::default());
    let streamed = watch_into(
        &rt,
        api.clone(),
        watcher::Config::default().streaming_lists(),
    );
    let cm = |name: &str| -> ConfigMap {
        serde_json::from_value(json!({"metadata": {"name": name}})).unwrap()
    };
    block(&rt, api.create(&PostParams::default(), &cm("a"))).unwrap();
    assert!(double.wait_until(WAIT, |_| seen.lock().unwrap().contains_key("a")));
    let lists = |d: &ApiDouble| d.requests().iter().filter(|r| r.is_list()).count();
    let before = lists(&double);
    assert!(double.wait_until(WAIT, |d| d.requests().iter().any(|r| r.is_watch())));
    double.expire_watches();
    assert!(
        double.wait_until(WAIT, |d| lists(d) > before),
        "no re-LIST: {:#?}",
        double.requests()
    );
    block(&rt, api.create(&PostParams::default(), &cm("b"))).unwrap();
    assert!(
        double.wait_until(WAIT, |_| seen.lock().unwrap().contains_key("b")
            && streamed.lock().unwrap().contains_key("b"))
    );

    // A watch from a compacted version gets the 410 ERROR event.
    let event = block(&rt, async {
        let mut stream = api
            .watch(&WatchParams::default(), "2")
            .await
            .unwrap()
            .boxed();
        stream.next().await.unwrap().unwrap()
    });
    match event {
        WatchEvent::Error(status) => {
            assert_eq!((status.code, status.reason.as_str()), (410, "Expired"))
        }
        other => panic!("expected a 410 ERROR event, got {other:?}"),
    }
}

#[test]
fn injected_failures() {
    let double = ApiDouble::start(Options::default()).unwrap();
    let rt = runtime();
    let api: Api<ConfigMap> = Api::namespaced(client(&rt, &double), "ns5");
    let path = "/api/v1/namespaces/ns5/configmaps";
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "x"}})).unwrap();
    double.inject_failure("POST", path, 500, 1);
    match block(&rt, api.create(&PostParams::default(), &cm)) {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 500),
        other => panic!("expected 500, got {other:?}"),
    }
    block(&rt, api.create(&PostParams::default(), &cm)).unwrap();
    // kube-rs retries a 429 by itself (honouring Retry-After).
    double.inject_failure("GET", path, 429, 1);
    block(&rt, api.get("x")).unwrap();
    assert_eq!(double.count("POST", path), 2);
    assert_eq!(double.count("GET", path), 2);
}

fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid, 0) == 0 }
}

#[test]
fn background_delete_removes_pods_and_kills_processes() {
    let double = ApiDouble::start(Options::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let jobs: Api<Job> = Api::namespaced(client(&rt, &double), "ns6");
    let script = format!(
        "echo $$$$ > {}/pid-$(JOB_COMPLETION_INDEX); exec sleep 60",
        dir.path().display()
    );
    block(
        &rt,
        jobs.create(&PostParams::default(), &job("long", 2, &script, json!({}))),
    )
    .unwrap();
    let pid = |i: usize| {
        std::fs::read_to_string(dir.path().join(format!("pid-{i}")))
            .ok()?
            .trim()
            .parse::<i32>()
            .ok()
    };
    assert!(double.wait_until(WAIT, |d| {
        d.pods("ns6")
            .iter()
            .filter(|p| phase(p) == "Running")
            .count()
            == 2
            && pid(0).is_some()
            && pid(1).is_some()
    }));
    let pids = [pid(0).unwrap(), pid(1).unwrap()];
    assert!(pids.iter().all(|p| alive(*p)));
    block(&rt, jobs.delete("long", &DeleteParams::background())).unwrap();
    assert!(double.jobs("ns6").is_empty());
    assert!(double.pods("ns6").is_empty());
    assert!(double.wait_until(WAIT, |_| pids.iter().all(|p| !alive(*p))));
}

#[test]
fn ttl_zero_deletes_a_finished_job() {
    let double = ApiDouble::start(Options::default()).unwrap();
    let rt = runtime();
    let jobs: Api<Job> = Api::namespaced(client(&rt, &double), "ns7");
    block(
        &rt,
        jobs.create(
            &PostParams::default(),
            &job("brief", 1, "exit 0", json!({"ttlSecondsAfterFinished": 0})),
        ),
    )
    .unwrap();
    assert!(double.wait_until(WAIT, |d| d.count("GET", "/nothing") == 0
        && !d.pods("ns7").is_empty()));
    assert!(double.wait_until(WAIT, |d| d.jobs("ns7").is_empty()
        && d.pods("ns7").is_empty()));
}

#[test]
fn capacity_secrets_and_deadlines() {
    let secrets = BTreeMap::from([(
        "creds".to_string(),
        BTreeMap::from([("token".to_string(), "s3cr3t".to_string())]),
    )]);
    let double = ApiDouble::start(Options {
        max_running_pods: Some(1),
        secrets,
        ..Options::default()
    })
    .unwrap();
    let rt = runtime();
    let jobs: Api<Job> = Api::namespaced(client(&rt, &double), "ns8");

    // One slot: the second pod waits, unschedulable, until the first ends.
    block(
        &rt,
        jobs.create(
            &PostParams::default(),
            &job("cap", 2, "exec sleep 60", json!({})),
        ),
    )
    .unwrap();
    assert!(double.wait_until(WAIT, |d| {
        let pods = d.pods("ns8");
        pods.len() == 2
            && pods.iter().any(|p| phase(p) == "Running")
            && pods
                .iter()
                .any(|p| p["status"]["conditions"][0]["reason"] == "Unschedulable")
    }));
    let running = double
        .pods("ns8")
        .into_iter()
        .find(|p| phase(p) == "Running")
        .unwrap();
    assert!(double.fail_pod("ns8", running["metadata"]["name"].as_str().unwrap(), 0));
    assert!(double.wait_until(WAIT, |d| d
        .pods("ns8")
        .iter()
        .filter(|p| phase(p) == "Running")
        .count()
        == 1
        && d.pods("ns8")
            .iter()
            .filter(|p| phase(p) == "Succeeded")
            .count()
            == 1));
    block(&rt, jobs.delete("cap", &DeleteParams::foreground())).unwrap();
    assert!(double.wait_until(WAIT, |d| d.pods("ns8").is_empty()));

    // A secret reference resolves; a missing one blocks the pod.
    let mut with_secret = job("sec", 1, "printf \"$TOKEN\" > \"$TM\"", json!({}));
    let container = &mut with_secret
        .spec
        .as_mut()
        .unwrap()
        .template
        .spec
        .as_mut()
        .unwrap()
        .containers[0];
    container.env.as_mut().unwrap().push(
        serde_json::from_value(json!(
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}}))
        .unwrap(),
    );
    block(&rt, jobs.create(&PostParams::default(), &with_secret)).unwrap();
    let message = |d: &ApiDouble, job: &str| {
        d.pods("ns8")
            .into_iter()
            .find(|p| p["metadata"]["labels"]["job-name"] == job)
            .map(|p| p["status"]["containerStatuses"][0]["state"].clone())
    };
    assert!(double.wait_until(WAIT, |d| message(d, "sec")
        .is_some_and(|s| s["terminated"]["message"] == "s3cr3t")));
    let mut missing = job("nosec", 1, "exit 0", json!({}));
    missing
        .spec
        .as_mut()
        .unwrap()
        .template
        .spec
        .as_mut()
        .unwrap()
        .containers[0]
        .env_from = Some(vec![serde_json::from_value(
        json!({"secretRef": {"name": "absent"}}),
    )
    .unwrap()]);
    block(&rt, jobs.create(&PostParams::default(), &missing)).unwrap();
    assert!(double.wait_until(WAIT, |d| message(d, "nosec")
        .is_some_and(|s| s["waiting"]["reason"] == "CreateContainerConfigError")));

    // activeDeadlineSeconds kills the process group.
    let mut late = job("late", 1, "exec sleep 60", json!({}));
    late.spec
        .as_mut()
        .unwrap()
        .template
        .spec
        .as_mut()
        .unwrap()
        .active_deadline_seconds = Some(1);
    block(&rt, jobs.create(&PostParams::default(), &late)).unwrap();
    assert!(
        double.wait_until(WAIT, |d| d.pods("ns8").into_iter().any(|p| {
            p["metadata"]["labels"]["job-name"] == "late"
                && p["status"]["reason"] == "DeadlineExceeded"
                && p["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 137
        })),
        "{:#?}",
        double.pods("ns8")
    );
}

/// Sends one raw HTTP/1.1 request; returns (status code, body).
fn raw(double: &ApiDouble, method: &str, path: &str, body: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let addr = double.url().trim_start_matches("http://").to_string();
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let code = response[9..12].parse().unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (code, body)
}

#[test]
fn bad_requests_get_status_bodies() {
    let double = ApiDouble::start(Options::default()).unwrap();
    let (code, body) = raw(&double, "GET", "/apis/apps/v1/namespaces/x/deployments", "");
    assert_eq!(code, 404);
    assert!(body.contains("\"kind\":\"Status\""), "{body}");
    let (code, body) = raw(&double, "POST", "/api/v1/namespaces/x/pods", "{not json");
    assert_eq!(code, 400, "{body}");
    let (code, body) = raw(
        &double,
        "GET",
        "/api/v1/namespaces/x/pods?labelSelector=a%20b",
        "",
    );
    assert_eq!(code, 400, "{body}");
    let (code, body) = raw(
        &double,
        "GET",
        "/api/v1/namespaces/x/pods?watch=1&resourceVersion=abc",
        "",
    );
    assert_eq!(code, 400, "{body}");
    let (code, _) = raw(&double, "GET", "/version", "");
    assert_eq!(code, 200);

    let rt = runtime();
    let jobs: Api<Job> = Api::namespaced(client(&rt, &double), "x");
    let mut bad = job("always", 1, "exit 0", json!({}));
    bad.spec
        .as_mut()
        .unwrap()
        .template
        .spec
        .as_mut()
        .unwrap()
        .restart_policy = Some("Always".into());
    match block(&rt, jobs.create(&PostParams::default(), &bad)) {
        Err(kube::Error::Api(status)) => {
            assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"))
        }
        other => panic!("expected 422, got {other:?}"),
    }
    double.inject_failure("GET", "/api/v1/namespaces/x/pods", 503, 1);
    let (code, body) = raw(&double, "GET", "/api/v1/namespaces/x/pods?watch=true", "");
    assert_eq!(code, 503, "{body}");
}
