//! The `parender` command line: parses arguments and hands over to the library.
fn main() -> std::process::ExitCode {
    parender::cli::main()
}
