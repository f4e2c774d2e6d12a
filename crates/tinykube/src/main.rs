//! # tinykube: Kubernetes in miniature, in one binary
//!
//! `tinykube server` runs a whole cluster in one process: the store (an
//! etcd-like MVCC database), the api-server, the scheduler, the
//! controller-manager and a node agent that runs pods' containers as local
//! processes. The other subcommands are a small kubectl: `apply`, `get`,
//! `describe`, `delete`, `scale`, `logs`, `rollout status`.
//!
//! # Layout
//! - `server`: wiring the components together, and one shutdown story.
//! - `agent_cmd`: a standalone node agent joining a running server.
//! - `kubeconfig`: writing and finding the kubeconfig.
//! - `cli`: the kubectl-like commands.
//! - `bench`, `bench_docker`, `bench_join`, `bench_failover`: benchmarks,
//!   as commands (see BENCHMARKS.md).

mod agent_cmd;
mod bench;
mod bench_docker;
mod bench_failover;
mod bench_join;
mod cli;
mod cluster_pki;
mod kubeconfig;
mod server;

use std::time::Duration;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "tinykube", version, about = "Kubernetes in miniature: a whole cluster in one binary")]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    global: cli::Global,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the control plane and a local node agent.
    Server(server::ServerArgs),
    /// Run a node agent that joins a running server.
    Agent(agent_cmd::AgentArgs),
    /// Create or update objects from manifests (files, directories or -).
    Apply {
        /// Manifest file, directory, or - for standard input (repeatable).
        #[arg(short = 'f', long = "filename", required = true)]
        files: Vec<String>,
    },
    /// List objects, or show one.
    Get {
        /// Kind: pods, po, deployments, deploy, nodes, ... or KIND/NAME.
        kind: String,
        name: Option<String>,
        /// List across all namespaces.
        #[arg(short = 'A', long)]
        all_namespaces: bool,
        /// Label selector, e.g. app=web,tier!=db.
        #[arg(short = 'l', long)]
        selector: Option<String>,
        #[arg(short = 'o', long, value_enum)]
        output: Option<cli::get::Output>,
    },
    /// Show an object in detail, with its events.
    Describe { kind: String, name: Option<String> },
    /// Delete objects by kind and name, or those named in manifests.
    Delete {
        kind: Option<String>,
        name: Option<String>,
        #[arg(short = 'f', long = "filename")]
        files: Vec<String>,
        /// Wait until the objects are gone (as kubectl does by default).
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        wait: bool,
    },
    /// Set the replica count of a deployment or replicaset.
    Scale {
        /// KIND/NAME, e.g. deployment/web.
        target: String,
        #[arg(long)]
        replicas: i32,
    },
    /// Print a container's log.
    Logs {
        pod: String,
        #[arg(short = 'c', long)]
        container: Option<String>,
        #[arg(short = 'f', long)]
        follow: bool,
        /// Only the last N lines (-1: all).
        #[arg(long, default_value_t = -1)]
        tail: i64,
        /// The previous instance of a restarted container.
        #[arg(short = 'p', long)]
        previous: bool,
    },
    /// Measure tinykube (see BENCHMARKS.md).
    Bench {
        #[command(subcommand)]
        which: BenchWhich,
    },
    /// Follow a rollout.
    Rollout {
        #[command(subcommand)]
        action: RolloutAction,
    },
    /// The pod sandbox's process (the "pause" container): sleeps until
    /// SIGTERM or SIGINT, holding the pod's namespaces.
    #[command(hide = true)]
    Pause,
    /// The per-container supervisor the agent starts (containerd-shim's
    /// role): `tinykube shim -- --log FILE --exit-file FILE -- COMMAND...`.
    #[command(hide = true, disable_help_flag = true)]
    Shim {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
}

#[derive(Debug, Subcommand)]
enum BenchWhich {
    /// Start-up time, idle memory and a Deployment's time to Running.
    Skeleton(bench::SkeletonArgs),
    /// The REST API under a steady request rate, watch delivery, and a
    /// server holding 10,000 pods.
    Load(bench::LoadArgs),
    /// The disk's latency for a 4 KiB write plus fdatasync.
    Disk(bench::DiskArgs),
    /// Pod start-up with the docker runtime against the engine's own
    /// floor, and the agent's memory with 50 pods.
    Docker(bench_docker::DockerArgs),
    /// Agents joining a server (start → Node Ready), and the server's
    /// memory with their pods.
    Join(bench_join::JoinArgs),
    /// A node's death to its pods Running elsewhere, part by part:
    /// detection, taint, eviction, rescheduling, start-up.
    Failover(bench_failover::FailoverArgs),
}

#[derive(Debug, Subcommand)]
enum RolloutAction {
    /// Wait until a deployment's rollout is complete.
    Status {
        /// deployment/NAME
        target: String,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 600)]
        timeout: u64,
    },
}

fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}

fn main() {
    let cli = Cli::parse();
    if let Command::Shim { args } = &cli.command {
        // Before logging and the async runtime: the shim needs neither.
        std::process::exit(agent::shim::main(args.clone()));
    }
    if let Command::Pause = &cli.command {
        std::process::exit(agent::runtime::docker::pause());
    }
    let daemon = matches!(cli.command, Command::Server(_) | Command::Agent(_));
    init_logging(if daemon { "info" } else { "warn" });
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = runtime.block_on(dispatch(cli)) {
        eprintln!("{e:#}");
        std::process::exit(1);
    }
    // Don't wait for blocking tasks (a stdin reader, say) on the way out.
    runtime.shutdown_timeout(Duration::from_millis(100));
}

async fn dispatch(cli: Cli) -> anyhow::Result<()> {
    use cli::Ctx;
    let g = &cli.global;
    match cli.command {
        Command::Server(args) => server::run(args).await,
        Command::Bench { which: BenchWhich::Skeleton(args) } => bench::skeleton(args).await,
        Command::Bench { which: BenchWhich::Load(args) } => bench::load(args).await,
        Command::Bench { which: BenchWhich::Disk(args) } => bench::disk(args).await,
        Command::Bench { which: BenchWhich::Docker(args) } => bench_docker::docker(args).await,
        Command::Bench { which: BenchWhich::Join(args) } => bench_join::join(args).await,
        Command::Bench { which: BenchWhich::Failover(args) } => bench_failover::failover(args).await,
        Command::Agent(args) => agent_cmd::run(args).await,
        Command::Apply { files } => cli::apply::apply(&Ctx::connect(g)?, &files).await,
        Command::Get { kind, name, all_namespaces, selector, output } => {
            let (info, name) = cli::kind_and_name(&kind, name.as_deref())?;
            let args = cli::get::GetArgs { info, name, all_namespaces, selector: selector.as_deref(), output };
            cli::get::get(&Ctx::connect(g)?, args).await
        }
        Command::Describe { kind, name } => {
            let (info, name) = cli::kind_and_name(&kind, name.as_deref())?;
            let name = name.ok_or_else(|| anyhow::anyhow!("error: describe needs a NAME"))?;
            cli::get::describe(&Ctx::connect(g)?, info, name).await
        }
        Command::Delete { kind, name, files, wait } => {
            let ctx = Ctx::connect(g)?;
            if !files.is_empty() {
                return cli::apply::delete_files(&ctx, &files, wait).await;
            }
            let kind = kind.ok_or_else(|| anyhow::anyhow!("error: you must provide one or more resources by argument or filename (-f)"))?;
            let (info, name) = cli::kind_and_name(&kind, name.as_deref())?;
            let name = name.ok_or_else(|| anyhow::anyhow!("error: resource(s) were provided, but no name was specified"))?;
            let ns = ctx.namespace.clone();
            cli::ops::delete_one(&ctx, info, &ns, name, wait).await
        }
        Command::Scale { target, replicas } => {
            let (info, name) = cli::kind_and_name(&target, None)?;
            let name = name.ok_or_else(|| anyhow::anyhow!("error: scale needs KIND/NAME"))?;
            cli::ops::scale(&Ctx::connect(g)?, info, name, replicas).await
        }
        Command::Logs { pod, container, follow, tail, previous } => {
            cli::ops::logs(&Ctx::connect(g)?, &pod, container.as_deref(), follow, tail, previous).await
        }
        Command::Rollout { action: RolloutAction::Status { target, timeout } } => {
            let (info, name) = cli::kind_and_name(&target, None)?;
            let name = name.ok_or_else(|| anyhow::anyhow!("error: rollout status needs deployment/NAME"))?;
            cli::ops::rollout_status(&Ctx::connect(g)?, info, name, Duration::from_secs(timeout)).await
        }
        // Handled in `main`, before logging and the async runtime start.
        Command::Shim { .. } => anyhow::bail!("tinykube shim must not run inside the async runtime"),
        Command::Pause => anyhow::bail!("tinykube pause must not run inside the async runtime"),
    }
}

/// Sends a signal to a process.
#[allow(unsafe_code)]
pub(crate) fn signal_process(pid: u32, sig: i32) {
    // SAFETY: kill(2) has no memory-safety preconditions; a stale pid only
    // makes it fail with ESRCH.
    unsafe {
        libc::kill(pid as i32, sig);
    }
}

/// Sends a signal to every process of the group `pgid`.
#[allow(unsafe_code)]
pub(crate) fn signal_process_group(pgid: u32, sig: i32) {
    // SAFETY: as in `signal_process`; a negative pid names a process group.
    unsafe {
        libc::kill(-(pgid as i32), sig);
    }
}
