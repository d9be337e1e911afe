//! `psirtctl admin stream plan|apply` and `psirtctl admin nats-identities`:
//! the event stream's settings, changed only by an administrator.
//!
//! Services never create or change the stream (their NATS identities may
//! not); they compare it with their `[nats.stream]` and refuse to start on a
//! difference. The administrator reviews a change with `plan` and makes it
//! with `apply`, connected with the admin NATS identity.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use psirt_eventstore::{StorageKind, StreamPlan, StreamSettings};

use crate::CliError;

/// `psirtctl admin stream <command>`.
#[derive(Debug, Subcommand)]
pub enum StreamCommand {
    /// Show what `apply` would do: create the stream, nothing, or one line
    /// per setting that differs. Changes nothing.
    Plan(StreamArgs),
    /// Create the stream, or change it to the given settings (JetStream
    /// refuses some changes, such as the storage kind, with the reason).
    Apply(StreamArgs),
}

/// Where JetStream keeps the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Storage {
    File,
    Memory,
}

/// The NATS connection and the wanted settings (the same as the services'
/// `[nats]` and `[nats.stream]`).
#[derive(Debug, Clone, Args)]
pub struct StreamArgs {
    /// NATS server URL(s), comma-separated.
    #[arg(long, env = "PSIRT_NATS_URL", default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,
    /// The admin identity's NKey seed file.
    #[arg(long, env = "PSIRT_NATS_NKEY_SEED_FILE", conflicts_with = "nats_creds")]
    pub nats_nkey_seed_file: Option<PathBuf>,
    /// The admin identity's `.creds` file (made with nsc).
    #[arg(long, env = "PSIRT_NATS_CREDENTIALS_FILE")]
    pub nats_creds: Option<PathBuf>,
    /// CA certificate (PEM) of the NATS servers; TLS is then required.
    #[arg(long, env = "PSIRT_NATS_CA_FILE")]
    pub nats_ca_file: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS, with --nats-client-key.
    #[arg(long, env = "PSIRT_NATS_CLIENT_CERT", requires = "nats_client_key")]
    pub nats_client_cert: Option<PathBuf>,
    /// Private key (PEM) of the client certificate.
    #[arg(long, env = "PSIRT_NATS_CLIENT_KEY", requires = "nats_client_cert")]
    pub nats_client_key: Option<PathBuf>,
    /// Stream name.
    #[arg(long, default_value = "PSIRT_EVENTS")]
    pub name: String,
    /// Replicas: 1 on a single server, 3 in a cluster.
    #[arg(long, default_value_t = 1)]
    pub replicas: usize,
    #[arg(long, value_enum, default_value = "file")]
    pub storage: Storage,
    /// Seconds after which events are deleted; 0 keeps them forever.
    #[arg(long, default_value_t = 0)]
    pub max_age_secs: u64,
    /// Needed for any --max-age-secs other than 0: events are the source of truth.
    #[arg(long)]
    pub allow_expiry: bool,
    /// Seconds in which a repeated event id is dropped as a duplicate.
    #[arg(long, default_value_t = 120)]
    pub duplicate_window_secs: u64,
    /// Largest event in bytes.
    #[arg(long, default_value_t = 1024 * 1024)]
    pub max_msg_size: i32,
}

impl StreamArgs {
    /// The settings the arguments describe.
    pub fn settings(&self) -> StreamSettings {
        StreamSettings {
            name: self.name.clone(),
            replicas: self.replicas,
            storage: match self.storage {
                Storage::File => StorageKind::File,
                Storage::Memory => StorageKind::Memory,
            },
            max_age_secs: self.max_age_secs,
            allow_expiry: self.allow_expiry,
            duplicate_window_secs: self.duplicate_window_secs,
            max_msg_size: self.max_msg_size,
            manage: true,
            ..StreamSettings::default()
        }
    }

