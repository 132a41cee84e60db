//! `aiscout-fleet-sim`: many simulated agents against real collectors, over the real protocol
//! and mutual TLS, then a check of what the store holds (docs/fleet-sim.md). The work is in
//! `aiscout_e2e::fleet_sim`.
//!
//! Exit status: 0 when every agent enrolled, flushed and (with `--api`) the store matched;
//! 1 otherwise; 2 on bad arguments or when the run could not take place.

use clap::Parser;

use aiscout_e2e::fleet_sim::{run, Args};

#[allow(clippy::print_stdout)]
fn main() -> std::process::ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(report) => {
            if args.json {
                match serde_json::to_string(&report) {
                    Ok(json) => println!("{json}"),
                    Err(e) => eprintln!("aiscout-fleet-sim: cannot write the report as json: {e}"),
                }
            } else {
                print!("{}", report.text());
            }
            if report.ok() {
                std::process::ExitCode::SUCCESS
            } else {
                std::process::ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("aiscout-fleet-sim: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}
