fn main() -> anyhow::Result<()> {
    qm_api::cli::run()
}
