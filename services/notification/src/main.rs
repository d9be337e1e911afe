//! `psirt-notification`: parses arguments and config, then hands over to the library.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use psirt_kit::Shutdown;
use psirt_notification::{Application, Config, SERVICE};

#[derive(Parser)]
#[command(
    name = "psirt-notification",
    version,
    about = "PSIRT notification service: subscriptions, routing and deliveries (webhooks, e-mail, Jira, ServiceNow)"
)]
struct Cli {
    /// TOML config file; `PSIRT_*` environment variables override it.
    #[arg(long, short, env = "PSIRT_CONFIG", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve gRPC and admin HTTP (the default).
    Serve,
    /// Replay the notification read model from sequence 1, then exit.
    Rebuild,
    /// Print the effective configuration (secrets redacted) and exit.
    Config,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = Config::load(cli.config.as_deref()).context("invalid configuration")?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Config => {
            println!(
                "{}",
                serde_json::to_string_pretty(&config).unwrap_or_else(|e| format!("cannot print config: {e}"))
            );
            Ok(())
        }
        Command::Rebuild => {
            let telemetry = psirt_kit::telemetry::init(SERVICE, &config.log, &config.otel)?;
            let bar = indicatif::ProgressBar::new(0);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "rebuilding the notification read model {bar:40} {pos}/{len} events ({per_sec}, eta {eta})",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            let total = psirt_notification::rebuild(&config, |done, total| {
                bar.set_length(total);
                bar.set_position(done);
            })
            .await?;
            bar.finish();
            eprintln!("rebuilt the notification read model from {total} events");
            telemetry.shutdown();
            Ok(())
        }
        Command::Serve => {
            let telemetry = psirt_kit::telemetry::init(SERVICE, &config.log, &config.otel)?;
            let shutdown = Shutdown::on_signals();
            let app = Application::build(&config, telemetry.metrics()).await?;
            tracing::info!(grpc = %app.grpc_addr(), admin = %app.admin_addr(), "psirt-notification bound");
            let result = app.run_until_stopped(shutdown).await;
            telemetry.shutdown();
            result
        }
    }
}
