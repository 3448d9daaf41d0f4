//! `alcor certs`: issues one certificate from a throwaway CA kept in a
//! directory, creating the CA on first use. It gives scripts and test
//! harnesses (the openstacksdk smoke, the Jepsen suite) what `alcor dev`
//! generates for its own members: member certificates for the Raft and API
//! listeners, and client certificates for admins, tenants and agents. The
//! CA key lies unencrypted beside the certificates, so this is for trials;
//! production uses the operator's own CA (README, "Security").

use alcor_proto::identity::{Principal, IDENTITY_URI_PREFIX};
use alcor_tls::dev::DevCa;
use anyhow::Context as _;

use crate::cli::CertsArgs;

/// The subject of every CA `alcor certs` creates; a reopened CA must keep it.
const CA_NAME: &str = "alcor throwaway CA";

pub(crate) fn run(args: &CertsArgs) -> anyhow::Result<()> {
    let uri = if args.identity.starts_with(IDENTITY_URI_PREFIX) {
        args.identity.clone()
    } else {
        format!("{IDENTITY_URI_PREFIX}{}", args.identity)
    };
    let principal = Principal::parse_uri(&uri).context("--identity")?;
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| uri[IDENTITY_URI_PREFIX.len()..].replace('/', "-"));
    if name.is_empty() || name.contains(['/', '.']) || name == "ca" || name == "ca-key" {
        anyhow::bail!("--name {name:?}: a file stem without '/' or '.', other than ca");
    }
    let (ca, created) = DevCa::open_or_create(&args.dir, CA_NAME)?;
    let files = ca.write_issued(&args.dir, &name, &principal, &args.dns, &args.ip)?;
    if created {
        out!("ca   {}", files.ca.display());
    }
    out!("cert {}", files.cert.display());
    out!("key  {}", files.key.display());
    Ok(())
}
