//! Typed steps through the whole engine, against the real tools: HDF5 catalogs built with a
//! uv environment, Quantum ESPRESSO's pw.x, and an md-benchmark gate with ASE.
//! `scripts/test.sh` installs the tools; these tests fail, not skip, without them.

mod support;
use support::*;

use flow_engine::state::StateStore;
use flow_engine::task_state::TaskState;
use std::path::Path;

/// The examples directory copied to a temp dir, with a machine whose root is also there.
fn sandbox() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for sub in ["environments", "mocks", "structures"] {
        copy_dir(&root().join("examples").join(sub), &dir.path().join(sub));
    }
    let env_root = dir.path().join("rootstock");
    std::fs::write(
        dir.path().join("machine.yaml"),
        format!("machine:\n  name: sandbox\n  executor: local\n  root: {}\n  local: {{cpus: 2}}\n  job_types:\n    cpu_intensive: {{cpus_per_task: 1, time: 1h}}\n  defaults:\n    resources: {{job_type: cpu_intensive}}\n", env_root.display()),
    )
    .unwrap();
    dir
}

fn example_with_machine(dir: &Path, example: &str) -> String {
    let text = std::fs::read_to_string(root().join("examples").join(example)).unwrap();
    let text = text.replace("machine: local", "machine: machine.yaml");
    std::fs::write(dir.join(example), text).unwrap();
    example.to_string()
}

fn tasks(db: &Path) -> Vec<flow_engine::state::TaskRow> {
    StateStore::open_readonly(db)
        .unwrap()
        .load_tasks()
        .unwrap()
        .into_values()
        .collect()
}

#[test]
fn mock_catalogs_are_validated_and_exactly_the_damaged_ones_are_redone() {
    let dir = sandbox();
    let d = dir.path();
    let file = example_with_machine(d, "test_campaign.yaml");
    let out = flow(d, &["run", &file]);
    assert_ok(&out);
    let campaign = d.join("campaigns/v0.1_covariance_test");
    let catalogs = campaign.join("catalogs");
    assert!(catalogs.join("r0009/mock_z2.000.hdf5").exists());
    assert!(campaign.join("qa/summary.json").exists());
    // No temporary names left under the final directories.
    for r in std::fs::read_dir(&catalogs).unwrap() {
        for f in std::fs::read_dir(r.unwrap().path()).unwrap() {
            let name = f.unwrap().file_name().into_string().unwrap();
            assert!(!name.starts_with('.'), "temporary file left: {name}");
        }
    }
    // Delete three outputs and corrupt one: exactly those four run again.
    for gone in [
        "r0000/mock_z1.000.hdf5",
        "r0004/mock_z1.500.hdf5",
        "r0009/mock_z2.000.hdf5",
    ] {
        std::fs::remove_file(catalogs.join(gone)).unwrap();
    }
    let victim = catalogs.join("r0007/mock_z1.000.hdf5");
    let bytes = std::fs::read(&victim).unwrap();
    std::fs::write(&victim, &bytes[..bytes.len() / 3]).unwrap();
    let out = flow(d, &["run", &file]);
    assert_ok(&out);
    let redone = text(&out.stderr)
        .lines()
        .filter(|l| l.starts_with("redoing mocks/"))
        .count();
    assert_eq!(redone, 4, "{}", text(&out.stderr));
    let rows = tasks(&campaign.join("metadata/state.db"));
    let twice = rows
        .iter()
        .filter(|r| r.step == "mocks" && r.attempts == 2)
        .count();
    assert_eq!(twice, 4);
    assert!(rows.iter().all(|r| r.state == TaskState::Succeeded));
    let status = text(&flow(d, &["status", &file]).stdout);
    assert!(
        status.contains("by realization: 10 of 10 complete"),
        "{status}"
    );
}

