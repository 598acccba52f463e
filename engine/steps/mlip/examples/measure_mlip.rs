//! Measures what docs/BENCHMARKS.md reports, on this machine, with the real uv and ASE:
//! cold / warm / reuse build times of the `emt` environment, and the EMT IPC overhead at
//! several sizes.
//!
//! `cargo run --release -p flow-mlip --example measure_mlip -- [ATOMS:STEPS ...]`
//! (default `108:500 500:200`; 5 repeats each). Prints Markdown table rows.

use std::path::Path;

use flow_mlip::md_benchmark::{MdSettings, SystemSettings};
use flow_mlip::{
    build_environment, run_md_benchmark, task_environment, BenchmarkRun, BuildOptions, EnvRoot,
    EnvironmentFile, GateSettings, MdBenchmarkSettings,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sizes: Vec<(u32, u32)> = {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let args = if args.is_empty() {
            vec!["108:500".to_string(), "500:200".to_string()]
        } else {
            args
        };
        args.iter()
            .map(|a| {
                let (n, s) = a.split_once(':').ok_or("sizes are ATOMS:STEPS")?;
                Ok::<_, Box<dyn std::error::Error>>((n.parse()?, s.parse()?))
            })
            .collect::<Result<_, _>>()?
    };
    let recipe = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../recipes/environments/emt.py");
    let file = EnvironmentFile::load(&recipe)?;
    let tmp = tempfile::tempdir()?;
    let root = EnvRoot::new(tmp.path().join("root"));
    let options = BuildOptions::default();

    let cold = build_environment(&root, &file, &options)?;
    std::fs::remove_dir_all(&cold.env_dir)?;
    let warm = build_environment(&root, &file, &options)?;
    let reuse = build_environment(&root, &file, &options)?;
    println!("| emt env build | cold (empty uv cache) {:.2} s | warm (cache filled, env deleted) {:.2} s | reuse (hash matches) {:.2} s |",
        cold.seconds, warm.seconds, reuse.seconds);

    let env = task_environment(&root, &reuse.env_dir, std::env::var("PATH").ok().as_deref());
    let env_file = reuse.env_dir.join(flow_mlip::env_root::ENVIRONMENT_COPY);
    for (atoms, steps) in sizes {
        let settings = MdBenchmarkSettings {
            model: "emt".into(),
            system: SystemSettings {
                element: "Cu".into(),
                atoms,
            },
            md: MdSettings {
                steps,
                warmup_steps: 5,
                timestep_fs: 1.0,
                temperature_k: 300.0,
            },
            repeats: 5,
            device: "cpu".into(),
            seed: 12345,
            gate: GateSettings::default(),
        };
        let work = tmp.path().join(format!("md-{atoms}"));
        let o = run_md_benchmark(&BenchmarkRun {
            python: &reuse.python(),
            environment_file: &env_file,
            model: "",
            device: "cpu",
            settings: &settings,
            work_dir: &work,
            env: &env,
        })?;
        let r = &o.result;
        let per_step_ms = |s: f64| 1000.0 * s / r.steps as f64;
        println!(
            "| EMT | {} | {} | {} | {:.3} ({:.2} ms/step) | {:.3} ({:.2} ms/step) | {:+.3} | {:+.2}% | {} | direct {:?} ipc {:?} |",
            r.atoms, r.steps, r.repeats, r.direct_median_s, per_step_ms(r.direct_median_s), r.ipc_median_s,
            per_step_ms(r.ipc_median_s), o.overhead_s, o.overhead_percent, o.verdict,
            r.direct_s.iter().map(|x| (x * 1000.0).round() / 1000.0).collect::<Vec<_>>(),
            r.ipc_s.iter().map(|x| (x * 1000.0).round() / 1000.0).collect::<Vec<_>>(),
        );
    }
    Ok(())
}
