//! The `quartermaster` command line: serve (default), worker, migrate, demo, reseal, token, and
//! the offline forecast, replenish-sim, route and pricing commands.

use anyhow::Context;
use clap::{Parser, Subcommand};
use qm_domain::Role;

use crate::app::{Application, connect_and_migrate};
use crate::auth::jwt::JwtKeys;
use crate::config::Config;
use crate::jobs::worker::{self, Registry, WorkerConfig};
use crate::services::tenants;

#[derive(Parser)]
#[command(name = "quartermaster", version, about = "Multi-tenant supply-chain backend with a GraphQL API")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the GraphQL API (the default), with background workers in the same process.
    Serve {
        /// Do not run background workers in this process (run `quartermaster worker` instead).
        #[arg(long)]
        no_workers: bool,
    },
    /// Run background workers only (any number may run beside `serve`).
    Worker,
    /// Apply database migrations and exit.
    Migrate,
    /// Seed the demo tenant (slug "demo") if it does not exist.
    Demo,
    /// Seal every stored secret (connector credentials, webhook endpoints' signing secrets,
    /// contract signing keys) again with the first key of QM_CONNECTOR_KEYS, so older keys can
    /// be removed after a rotation. Exits with 1 when a value does not open (it is left as it is).
    Reseal {
        /// Count what would be sealed again, and find what does not open; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Forecast a CSV of demand history offline (no database).
    Forecast(crate::forecast::cli::ForecastArgs),
    /// Replay the last periods of a demand history against the replenishment policy and two
    /// baselines, offline (no database).
    ReplenishSim(crate::replenish::sim::ReplenishSimArgs),
    /// Recommend prices from a CSV of daily history and a CSV of stock, offline (no database).
    /// Exits with 2 on bad input.
    Pricing(crate::pricing::cli::PricingArgs),
    /// Solve a vehicle-routing benchmark instance (Solomon or VRPLIB) offline (no database).
    Route(crate::routing::cli::RouteArgs),
    /// Check an exported contract ledger with the tenant's public key alone, offline. Exits with
    /// 1 when the ledger is broken, 2 when the file or the key cannot be used.
    ContractLedgerVerify(crate::contracts::verify::VerifyArgs),
    /// Plan a day's returned items from a JSON file offline (no database): a disposition and a
    /// destination each. Exits with 2 on bad input.
    ReturnsPlan(crate::returns::cli::ReturnsPlanArgs),
    /// Allocate orders to shipping locations from a JSON file offline (no database): a location
    /// per line. Exits with 2 on bad input.
    Allocate(crate::allocation::cli::AllocateArgs),
    /// Mint a JWT for local use.
    Token {
        /// Tenant slug.
        #[arg(long)]
        tenant: String,
        /// Role to grant; repeat for several.
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
        /// Subject (user) the token speaks for.
        #[arg(long, default_value = "cli")]
        subject: String,
    },
}

pub fn run() -> anyhow::Result<()> {
    match Cli::parse().command.unwrap_or(Command::Serve { no_workers: false }) {
        // Offline: no configuration, database or runtime.
        Command::Forecast(args) => forecast(&args),
        Command::ReplenishSim(args) => replenish_sim(&args),
        Command::Route(args) => route(&args),
        Command::Pricing(args) => pricing(&args),
        Command::ContractLedgerVerify(args) => contract_ledger_verify(&args),
        Command::ReturnsPlan(args) => returns_plan(&args),
        Command::Allocate(args) => allocate(&args),
        command => run_service(command),
    }
}

fn forecast(args: &crate::forecast::cli::ForecastArgs) -> anyhow::Result<()> {
    let summary = crate::forecast::cli::run(args)?;
    if args.output.as_os_str() != "-" {
        eprintln!("forecast {} series, {} rows -> {}", summary.series, summary.rows, args.output.display());
    }
    Ok(())
}

