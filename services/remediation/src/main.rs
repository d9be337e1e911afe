//! `psirt-remediation`: the kit's service command line (`serve`, `rebuild`,
//! `config`) over the library.

fn main() -> anyhow::Result<()> {
    psirt_kit::service::main::<psirt_remediation::RemediationService>()
}
