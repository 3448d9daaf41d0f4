//! The nftables side of a pass: reads the agent's own tables (`nft -j list
//! table FAMILY alcor`, nothing else) and applies a batch of commands in
//! one `nft -j -f -` run, which the kernel commits atomically (all of it or
//! none). Both go through the `nftables` crate's helpers, the batch as raw
//! JSON: the crate's schema (0.6) has no verdict maps, which the agent's
//! dispatch uses.

use serde_json::{json, Value};

use crate::error::DataplaneError;
use crate::firewall::{self, Batch, Existing, Family};

fn failed(what: &'static str) -> impl FnOnce(nftables::helper::NftablesError) -> DataplaneError {
    move |e| {
        let reason = match e {
            nftables::helper::NftablesError::NftFailed { stderr, .. } => stderr,
            other => other.to_string(),
        };
        DataplaneError::Nftables { what, reason }
    }
}

/// The agent's tables as they are.
pub(crate) async fn read() -> Result<Existing, DataplaneError> {
    let args = ["list", "tables"];
    let text = nftables::helper::get_current_ruleset_raw_async(nftables::helper::DEFAULT_NFT, args)
        .await
        .map_err(failed("list tables"))?;
    let tables: Value = serde_json::from_str(&text).map_err(|e| DataplaneError::Nftables {
        what: "list tables",
        reason: e.to_string(),
    })?;
    let mut out = Existing::new();
    for family in [Family::Inet, Family::Bridge] {
        let present = tables
            .get("nftables")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|o| o.get("table"))
            .any(|t| t["family"] == family.as_str() && t["name"] == firewall::TABLE);
        if !present {
            continue;
        }
        let args = ["list", "table", family.as_str(), firewall::TABLE];
        let text =
            nftables::helper::get_current_ruleset_raw_async(nftables::helper::DEFAULT_NFT, args)
                .await
                .map_err(failed("list table"))?;
        let table: Value = serde_json::from_str(&text).map_err(|e| DataplaneError::Nftables {
            what: "list table",
            reason: e.to_string(),
        })?;
        out.insert(family, firewall::parse_table(&table));
    }
    Ok(out)
}

/// Applies `batch` atomically; nothing when it is empty.
pub(crate) async fn apply(batch: &Batch) -> Result<(), DataplaneError> {
    if batch.commands.is_empty() {
        return Ok(());
    }
    let document = json!({ "nftables": batch.commands }).to_string();
    nftables::helper::apply_ruleset_raw_async(
        &document,
        nftables::helper::DEFAULT_NFT,
        nftables::helper::DEFAULT_ARGS,
    )
    .await
    .map(|_| ())
    .map_err(failed("apply the batch"))
}

/// Fails unless bridged IPv4 and IPv6 traffic goes through the IP hooks
/// (`br_netfilter` loaded and `net.bridge.bridge-nf-call-ip{,6}tables` 1
/// in this namespace): without them the stateful rules would never see a
/// bridged packet, so ports would be up and unfiltered.
pub(crate) fn check_bridge_hooks() -> Result<(), DataplaneError> {
    for name in ["bridge-nf-call-iptables", "bridge-nf-call-ip6tables"] {
        let path = format!("/proc/sys/net/bridge/{name}");
        let value = std::fs::read_to_string(&path).unwrap_or_default();
        if value.trim() != "1" {
            return Err(DataplaneError::Nftables {
                what: "bridged traffic",
                reason: format!(
                    "net.bridge.{name} is not 1 (is br_netfilter loaded?): \
                     security groups would not see bridged traffic"
                ),
            });
        }
    }
    Ok(())
}
