//! The `skiff` admin command (being built).

fn main() {
    eprintln!("skiff: the admin command is being built");
    std::process::exit(2);
}
