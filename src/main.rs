//! The `kubedst` command line. Subcommands arrive with the scenario format (see README).

fn main() {
    println!("kubedst {}", env!("CARGO_PKG_VERSION"));
}
