//! Whole campaigns on the Kubernetes executor against the in-process API double
//! (`flow-kube-double`): real HTTP on loopback, the unmodified `kube` client in the `flow`
//! binary, Indexed Jobs whose pods run `flow task run-manifest` as local processes.
//!
//! The scenarios are those of `tests/kubernetes_real.rs` (one harness:
//! `tests/support/kubernetes/`), as `double::<scenario>`; here they also take the fault only
//! the double produces on demand (`410 Gone` on an open watch).
//! What a real cluster adds (image pulls, scheduling, the real kubelet and Job controller) is
//! in `tests/kubernetes_real.rs`; `docs/kubernetes.md` says what is verified where. The last
//! two tests need no cluster at all: they are refused before any API call.

#[path = "support/kubernetes/mod.rs"]
mod kubernetes;
mod support;
use support::*;

kubernetes::scenario_tests!(double, crate::kubernetes::double::DoubleCluster);

#[test]
fn a_machine_without_kubernetes_settings_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("c.yaml"),
        "campaign: {name: nok8s, version: v1, machine: local, output: out}\nsteps:\n  work:\n    kind: command\n    command: 'true'\n",
    )
    .unwrap();
    let out = flow(d, &["run", "c.yaml", "--executor", "kubernetes"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("machine local has no `kubernetes:` block")
            && err.contains("flow recipes show generic-k8s"),
        "{err}"
    );
}

#[test]
fn a_misspelt_kubernetes_setting_is_a_located_error() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("machine.yaml"),
        "machine:\n  name: k\n  executor: kubernetes\n  root: /tmp/k\n  kubernetes:\n    namespce: flow\n    image: registry.invalid/flow:test\n",
    )
    .unwrap();
    std::fs::write(
        d.join("c.yaml"),
        "campaign: {name: typo, version: v1, machine: machine.yaml, output: out}\nsteps:\n  work:\n    kind: command\n    command: 'true'\n",
    )
    .unwrap();
    for args in [
        &["validate", "c.yaml"][..],
        &["plan", "c.yaml"],
        &["run", "c.yaml"],
    ] {
        let out = flow(d, args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = text(&out.stderr);
        assert!(
            err.contains("machine.yaml:6:5: machine.kubernetes.namespce: unknown field `namespce`")
                && err.contains("did you mean `namespace`?"),
            "{args:?}: {err}"
        );
    }
}
