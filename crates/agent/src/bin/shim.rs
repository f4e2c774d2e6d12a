//! `tinykube-agent-shim`: the container shim as a binary of this crate, so
//! the crate's own tests can run containers through a real shim process
//! without building the whole `tinykube` binary. Built only with the
//! `test-shim` feature; production runs the same code as `tinykube shim`.
//! Invoked exactly like it: `tinykube-agent-shim shim -- ARGS`.

fn main() {
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    // Mirror clap in `tinykube`: drop the subcommand and its `--`.
    if args.first().is_some_and(|a| a == "shim") {
        args.remove(0);
    }
    if args.first().is_some_and(|a| a == "--") {
        args.remove(0);
    }
    std::process::exit(tinykube_agent::shim::main(args));
}
