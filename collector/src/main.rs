//! `aiscout-collector`: thin binary over the library.

use clap::Parser;

/// aiscout collector (skeleton: the fleet pipeline arrives in a later release).
#[derive(Debug, Parser)]
#[command(name = "aiscout-collector", version, about)]
struct Cli {}

fn main() {
    let _cli = Cli::parse();
    eprintln!(
        "aiscout-collector {}: speaks {}; serving arrives with the fleet pipeline",
        env!("CARGO_PKG_VERSION"),
        aiscout_collector::PROTOCOL_PACKAGE
    );
    std::process::exit(64);
}
