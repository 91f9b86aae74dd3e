//! Trust policies from either a trust-policy JSON file or an agent spec's `signers` section.

use std::path::Path;

use miette::WrapErr;
use pf_bundle::TrustPolicy;

use super::bundle::flat;

/// Reads a trust policy: JSON (`threshold`, `keys`) or a spec YAML whose `signers` are used.
///
/// Using a spec is meant for the verifier's own, trusted copy of the spec, never the copy inside
/// the bundle being verified: a bundle cannot vouch for its own signers.
pub fn load(path: &Path) -> miette::Result<TrustPolicy> {
    let is_yaml = path.extension().is_some_and(|e| e == "yaml" || e == "yml");
    if !is_yaml {
        return TrustPolicy::from_file(path)
            .map_err(flat)
            .wrap_err("invalid trust policy");
    }
    let loaded = pf_spec::load(path)?;
    from_spec(&loaded)
}

/// The k-of-n policy a loaded spec's `signers` section declares.
pub fn from_spec(loaded: &pf_spec::LoadedSpec) -> miette::Result<TrustPolicy> {
    let Some(signers) = &loaded.spec.signers else {
        miette::bail!(
            "{} has no `signers` section to take a trust policy from",
            loaded.path.display()
        );
    };
    let mut keys = Vec::with_capacity(signers.keys.len());
    for k in &signers.keys {
        let key = if pf_spec::is_inline_pem(&k.public_key) {
            pf_bundle::keys::verifying_key_from_pem(
                &k.public_key,
                &format!("signer {}", k.name.as_str()),
            )
        } else {
            pf_bundle::keys::read_verifying_key(&loaded.base_dir.join(k.public_key.as_str()))
        }
        .map_err(flat)
        .wrap_err_with(|| format!("signer `{}` in {}", k.name.as_str(), loaded.path.display()))?;
        keys.push((k.name.to_string(), key));
    }
    TrustPolicy::new(*signers.threshold as usize, keys)
        .map_err(flat)
        .wrap_err("invalid signers section")
}