    async fn connect(&self) -> Result<async_nats::Client, CliError> {
        let servers = self
            .nats_url
            .split(',')
            .map(|url| {
                url.trim().parse::<async_nats::ServerAddr>().map_err(|e| {
                    CliError::Usage(format!("--nats-url: {:?} is not a NATS server URL: {e}", url.trim()))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut options = async_nats::ConnectOptions::new()
            .name("psirtctl")
            .connection_timeout(Duration::from_secs(5))
            .request_timeout(Some(Duration::from_secs(10)));
        if let Some(path) = &self.nats_nkey_seed_file {
            let seed = std::fs::read_to_string(path)
                .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", path.display())))?;
            options = options.nkey(seed.trim().to_owned());
        }
        if let Some(path) = &self.nats_creds {
            options = options
                .credentials_file(path)
                .await
                .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", path.display())))?;
        }
        if let Some(ca) = &self.nats_ca_file {
            options = options.add_root_certificates(ca.clone()).require_tls(true);
        }
        if let (Some(cert), Some(key)) = (&self.nats_client_cert, &self.nats_client_key) {
            options = options.add_client_certificate(cert.clone(), key.clone());
        }
        options
            .connect(servers)
            .await
            .map_err(|e| CliError::Connect { server: self.nats_url.clone(), reason: e.to_string() })
    }
}

fn describe(plan: &StreamPlan, name: &str, applied: bool) -> String {
    match (plan, applied) {
        (StreamPlan::Create, false) => format!("stream {name}: missing, apply creates it"),
        (StreamPlan::Create, true) => format!("stream {name}: created"),
        (StreamPlan::Unchanged(_), _) => format!("stream {name}: as configured, nothing to change"),
        (StreamPlan::Update { differences, .. }, applied) => format!(
            "stream {name}: {}\n  {}",
            if applied { "changed" } else { "apply changes" },
            differences.join("\n  ")
        ),
    }
}

/// Runs `admin stream plan|apply`.
pub async fn run(command: StreamCommand, out: &mut dyn Write) -> Result<(), CliError> {
    let (args, apply) = match command {
        StreamCommand::Plan(args) => (args, false),
        StreamCommand::Apply(args) => (args, true),
    };
    let settings = args.settings();
    let problems = settings.problems();
    if !problems.is_empty() {
        return Err(CliError::Usage(problems.join("; ")));
    }
    let js = async_nats::jetstream::ContextBuilder::new()
        .timeout(Duration::from_secs(10))
        .build(args.connect().await?);
    let plan = if apply {
        psirt_eventstore::apply_stream(&js, &settings).await
    } else {
        psirt_eventstore::plan_stream(&js, &settings).await
    }
    .map_err(|e| CliError::Other(e.into()))?;
    writeln!(out, "{}", describe(&plan, &settings.name, apply))?;
    Ok(())
}

/// `psirtctl admin nats-identities`.
#[derive(Debug, Clone, Args)]
pub struct IdentitiesArgs {
    /// Folder for the seeds (`<name>.nk`, mode 0600) and `nats-identities.env`
    /// (the public keys the server configuration reads). Existing seeds are kept.
    pub dir: PathBuf,
}

/// Who has a NATS identity.
pub const IDENTITIES: [&str; 5] = ["admin", "intake", "triage", "remediation", "notification"];

/// Makes an NKey pair per identity (keeping seeds already there) and
/// writes the public keys as `PSIRT_NATS_<NAME>_NKEY=...` lines.
pub fn identities(args: &IdentitiesArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let dir = &args.dir;
    std::fs::create_dir_all(dir)
        .map_err(|e| CliError::Usage(format!("cannot create {}: {e}", dir.display())))?;
    let mut env = String::new();
    for name in IDENTITIES {
        let path = dir.join(format!("{name}.nk"));
        let pair = match std::fs::read_to_string(&path) {
            Ok(seed) => nkeys::KeyPair::from_seed(seed.trim())
                .map_err(|e| CliError::Usage(format!("{} holds no NKey seed: {e}", path.display())))?,
            Err(_) => {
                let pair = nkeys::KeyPair::new_user();
                let seed = pair.seed().map_err(|e| CliError::Other(anyhow::anyhow!("nkey seed: {e}")))?;
                write_private(&path, &format!("{seed}\n"))?;
                pair
            }
        };
        env.push_str(&format!("PSIRT_NATS_{}_NKEY={}\n", name.to_uppercase(), pair.public_key()));
    }
    let env_path = dir.join("nats-identities.env");
    std::fs::write(&env_path, &env)
        .map_err(|e| CliError::Usage(format!("cannot write {}: {e}", env_path.display())))?;
    write!(out, "{env}")?;
    Ok(())
}

fn write_private(path: &Path, text: &str) -> Result<(), CliError> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file =
        options.open(path).map_err(|e| CliError::Usage(format!("cannot create {}: {e}", path.display())))?;
    file.write_all(text.as_bytes())
        .map_err(|e| CliError::Usage(format!("cannot write {}: {e}", path.display())))
}
