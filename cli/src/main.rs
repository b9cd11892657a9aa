//! `strata`: see `strata --help` and the crate documentation of `strata_cli`.

fn main() -> std::process::ExitCode {
    strata_cli::main()
}
