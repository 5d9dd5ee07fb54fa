//! The `quartermaster` command line, built inside the test package so end-to-end tests can start
//! real server and worker processes (`CARGO_BIN_EXE_qm-under-test`) and kill them.

fn main() -> anyhow::Result<()> {
    qm_api::cli::run()
}
