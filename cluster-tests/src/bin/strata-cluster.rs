//! `strata-cluster`: the `strata` tool itself (`strata_cli::main`), built in this package so
//! that its process tests can start it from a clean checkout with
//! `env!("CARGO_BIN_EXE_strata-cluster")` (cargo names only a package's own binaries to its
//! tests). `strata-cluster master ...` is `strata master ...`.

fn main() -> std::process::ExitCode {
    strata_cli::main()
}