#[test]
fn a_command_that_writes_no_valid_catalog_fails_as_invalid_output() {
    let dir = sandbox();
    let d = dir.path();
    std::fs::write(
        d.join("bad.yaml"),
        "campaign: {name: bad, version: v1, machine: machine.yaml, output: campaigns}\nsteps:\n  mocks:\n    kind: mock-generation\n    array: {r: {range: [0, 2]}}\n    command: echo not-hdf5 > {{output}}\n    output: catalogs/r{{r}}.hdf5\n    validate: {datasets: [galaxies/pos]}\n    execution: {max_retries: 1, retry_backoff: {initial: 100ms}}\n",
    )
    .unwrap();
    let out = flow(d, &["run", "bad.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stdout).contains("invalid-output"),
        "{}",
        text(&out.stdout)
    );
    assert!(
        !d.join("campaigns/v1_bad/catalogs/r0.hdf5").exists(),
        "an invalid file was published"
    );
    let rows = tasks(&d.join("campaigns/v1_bad/metadata/state.db"));
    assert!(rows.iter().all(|r| r.state == TaskState::Failed
        && r.attempts == 2
        && r.error_class.as_deref() == Some("invalid-output")));
}

#[test]
fn qe_scf_campaign_with_real_pw_x_computes_only_new_structures() {
    let dir = sandbox();
    let d = dir.path();
    let file = example_with_machine(d, "dft_factory.yaml");
    let out = flow(d, &["run", &file]);
    assert_ok(&out);
    let campaign = d.join("campaigns/v1.0_dft-factory");
    assert_eq!(
        std::fs::read_to_string(campaign.join("qa/scf-results.txt"))
            .unwrap()
            .trim(),
        "3"
    );
    let db = campaign.join("metadata/state.db");
    let store = StateStore::open_readonly(&db).unwrap();
    for row in tasks(&db).iter().filter(|r| r.step == "scf") {
        let attempts = store.attempts(&row.id).unwrap();
        let details: serde_json::Value =
            serde_json::from_str(attempts.last().unwrap().details.as_deref().unwrap()).unwrap();
        let energy = details["result"]["energy_ev"].as_f64().unwrap();
        assert!(energy < -100.0, "implausible energy {energy}");
    }
    // Active learning: one more structure -> only it runs.
    std::fs::copy(
        d.join("structures/si2.extxyz"),
        d.join("structures/si2_copy.extxyz"),
    )
    .unwrap();
    let mut text_new = std::fs::read_to_string(d.join("structures/si2_copy.extxyz")).unwrap();
    text_new = text_new.replace("1.3575 1.3575 1.3575", "1.30 1.36 1.40");
    std::fs::write(d.join("structures/si2_copy.extxyz"), text_new).unwrap();
    let out = flow(d, &["run", &file]);
    assert_ok(&out);
    assert!(
        text(&out.stdout).contains("(3 already done)"),
        "{}",
        text(&out.stdout)
    );
    // The training set: every computed structure, one extxyz frame each.
    let extxyz = std::fs::read_to_string(campaign.join("qa/scf.extxyz")).unwrap();
    let frames = extxyz.lines().filter(|l| l.contains("energy=")).count();
    assert_eq!(frames, 4, "{extxyz}");
    // One results table across structures: a row per structure (appended as each task
    // ended, compacted at the end of the run), units in the column names.
    let table = std::fs::read_to_string(campaign.join("qa/scf.results.csv")).unwrap();
    let mut lines = table.lines();
    assert_eq!(
        lines.next().unwrap(),
        "structure,status,class,attempts,energy_ev,energy_per_atom_ev,max_force_ev_per_ang,pressure_kbar,total_magnetization_bohr,final_mixing_beta,message"
    );
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 4, "{table}");
    assert!(rows.iter().all(|r| r.contains(",converged,")), "{table}");
    assert!(rows[0].starts_with("structures/fe_bcc.extxyz,"), "{table}");
    let status = flow(d, &["status", &file]);
    assert_ok(&status);
    let shown = text(&status.stdout);
    assert!(
        shown.contains("results: 4 converged, 0 failed, 0 unphysical; energy "),
        "{shown}"
    );
}

#[test]
fn md_benchmark_gate_blocks_downstream_with_the_figures() {
    let dir = sandbox();
    let d = dir.path();
    std::fs::write(
        d.join("gate.yaml"),
        "campaign: {name: gate, version: v1, machine: machine.yaml, output: campaigns}\nsteps:\n  emt-env:\n    kind: build-env\n    environment: emt\n  sanity:\n    kind: md-benchmark\n    needs: [emt-env]\n    model: emt\n    system: {element: Cu, atoms: 32}\n    md: {steps: 20, warmup_steps: 2}\n    gate: {pass_below: -1000%, marginal_below: -999%, on_fail: stop}\n  production:\n    kind: command\n    needs: [sanity]\n    command: echo should not run > qa/ran.txt\n",
    )
    .unwrap();
    let out = flow(d, &["run", "gate.yaml"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        text(&out.stderr).contains("blocked by gate"),
        "{}",
        text(&out.stderr)
    );
    assert!(!d.join("campaigns/v1_gate/qa/ran.txt").exists());
    let status = text(&flow(d, &["status", "gate.yaml"]).stdout);
    assert!(status.contains("gate stopped dependents"), "{status}");
    assert!(status.contains("FAIL"), "{status}");
    let rows = tasks(&d.join("campaigns/v1_gate/metadata/state.db"));
    let production = rows.iter().find(|r| r.step == "production").unwrap();
    assert_eq!(production.state, TaskState::Blocked);
    assert!(
        production
            .message
            .as_deref()
            .unwrap_or("")
            .contains("blocked by gate"),
        "{production:?}"
    );
    // The environment exists once under the root; a second run reuses it.
    let envs: Vec<_> = std::fs::read_dir(d.join("rootstock/envs"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert_eq!(envs.len(), 1);
}

/// A qe-scf task whose allocation runs out on its last allowed attempt (#12): class
/// `walltime`, and the engine's give-up leaves a `fatal.json` with every attempt and a
/// results-table row, as a policy's own give-up does (it left neither).
#[test]
fn qe_scf_out_of_time_with_no_retry_left_records_its_failure() {
    let dir = sandbox();
    let d = dir.path();
    let wrapper = d.join("slow-pw.sh");
    write_executable(&wrapper, "#!/bin/sh\nexec sleep 120\n");
    std::fs::write(
        d.join("c.yaml"),
        format!("campaign: {{name: qt, version: v1, machine: machine.yaml, output: out}}\nsteps:\n  scf:\n    kind: qe-scf\n    structures: structures/si2.extxyz\n    pseudopotentials: {{family: qe-debian}}\n    kpoints: {{spacing: 0.6}}\n    ecutwfc: 15\n    pw_command: {}\n    resources: {{time: 40s}}\n", wrapper.display()),
    )
    .unwrap();
    let out = flow(d, &["run", "c.yaml"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let db = d.join("out/v1_qt/metadata/state.db");
    let task = tasks(&db).remove(0);
    assert_eq!(task.error_class.as_deref(), Some("walltime"), "{task:?}");
    let fatal: Vec<_> = walk(&d.join("out/v1_qt/work"))
        .into_iter()
        .filter(|p| p.ends_with("fatal.json"))
        .collect();
    assert_eq!(fatal.len(), 1, "{:?}", walk(&d.join("out/v1_qt/work")));
    let report = std::fs::read_to_string(&fatal[0]).unwrap();
    assert!(report.contains("no retry left"), "{report}");
    let table = std::fs::read_to_string(d.join("out/v1_qt/qa/scf.results.csv")).unwrap();
    assert_eq!(table.lines().count(), 2, "{table}");
}
