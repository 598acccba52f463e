//! The `flow` binary: thin glue over `flow_engine::commands`.

use clap::Parser;

fn main() {
    let cli = flow_engine::cli::Cli::parse();
    std::process::exit(flow_engine::commands::run(cli.command));
}