fn replenish_sim(args: &crate::replenish::sim::ReplenishSimArgs) -> anyhow::Result<()> {
    let report = crate::replenish::sim::run(args)?;
    // The summary goes to standard error when the rows go to standard output.
    let summary = crate::replenish::sim::render(&report);
    if args.output.as_os_str() == "-" {
        eprint!("{summary}");
    } else {
        print!("{summary}");
        println!("{} series, {} rows -> {}", report.series, report.rows, args.output.display());
    }
    Ok(())
}

fn route(args: &crate::routing::cli::RouteArgs) -> anyhow::Result<()> {
    let outcome = crate::routing::cli::run(args)?;
    if !outcome.unassigned.is_empty() {
        eprintln!("{} customers no vehicle can serve: {:?}", outcome.unassigned.len(), outcome.unassigned);
    }
    if args.output.as_os_str() != "-" {
        eprintln!(
            "{}: distance {} with {} vehicles ({} iterations) -> {}",
            outcome.name,
            outcome.distance,
            outcome.routes.len(),
            outcome.iterations,
            args.output.display()
        );
    }
    Ok(())
}

fn pricing(args: &crate::pricing::cli::PricingArgs) -> anyhow::Result<()> {
    match crate::pricing::cli::run(args) {
        Ok(rows) => {
            if args.output.as_os_str() != "-" {
                eprintln!("priced {} series -> {}", rows.len(), args.output.display());
            }
            Ok(())
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(e.exit_code())
        }
    }
}

fn allocate(args: &crate::allocation::cli::AllocateArgs) -> anyhow::Result<()> {
    match crate::allocation::cli::run(args) {
        Ok(plan) => {
            if args.output.as_os_str() != "-" {
                let parcels: usize = plan.allocations.iter().map(|a| a.parcels).sum();
                eprintln!(
                    "allocated {} orders in {parcels} parcels by {:?}: cost {} -> {}",
                    plan.allocations.len(),
                    plan.method,
                    plan.cost,
                    args.output.display()
                );
            }
            Ok(())
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(e.exit_code())
        }
    }
}

fn returns_plan(args: &crate::returns::cli::ReturnsPlanArgs) -> anyhow::Result<()> {
    match crate::returns::cli::run(args) {
        Ok(plan) => {
            if args.output.as_os_str() != "-" {
                let held = plan.decisions.iter().filter(|d| d.disposition.is_none()).count();
                eprintln!(
                    "planned {} items ({held} held) by {:?}: objective {}, bound {}, gap {:.4} -> {}",
                    plan.decisions.len(),
                    plan.method,
                    plan.objective,
                    plan.bound,
                    plan.gap,
                    args.output.display()
                );
            }
            Ok(())
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(e.exit_code())
        }
    }
}

fn contract_ledger_verify(args: &crate::contracts::verify::VerifyArgs) -> anyhow::Result<()> {
    use crate::contracts::verify;
    match verify::run(args) {
        Ok((export, v)) => {
            println!("{}", verify::describe(&export, &v));
            if v.ok() { Ok(()) } else { std::process::exit(1) }
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2)
        }
    }
}

