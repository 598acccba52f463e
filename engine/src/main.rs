//! The `flow` binary: thin glue over `flow_engine::commands`. A command's error is rendered
//! here, once.

use clap::Parser;

fn main() {
    let cli = flow_engine::cli::Cli::parse();
    let code = match flow_engine::commands::run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{e}");
            e.exit_code()
        }
    };
    std::process::exit(code);
}
