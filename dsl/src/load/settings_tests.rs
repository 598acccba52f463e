//! The typed settings (`machine_settings`, `on_retry`, built-in defaults) as the loader
//! hands them over, from campaign and machine files.

use crate::load::load_campaign_text;
use crate::model::{Campaign, Provenance};
use std::time::Duration;

const CAMPAIGN: &str = "campaign: {name: c, version: v1, machine: m.yaml, output: out}\nsteps:\n  a: {kind: command, command: 'true', execution: {max_retries: 2}}\n";

fn load(machine: &str, campaign: &str) -> Result<Campaign, String> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("m.yaml"), machine).unwrap();
    // The sbatch template a machine may name: it must exist (it is checked at load).
    std::fs::write(dir.path().join("t.hbs"), "#!/bin/bash\n{{body}}\n").unwrap();
    load_campaign_text("c.yaml", campaign, dir.path()).map_err(|d| d.to_string())
}

fn origin<'p>(list: &'p [Provenance], path: &str) -> &'p Provenance {
    list.iter()
        .find(|p| p.path == path)
        .unwrap_or_else(|| panic!("no {path} in {list:?}"))
}

#[test]
fn a_machine_gives_complete_slurm_settings_with_their_origins() {
    let machine = "machine:\n  name: m\n  executor: slurm\n  slurm: {burst: 3, submit_rate: 30/min, template: t.hbs}\n  setup: {modules: [gcc/12], env: {A: b}}\n";
    let c = load(machine, CAMPAIGN).unwrap();
    let slurm = &c.machine.slurm;
    assert_eq!(slurm.burst, 3);
    assert_eq!(slurm.submit_rate.per_second(), 0.5);
    assert_eq!(slurm.poll_interval, Duration::from_secs(30), "built-in");
    assert_eq!(slurm.max_array_size, 1000, "built-in");
    assert_eq!(slurm.modules, vec!["gcc/12".to_string()]);
    assert_eq!(slurm.env.get("A").map(String::as_str), Some("b"));
    let template = slurm.template.as_ref().unwrap();
    assert!(
        template.is_absolute() && template.ends_with("t.hbs"),
        "{template:?}"
    );
    let burst = origin(&c.machine.provenance, "machine.slurm.burst");
    assert_eq!(burst.span.as_ref().map(|s| s.line), Some(4));
    let poll = origin(&c.machine.provenance, "machine.slurm.poll_interval");
    assert_eq!((poll.value.as_str(), poll.span.is_none()), ("30s", true));
    assert!(c.machine.kubernetes.is_none());
}

#[test]
fn what_the_schema_lets_through_is_a_located_error() {
    let machine = "machine:\n  name: m\n  executor: slurm\n  slurm:\n    submit_rate: 0/s\n";
    let e = load(machine, CAMPAIGN).unwrap_err();
    assert!(e.contains("m.yaml:5"), "{e}");
    assert!(e.contains("machine.slurm.submit_rate"), "{e}");
    let campaign = CAMPAIGN.replace("max_retries: 2", "on_retry: {time: x0.5}");
    let e = load("machine:\n  name: m\n  executor: local\n", &campaign).unwrap_err();
    assert!(e.contains("steps.a.execution.on_retry.time"), "{e}");
    assert!(e.contains("at least 1"), "{e}");
}

#[test]
fn kubernetes_settings_and_on_retry_are_typed() {
    let machine = "machine:\n  name: k\n  executor: kubernetes\n  kubernetes: {namespace: ns, image: img, max_submitted: 40}\n  defaults:\n    execution: {on_retry: {time: x2, max_mem: 2G}}\n";
    let c = load(machine, CAMPAIGN).unwrap();
    let k = c.machine.kubernetes.as_ref().unwrap();
    assert_eq!((k.namespace.as_str(), k.max_submitted), ("ns", Some(40)));
    assert_eq!(k.ttl_seconds_after_finished, 86_400);
    let ttl = origin(
        &c.machine.provenance,
        "machine.kubernetes.ttl_seconds_after_finished",
    );
    assert!(ttl.span.is_none());
    let on_retry = &c.steps[0].execution.on_retry;
    assert_eq!(on_retry.time_factor, Some(2.0));
    assert_eq!(on_retry.max_mem_mb, Some(2048));
}

#[test]
fn step_defaults_come_from_the_table_and_say_so() {
    let c = load("machine:\n  name: m\n  executor: local\n", CAMPAIGN).unwrap();
    let step = &c.steps[0];
    assert_eq!(step.execution.max_retries, 2);
    assert_eq!(step.execution.max_infrastructure_retries, 5);
    assert_eq!(
        step.execution.retry_backoff.initial,
        Duration::from_secs(10)
    );
    assert_eq!(step.execution.retry_backoff.max, Duration::from_secs(3600));
    assert_eq!(step.execution.retry_backoff.multiplier, 2.0);
    assert!(step.execution.retry_backoff.jitter);
    let written = origin(&step.provenance, "execution.max_retries");
    assert_eq!(
        (written.value.as_str(), written.span.is_some()),
        ("2", true)
    );
    assert_eq!(
        step.provenance
            .iter()
            .filter(|p| p.path == "execution.max_retries")
            .count(),
        1
    );
    for path in [
        "execution.timeout",
        "execution.max_infrastructure_retries",
        "execution.retry_backoff.initial",
        "condition",
    ] {
        assert!(origin(&step.provenance, path).span.is_none(), "{path}");
    }
}

#[test]
fn notify_is_the_campaigns_over_the_machines() {
    let machine =
        "machine:\n  name: m\n  executor: local\n  notify: {command: cat, failure_interval: 2m}\n";
    let campaign = format!("{CAMPAIGN}notify: {{events: [end]}}\n");
    let c = load(machine, &campaign).unwrap();
    let n = c.notify.unwrap();
    assert_eq!(n.command.as_deref(), Some("cat"));
    assert_eq!(n.failure_interval, Duration::from_secs(120));
    assert_eq!(n.events.len(), 1);
    assert!(load("machine:\n  name: m\n  executor: local\n", CAMPAIGN)
        .unwrap()
        .notify
        .is_none());
}

#[test]
fn a_missing_or_broken_sbatch_template_is_a_load_error() {
    let missing = "machine:\n  name: m\n  executor: slurm\n  slurm: {template: nowhere.hbs}\n";
    let e = load(missing, CAMPAIGN).unwrap_err();
    assert!(
        e.contains("machine.slurm.template: cannot read the sbatch template"),
        "{e}"
    );
}