fn run_service(command: Command) -> anyhow::Result<()> {
    let config = Config::load()?;
    crate::telemetry::init(config.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        match command {
            Command::Forecast(args) => forecast(&args),
            Command::ReplenishSim(args) => replenish_sim(&args),
            Command::Route(args) => route(&args),
            Command::Pricing(args) => pricing(&args),
            Command::ContractLedgerVerify(args) => contract_ledger_verify(&args),
            Command::ReturnsPlan(args) => returns_plan(&args),
            Command::Allocate(args) => allocate(&args),
            Command::Serve { no_workers } => serve(config, !no_workers).await,
            Command::Worker => worker(config).await,
            Command::Migrate => {
                connect_and_migrate(&config).await?;
                println!("migrations applied");
                Ok(())
            }
            Command::Demo => {
                let db = connect_and_migrate(&config).await?;
                let params = crate::demo::default_params(config.demo_seed, chrono::Utc::now().date_naive());
                let seeded = crate::demo::seed(&db, &params).await?;
                if seeded.created {
                    println!(
                        "demo tenant seeded: {} variants, {} days of demand rows ({} rows)",
                        seeded.variants, params.days, seeded.demand_rows
                    );
                } else {
                    println!("demo tenant already exists; nothing changed");
                }
                Ok(())
            }
            Command::Reseal { dry_run } => {
                let db = connect_and_migrate(&config).await?;
                let sealer = crate::services::connectors::sealer(config.connector_keys.as_ref(), &config.data_dir)
                    .context("connector_keys (QM_CONNECTOR_KEYS)")?;
                let report = crate::services::reseal::run(&db, &sealer, dry_run).await?;
                print!("{}", report.render(dry_run));
                if !report.unopened.is_empty() {
                    std::process::exit(1);
                }
                Ok(())
            }
            Command::Token { tenant, roles, subject } => {
                let roles = roles.iter().map(|r| Role::parse(r)).collect::<Result<Vec<_>, _>>()?;
                let db = connect_and_migrate(&config).await?;
                let t = tenants::find_by_slug(&db, &tenant)
                    .await?
                    .with_context(|| format!("no tenant with slug {tenant:?}"))?;
                let keys = JwtKeys::from_config(&config.jwt, &config.data_dir)?;
                println!("{}", keys.mint(t.id, &subject, &roles, None, chrono::Utc::now())?);
                Ok(())
            }
        }
    })
}

async fn worker(config: Config) -> anyhow::Result<()> {
    let app = Application::build_without_listener(config).await?;
    let cfg = WorkerConfig::from_config(&app.config);
    // Health, readiness and metrics for an orchestrator; no API.
    let ops = match &app.config.worker_listen {
        Some(addr) => {
            let listener =
                std::net::TcpListener::bind(addr).with_context(|| format!("binding worker_listen {addr}"))?;
            tracing::info!(address = %addr, "serving /healthz, /readyz and /metrics");
            let server = crate::http::serve_ops(listener, app.clone())?;
            let handle = server.handle();
            tokio::spawn(server);
            Some(handle)
        }
        None => None,
    };
    let (stop, handle) = worker::spawn(app, Registry::standard(), cfg);
    shutdown_signal().await;
    tracing::info!("stopping: finishing running jobs");
    let _ = stop.send(true);
    handle.await?;
    if let Some(ops) = ops {
        ops.stop(true).await;
    }
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

async fn serve(config: Config, with_workers: bool) -> anyhow::Result<()> {
    let app = Application::build(config).await?;
    let workers = with_workers
        .then(|| worker::spawn(app.state.clone(), Registry::standard(), WorkerConfig::from_config(&app.state.config)));
    let state = app.state.clone();
    let host = state.config.listen.rsplit_once(':').map(|(h, _)| h.to_owned()).unwrap_or_default();
    let host = if host == "0.0.0.0" || host.is_empty() { "127.0.0.1".to_owned() } else { host };
    println!("Quartermaster is serving GraphiQL at http://{host}:{}/graphql", app.port());
    // Before `quartermaster migrate` has run (QM_MIGRATE_ON_START=false) there is no tenant table.
    let demo = match tenants::find_by_slug(&state.db, crate::demo::DEMO_SLUG).await {
        Ok(demo) => demo,
        Err(e) => {
            tracing::warn!(error = %e, "looking for the demo tenant failed");
            None
        }
    };
    if let Some(demo) = demo
        && state.jwt.can_mint()
    {
        let token = state.jwt.mint(demo.id, "demo-admin", &[Role::Owner], None, chrono::Utc::now())?;
        println!(
            "Demo tenant owner token (valid {} s); send it as `Authorization: Bearer <token>`:",
            state.config.jwt.ttl_seconds
        );
        println!("{token}");
    }
    app.run_until_stopped(0).await?;
    if let Some((stop, handle)) = workers {
        let _ = stop.send(true);
        handle.await?;
    }
    Ok(())
}
