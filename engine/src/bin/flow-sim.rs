//! `flow-sim`: the real campaign core and SQLite state against a simulated Slurm on a
//! virtual clock (see `flow_engine::sim`).
//!
//! `flow-sim --tasks N --array-size 1000 --fail 0.01 --preempt 0.001 --seed S --output json`

use clap::{Parser, ValueEnum};
use flow_engine::sim::rng::Dist;
use flow_engine::sim::slurm::ClusterModel;
use flow_engine::sim::{default_queue_wait, default_run_time, run, SimConfig, SimReport};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    Text,
    Json,
}

fn probability(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(p) if (0.0..=1.0).contains(&p) => Ok(p),
        _ => Err(format!("`{s}` is not a probability in [0, 1]")),
    }
}

fn positive_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("`{s}` is not a positive number of seconds")),
    }
}

/// Simulate a campaign on Slurm at scale: the real campaign core and a real SQLite state
/// store, a simulated cluster on a virtual clock.
#[derive(Debug, Parser)]
#[command(name = "flow-sim", version)]
struct Args {
    /// Tasks per step.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    tasks: u64,
    /// Chained steps (each needs the previous one, condition all-completed).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=64))]
    steps: u64,
    /// Most elements in one Slurm array (`max_array_size`).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    array_size: u32,
    /// Most elements flow keeps in the queue (`max_submitted`; 0: no limit).
    #[arg(long, default_value_t = 10000)]
    max_submitted: u32,
    /// How many of flow's elements the cluster runs at once.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..))]
    slots: u64,
    /// Probability that an attempt exits with status 1.
    #[arg(long, default_value_t = 0.0, value_parser = probability)]
    fail: f64,
    /// Probability that an attempt is preempted part-way.
    #[arg(long, default_value_t = 0.0, value_parser = probability)]
    preempt: f64,
    /// Probability that an attempt's end is never reported (a fault injected to check that
    /// flow-sim notices a run that cannot end: it exits 1).
    #[arg(long, default_value_t = 0.0, value_parser = probability)]
    lose_reports: f64,
    /// `max_retries` of the step.
    #[arg(long, default_value_t = 2)]
    max_retries: u32,
    /// `max_infrastructure_retries` of the step (preemptions).
    #[arg(long, default_value_t = 5)]
    max_infra_retries: u32,
    /// First retry delay in seconds (doubling, with jitter, as flow's default backoff).
    #[arg(long, default_value_t = 10.0, value_parser = positive_seconds)]
    retry_initial: f64,
    /// Queue wait of each element: fixed:S, exp:MEAN or lognormal:MEDIAN:SIGMA (seconds).
    #[arg(long, default_value_t = default_queue_wait())]
    queue_wait: Dist,
    /// Run time of each attempt: fixed:S, exp:MEAN or lognormal:MEDIAN:SIGMA (seconds).
    #[arg(long, default_value_t = default_run_time())]
    run_time: Dist,
    /// Seconds between two squeue polls.
    #[arg(long, default_value_t = 30.0, value_parser = positive_seconds)]
    poll: f64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[arg(long, value_enum, default_value_t = Output::Text)]
    output: Output,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.fail + args.preempt > 1.0 {
        use clap::CommandFactory;
        Args::command()
            .error(
                clap::error::ErrorKind::ValueValidation,
                "--fail + --preempt must not exceed 1",
            )
            .exit();
    }
    let config = SimConfig {
        tasks: args.tasks,
        steps: args.steps as usize,
        cluster: ClusterModel {
            array_size: args.array_size,
            max_submitted: (args.max_submitted > 0).then_some(args.max_submitted),
            slots: args.slots as usize,
            queue_wait: args.queue_wait,
            run_time: args.run_time,
            fail: args.fail,
            preempt: args.preempt,
            lose_reports: args.lose_reports,
        },
        max_retries: args.max_retries,
        max_infrastructure_retries: args.max_infra_retries,
        retry_initial: Duration::from_secs_f64(args.retry_initial),
        poll: args.poll,
        seed: args.seed,
    };
    let dir = match tempfile::Builder::new().prefix("flow-sim-").tempdir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: cannot create a temporary directory: {e}");
            return ExitCode::from(1);
        }
    };
    match run(&config, dir.path()) {
        Ok(report) => {
            match args.output {
                Output::Json => match serde_json::to_string_pretty(&report) {
                    Ok(text) => println!("{text}"),
                    Err(e) => {
                        eprintln!("error: {e}");
                        return ExitCode::from(1);
                    }
                },
                Output::Text => print_text(&report),
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn print_text(r: &SimReport) {
    println!(
        "{} task(s) in {} step(s): {} succeeded, {} failed, {} blocked",
        r.tasks, r.steps, r.succeeded, r.failed, r.blocked
    );
    println!(
        "attempts {}: {} exited 1, {} preempted; retries {} (+{} infrastructure)",
        r.attempts, r.exited_1, r.preempted, r.retries, r.infrastructure_retries
    );
    println!(
        "slurm: {} sbatch call(s) (arrays of at most {}), {} squeue call(s), at most {} element(s) queued",
        r.sbatch_calls, r.elements_per_array, r.squeue_calls, r.peak_in_queue
    );
    println!(
        "driver: {:.2} s CPU, peak RSS {:.1} MB, {} commit(s) of {} change(s), state DB {:.1} MB",
        r.driver_cpu_s, r.peak_rss_mb, r.commits, r.changes_committed, r.state_db_mb
    );
    println!(
        "time: {:.1} simulated hour(s) in {:.2} s wall (setup {:.2} s, core {:.2} s, store {:.2} s, cluster {:.2} s)",
        r.simulated_hours,
        r.wall_s,
        r.phases.setup_s,
        r.phases.core_s,
        r.phases.store_s,
        r.phases.cluster_s
    );
}
