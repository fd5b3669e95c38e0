//! The `tfstate-operator` command: a thin CLI over the library.

use std::io::Write;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Kubernetes operator for hardened Terraform S3 state backends.
#[derive(Parser, Debug)]
#[command(name = "tfstate-operator", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print the TerraformStateBackend CustomResourceDefinition as YAML (what `crds/` holds).
    Crd,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Crd => match tfstate_operator::api::crd_yaml() {
            Ok(yaml) => {
                // A closed pipe (`| head`) is not worth a panic.
                let _ = std::io::stdout().write_all(yaml.as_bytes());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: cannot serialize the CRD: {e}");
                ExitCode::FAILURE
            }
        },
    }
}
