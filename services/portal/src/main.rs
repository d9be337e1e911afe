//! `psirt-portal`: the public front door (see the library).

fn main() -> anyhow::Result<()> {
    psirt_portal::main()
}
